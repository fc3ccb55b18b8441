"""Follow-up questions: reading a question in the context of the conversation before it.

"And what did they want in exchange?" means nothing alone. A question that does not stand alone
(it opens with "and"/"und", leans on a pronoun, or names nothing of its own and is short) is
retrieved with the turn it leans on: its query vector is combined with that of the earlier
question and the names of the earlier answer, weighted less the more names the follow-up brings
itself. The sentences of the answer are still chosen for
the follow-up itself; a sentence the earlier answer already gave may be cited again when it is
what answers the follow-up ("And the rouble?" after an answer that named the oil price and the
rouble in one sentence). ``Answer.history_used`` lists the turns that were used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .abstain import _STOP, _WORD, not_a_question, salient_terms
from .errors import BadRequest

MAX_TURNS = 20
MAX_FIELD_CHARS = 2000
# Weight of the earlier turn's vector beside the follow-up's own, for a follow-up that names
# nothing itself (found on eval/followups.jsonl); see context_weight.
CONTEXT_WEIGHT = 0.8

_OPENS_FOLLOW_UP = re.compile(
    r"^\W*(and|but|also|what about|how about|und|aber|auch|was ist mit|wie steht es mit|"
    r"und was|und wie|und wer|und wann|und wo)\b", re.IGNORECASE)
_LEANS = re.compile(
    r"\b(it|its|they|them|their|theirs|he|him|his|she|her|hers|this|these|those|there|"
    r"then|the same|such|er|sie|es|ihn|ihm|ihr|ihre|ihren|ihrem|ihrer|sein|seine|seinen|seinem|"
    r"seiner|dies|diese|dieser|dieses|diesen|dort|dabei|dafür|dazu|damit|davon|darauf|daran|"
    r"darüber|deren|dessen|denen|jene|jener|solche)\b", re.IGNORECASE)
# A subject pronoun before any name of the question has nothing in it to point back to ("What did
# it prevent Russia from doing?"); "is it"/"ist es" is left out, as it is often impersonal.
_SUBJECT_PRONOUN = re.compile(r"\b(?<!is )(?<!was )(it|they|he|she|er)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Turn:
    """One earlier turn of a conversation: the question asked and the answer given."""

    question: str
    answer: str

    def to_json(self) -> dict[str, str]:
        return {"question": self.question, "answer": self.answer}


def parse_history(history: Sequence[Any] | None) -> list[Turn]:
    """``history`` as turns, oldest first; BadRequest (one line) for a bad shape: not a list,
    more than 20 turns, a turn that is not ``{"question": str, "answer": str}``, a field over
    2,000 characters."""
    if history is None:
        return []
    if isinstance(history, (str, bytes, dict)) or not isinstance(history, Sequence):
        raise BadRequest("history must be a list of {question, answer} turns")
    if len(history) > MAX_TURNS:
        raise BadRequest(f"history has {len(history)} turns; at most {MAX_TURNS}")
    turns = []
    for i, turn in enumerate(history):
        if isinstance(turn, Turn):
            turn = turn.to_json()
        # Both fields, as the HTTP API requires: Python took a turn without its answer.
        if not isinstance(turn, dict) or set(turn) != {"question", "answer"}:
            raise BadRequest(f"history[{i}] must be an object with 'question' and 'answer'")
        q, a = turn["question"], turn["answer"]
        for name, value in (("question", q), ("answer", a)):
            if not isinstance(value, str):
                raise BadRequest(f"history[{i}].{name} must be text")
            if len(value) > MAX_FIELD_CHARS:
                raise BadRequest(f"history[{i}].{name} is too long ({len(value)} characters; "
                                 f"at most {MAX_FIELD_CHARS})")
        turns.append(Turn(" ".join(str(q).split()), " ".join(str(a).split())))
    return turns


def stands_alone(question: str) -> bool:
    """Whether ``question`` can be understood without the conversation before it."""
    if _OPENS_FOLLOW_UP.match(question):
        return False
    content = [w for w in _WORD.findall(question) if len(w) >= 3 and w.lower() not in _STOP]
    names = salient_terms(question)
    if _LEANS.search(question):
        # A pronoun in a question that names things of its own may point inside it, unless it
        # comes before them.
        pronoun = _SUBJECT_PRONOUN.search(question)
        if pronoun and names and question.find(names[0]) > pronoun.start():
            return False
        return bool(names) and len(content) >= 3
    # "Warum?", "Since when?": too little of its own to stand on.
    return len(content) >= 2 or bool(names)


def leans_on(question: str, turns: list[Turn]) -> list[int]:
    """Indices of the turns ``question`` leans on: none if it stands alone, else the last turn,
    and the one before if the last turn was itself a follow-up. Turns that asked nothing
    ("hello", "?") are passed over: "Kursk" after them was shown as read with "hello"."""
    asked = [i for i, t in enumerate(turns) if not not_a_question(t.question)]
    if not asked or stands_alone(question):
        return []
    used = [asked[-1]]
    if len(asked) > 1 and not stands_alone(turns[asked[-1]].question):
        used.insert(0, asked[-2])
    return used


def context_weight(question: str) -> float:
    """How much the earlier turn weighs beside the follow-up: ``CONTEXT_WEIGHT`` for one that
    names nothing ("Who brokered it?"), less the more names it brings itself ("And what does
    Zelensky think Moscow is waiting for?" is mostly about what it says), and less for each
    word of its own beyond the first when no pronoun points back: "What about the coffee
    machine warranty?" after a question on a rowing club's coach got the coach's sentence again
    (found by an API tester). On the follow-up sets: 29 of 32 and 34 -> 35 of 40 cite the
    answering passage (README)."""
    names = len(salient_terms(question))
    if _LEANS.search(question):
        return CONTEXT_WEIGHT / (1 + names)
    own = [w for w in _WORD.findall(_OPENS_FOLLOW_UP.sub("", question))
           if len(w) >= 3 and w.lower() not in _STOP]
    return CONTEXT_WEIGHT / (1 + names + 0.5 * max(len(own) - 1, 0))


def context_text(turns: list[Turn], used: list[int]) -> str:
    """What the follow-up is retrieved with besides itself: the earlier questions and the names
    and numbers of their answers (not whole answers: they would pull the same passage back)."""
    parts = []
    for i in used:
        t = turns[i]
        answer = re.sub(r"\[\d+\]", " ", t.answer)
        names = list(dict.fromkeys(salient_terms(answer)))[:8]
        parts.append(" ".join([t.question, *names]))
    return " ".join(parts)
