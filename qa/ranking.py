"""Choosing the answer sentences: a learned ranker over the sentences of the top passages.

Cosine similarity alone picks the sentence that sounds most like the question, which is often not
the one that answers it ("Who is the head baker?" scored the founders' sentence above the one
naming the head baker). The ranker adds what a reader looks for:

- how well the sentence and its passage match the question (cosine, passage score and rank);
- the question's names, numbers and content words found in the sentence (transliteration
  tolerant, and German compounds: a word of the question inside a longer word counts);
- the kind of answer asked for (who: a person or organisation; when: a date or time; how many /
  how much: a number; where: a place) and whether the sentence holds one;
- sentences that cannot answer: Markdown headings, list markers, bare quote fragments, very short
  ones.

A logistic model turns these features into the probability that a sentence holds the answer. Its
weights are fitted by ``eval/calibrate.py`` (XQuAD dev half and the sample-article sets,
cross-validated by article) and shipped as plain JSON in ``qa/calibration.json``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .abstain import _STOP, _WORD, salient_terms, spelling_key
from .answer_kinds import (
    answer_kinds,
    holds_number,
    holds_person_or_organisation,
    holds_place,
    holds_time,
)

# The features, in the order the fitted weights use them.
FEATURES = (
    "sim", "sim_gap", "passage_score", "passage_gap", "inv_rank", "first_in_passage",
    "content_hit", "rare_hit", "focus_hit", "name_hit", "name_hit_passage",
    "asks_who", "who_match", "asks_when", "when_match", "asks_number", "number_match",
    "asks_where", "where_match",
    "heading", "list_marker", "quote_fragment", "short", "log_words",
)

_LIST_MARKER = re.compile(r"^\s*([-*•–]|\d{1,3}[.)])\s")
_QUOTES = "\"'“”„«»‚‘’"


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved passage, with what the ranker needs to know about it."""

    rank: int
    """Rank of its passage (1 = best)."""
    doc_id: str
    start: int
    end: int
    text: str
    sim: float
    passage_score: float
    index_in_passage: int


@lru_cache(maxsize=1 << 14)
def _keys(text: str) -> tuple[str, ...]:
    return tuple(spelling_key(w) for w in re.findall(r"[^\W_]+", text))


def _found(key: str, word: str) -> bool:
    """``key`` matches ``word``: equal, one inside the other (German compounds), or sharing a
    five-letter stem (inflection: Verhandlungen/Verhandlung)."""
    if key == word:
        return True
    if key.isdigit():
        return key in word
    if len(key) < 4 or len(word) < 4:
        return False
    return key in word or word in key or (len(key) >= 5 and word[:5] == key[:5])


def _terms_found(terms: tuple[str, ...], words: set[str]) -> dict[str, frozenset[str]]:
    """For each word, the terms it matches (each distinct word is checked once)."""
    return {w: frozenset(t for t in terms if _found(t, w)) for w in words}


_PREPOSITION = frozenset(
    "at in of on for from by with during about near under after before bei von im am an auf für "
    "aus mit während über unter nach vor seit gegen zwischen".split())
_AUXILIARY = frozenset("is was are were did does do has have had ist war sind waren hat haben "
                       "hatte wird wurde".split())


@lru_cache(maxsize=1024)
def focus_terms(question: str) -> tuple[str, ...]:
    """The words the question asks about: its content words after the question word and before
    the first preposition ("Who is the *head baker* at Harbor Lane Bakery?"). The rest names
    the subject, which every sentence of the document may repeat."""
    words = _WORD.findall(question)
    focus: list[str] = []
    for w in words[1:]:
        lw = w.lower()
        if lw in _PREPOSITION and focus:
            break
        if len(w) >= 3 and lw not in _STOP and lw not in _AUXILIARY:
            focus.append(spelling_key(w))
    return tuple(dict.fromkeys(focus))


