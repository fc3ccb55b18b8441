"""Answers written by a language model from the retrieved passages, every sentence checked.

The extractive answer is always computed first: it gives the passages, the decision to abstain,
and the fallback. The model is asked only when the documents answer the question; if it fails
(down, refusing, too slow, garbage, empty) or none of its sentences can be verified, the
extractive answer is returned with a one-line ``notice`` saying why.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..answer import Answer, Citation, Passage
from ..limits import DEFAULT_K, check_k, clean_question
from .checker import CheckedSentence, SentenceChecker
from .client import ChatClient, EndpointError, LLMSettings
from .prompt import MAX_HISTORY_TURNS, grounded_messages, parse_rewrite, rewrite_messages

FALLBACK = "showing sentences quoted from the documents instead"
REWRITE_TOKENS = 80

History = Sequence[dict[str, str]]


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: ``"rewrite"`` (the standalone question), ``"token"``
    (text as the model writes it), and last ``"answer"`` (the checked :class:`Answer`)."""

    kind: str
    text: str = ""
    answer: Answer | None = None


class ModelAnswerer:
    """Writes answers with a language model over one retriever's passages.

    >>> m = ModelAnswerer(retriever, LLMSettings("http://localhost:11434/v1", "gemma3"))
    >>> m.ask("What did Ukraine offer in Istanbul?").to_json()["sentences"]
    """

    def __init__(self, retriever: Any, settings: LLMSettings, *,
                 checker: SentenceChecker | None = None) -> None:
        self.retriever = retriever
        self.settings = settings
        self.client = ChatClient(settings)
        self._checker = checker

    @property
    def checker(self) -> SentenceChecker:
        if self._checker is None:
            self._checker = SentenceChecker(self.retriever.embedder)
        return self._checker

    @property
    def model_label(self) -> str:
        """The model's name as configured (no request made), else the endpoint."""
        return self.settings.model or self.settings.url

    def ask(self, question: str, k: int = DEFAULT_K, history: History | None = None) -> Answer:
        """The checked answer (see :meth:`stream`), all at once."""
        answer = None
        for event in self.stream(question, k, history):
            answer = event.answer or answer
        assert answer is not None  # stream() always ends with one
        return answer

    def stream(self, question: str, k: int = DEFAULT_K, history: History | None = None
               ) -> Iterator[StreamEvent]:
        """The answer as it is written: a ``rewrite`` event for a follow-up, ``token`` events,
        then one ``answer`` event with the checked answer (or the extractive fallback)."""
        question = clean_question(question)
        k = check_k(k)
        turns = [t for t in (history or []) if str(t.get("question", "")).strip()]
        standalone, used = question, []
        if turns:
            try:
                reply = self.client.complete(rewrite_messages(question, turns),
                                             max_tokens=REWRITE_TOKENS)
            except EndpointError as exc:
                yield StreamEvent("answer", answer=self._fallback(question, k, history, exc))
                return
            standalone = parse_rewrite(reply, question)
            used = list(range(max(0, len(turns) - MAX_HISTORY_TURNS), len(turns)))
            yield StreamEvent("rewrite", standalone)
        base = self.retriever.ask(standalone, k)
        base = replace(base, question=question, history_used=used,
                       rewritten_question=standalone if turns else None)
        if base.abstained:
            yield StreamEvent("answer", answer=base)
            return
        pieces: list[str] = []
        try:
            for piece in self.client.stream(grounded_messages(standalone, base.passages)):
                pieces.append(piece)
                yield StreamEvent("token", piece)
        except EndpointError as exc:
            yield StreamEvent("answer", answer=replace(base, notice=f"{exc}; {FALLBACK}"))
            return
        yield StreamEvent("answer", answer=self._checked(base, "".join(pieces)))

    def _fallback(self, question: str, k: int, history: History | None,
                  exc: EndpointError) -> Answer:
        answer = _extractive(self.retriever, question, k, history)
        return replace(answer, notice=f"{exc}; {FALLBACK}")

    def _checked(self, base: Answer, text: str) -> Answer:
        by_rank = {p.rank: p for p in base.passages}
        checked = self.checker.check(text, {r: p.text for r, p in by_rank.items()})
        model = self.client.model
        if not any(c.sentence.supported for c in checked):
            why = ("sent no sentences" if not checked else
                   "wrote nothing the passages could be shown to support")
            return replace(base, notice=f"the model {model} {why}; {FALLBACK}")
        citations = _citations(checked, by_rank)
        passages = [_highlighted(p, citations) for p in base.passages]
        answer_text = " ".join(
            c.sentence.text + "".join(f" [{m}]" for m in c.sentence.markers) for c in checked)
        return replace(base, text=answer_text, passages=passages, citations=citations,
                       mode="generated", model=model,
                       sentences=[c.sentence for c in checked], notice=None)


def _citations(checked: list[CheckedSentence], by_rank: dict[int, Passage]) -> list[Citation]:
    """Where each supported sentence rests: the best-matching span of each passage it cites."""
    out: list[Citation] = []
    seen: set[tuple[int, int, int]] = set()
    for c in checked:
        for marker, s, e, sim in c.evidence:
            p = by_rank[marker]
            key = (marker, s, e)
            if key in seen:
                continue
            seen.add(key)
            out.append(Citation(marker, p.doc_id, p.start + s, p.start + e, p.text[s:e], sim))
    return out


def _highlighted(p: Passage, citations: list[Citation]) -> Passage:
    spans = tuple((c.start, c.end) for c in citations if c.marker == p.rank)
    return replace(p, highlights=spans)


def _extractive(retriever: Any, question: str, k: int, history: History | None) -> Answer:
    """The retriever's own answer, reading the question with ``history`` where it can."""
    if history and "history" in inspect.signature(retriever.ask).parameters:
        return retriever.ask(question, k, history=list(history))  # type: ignore[no-any-return]
    return retriever.ask(question, k)  # type: ignore[no-any-return]


def answerer_for(retriever: Any, url: str | None = None, model: str | None = None, *,
                 timeout: float | None = None) -> ModelAnswerer | None:
    """A :class:`ModelAnswerer` when an endpoint is set (arguments, else ``QA_LLM_URL``...),
    else ``None``: answers stay extractive and the openai client is never imported."""
    settings = LLMSettings.from_env(url, model, timeout=timeout)
    return ModelAnswerer(retriever, settings) if settings else None