@lru_cache(maxsize=1024)
def question_terms(question: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The question's content words and its names/numbers, as spelling keys."""
    content = tuple(dict.fromkeys(
        spelling_key(w) for w in _WORD.findall(question)
        if len(w) >= 3 and w.lower() not in _STOP))
    names = tuple(dict.fromkeys(spelling_key(p) for t in salient_terms(question)
                                for p in re.split(r"[-'’]", t) if p))
    return content, names


def _found_terms(words: tuple[str, ...], matches: dict[str, frozenset[str]]) -> set[str]:
    found: set[str] = set()
    for w in words:
        found |= matches[w]
    return found


def _share(terms: tuple[str, ...], words: tuple[str, ...],
           matches: dict[str, frozenset[str]]) -> float:
    return len(_found_terms(words, matches)) / len(terms) if terms else 0.0


def form(text: str) -> dict[str, float]:
    """Features of a sentence's form: heading, list item, bare quote fragment, length."""
    stripped = text.strip()
    words = len(stripped.split())
    unquoted = stripped.strip(_QUOTES + " ")
    heading = stripped.startswith("#") or (
        words <= 12 and not re.search(r"[.!?:;…\"”“»«)]$", stripped) and "\n" not in stripped)
    quote = bool(stripped) and stripped[0] in _QUOTES and words <= 8 and (
        len(unquoted) < len(stripped) - 1 or not re.search(r"[.!?]$", unquoted))
    return {"heading": float(heading), "list_marker": float(bool(_LIST_MARKER.match(stripped))),
            "quote_fragment": float(quote), "short": float(words < 4),
            "log_words": math.log1p(words)}


def features(question: str, cands: list[Candidate]) -> list[list[float]]:
    """The feature rows (in ``FEATURES`` order) for the candidate sentences of one question."""
    return [list(row) for row in _features(question, tuple(cands))]


# The same question over the same passages (a repeated question, or refitting) is not
# featurised twice.
@lru_cache(maxsize=4096)
def _features(question: str, cands: tuple[Candidate, ...]) -> tuple[tuple[float, ...], ...]:
    if not cands:
        return ()
    content, names = question_terms(question)
    kinds = answer_kinds(question)
    best_sim = max(c.sim for c in cands)
    top_passage = max(c.passage_score for c in cands)
    passage_words: dict[int, tuple[str, ...]] = {}
    for c in cands:
        passage_words[c.rank] = passage_words.get(c.rank, ()) + _keys(c.text)
    vocabulary = {w for ws in passage_words.values() for w in ws}
    content_matches = _terms_found(content, vocabulary)
    focus = focus_terms(question)
    focus_matches = _terms_found(focus, vocabulary)
    name_matches = _terms_found(names, vocabulary)
    name_share = {rank: _share(names, ws, name_matches) for rank, ws in passage_words.items()}
    # Terms that many candidate sentences share (the document's subject, its title) say little
    # about which sentence answers: weigh each question term by its rarity among the candidates.
    found_in = [_found_terms(_keys(c.text), content_matches) for c in cands]
    idf = {t: math.log(1 + len(cands) / (1 + sum(t in f for f in found_in))) for t in content}
    idf_total = sum(idf.values()) or 1.0
    rows = []
    for c, found in zip(cands, found_in):
        words = _keys(c.text)
        who = holds_person_or_organisation(c.text)
        when = holds_time(c.text)
        number = holds_number(c.text, question)
        where = holds_place(c.text)
        f = {
            "sim": c.sim, "sim_gap": c.sim - best_sim, "passage_score": c.passage_score,
            "passage_gap": c.passage_score - top_passage, "inv_rank": 1.0 / c.rank,
            "first_in_passage": float(c.index_in_passage == 0),
            "content_hit": _share(content, words, content_matches),
            "rare_hit": sum(idf[t] for t in found) / idf_total,
            "focus_hit": _share(focus, words, focus_matches),
            "name_hit": _share(names, words, name_matches),
            "name_hit_passage": name_share[c.rank],
            "asks_who": float(kinds["who"]), "who_match": float(kinds["who"] and who),
            "asks_when": float(kinds["when"]), "when_match": float(kinds["when"] and when),
            "asks_number": float(kinds["number"]),
            "number_match": float(kinds["number"] and number),
            "asks_where": float(kinds["where"]), "where_match": float(kinds["where"] and where),
            **form(c.text),
        }
        rows.append(tuple(f[n] for n in FEATURES))
    return tuple(rows)


def probabilities(rows: list[list[float]], model: dict[str, Any]) -> list[float]:
    """The fitted logistic model's probability, per row, that the sentence holds the answer."""
    weights = [model["weights"].get(n, 0.0) for n in FEATURES]
    out = []
    for row in rows:
        z = model["bias"] + sum(w * x for w, x in zip(weights, row))
        out.append(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))))
    return out


# Cosine-only fallback for an embedder without a fitted ranker: the sentence similarity.
UNFITTED = {"bias": 0.0, "weights": {"sim": 10.0, "heading": -5.0, "list_marker": -2.0,
                                     "quote_fragment": -3.0, "short": -3.0}}
