"""Passages, answers and how an answer is composed from cited sentences.

The answer is extractive: the best supporting sentences of the top passages, each followed by the
marker ``[n]`` of the passage it comes from (``n`` is that passage's rank). Citations carry the
sentence's exact offsets in its document, so a reader can check every claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NOT_FOUND = "Not found in the documents."


@dataclass(frozen=True)
class Passage:
    """A retrieved passage: where it is in which document, and how well it matches."""

    rank: int
    doc_id: str
    title: str
    start: int
    end: int
    text: str
    score: float
    chunk_id: int = 0
    highlights: tuple[tuple[int, int], ...] = field(default=())
    """Offsets (in the document) of the sentences the answer cites from this passage."""

    def source(self) -> dict[str, Any]:
        """Where the passage comes from (the integrations' metadata): document, title, offsets
        in the document, rank."""
        return {"rank": self.rank, "doc_id": self.doc_id, "title": self.title,
                "start": self.start, "end": self.end}

    def to_json(self) -> dict[str, Any]:
        """The passage as every surface (CLI, HTTP, chat, integrations) returns it."""
        return {
            **self.source(),
            "text": self.text,
            "score": round(float(self.score), 4),
            "chunk_id": self.chunk_id,
            "highlights": [[s, e] for s, e in self.highlights],
            "highlight_texts": [self.text[max(s - self.start, 0): max(e - self.start, 0)]
                                for s, e in self.highlights],
            "cited": bool(self.highlights),
        }


@dataclass(frozen=True)
class Citation:
    """One cited sentence: the marker number, and the sentence's span in its document."""

    marker: int
    doc_id: str
    start: int
    end: int
    text: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"marker": self.marker, "doc_id": self.doc_id, "start": self.start,
                "end": self.end, "text": self.text, "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of the answer as shown, with the markers of the passages it rests on and
    whether the checker found it in them (extractive sentences are quotes, so always)."""

    text: str
    markers: tuple[int, ...]
    supported: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "markers": list(self.markers), "supported": self.supported}


@dataclass(frozen=True)
class Answer:
    """An answer with its citations, or an abstention with the closest passages."""

    question: str
    text: str
    abstained: bool
    passages: list[Passage]
    citations: list[Citation] = field(default_factory=list)
    confidence: float = 0.0
    """Calibrated probability-like score that the documents answer the question."""
    features: dict[str, float] = field(default_factory=dict)
    """The signals the confidence was computed from (see ``eval/calibrate.py``)."""
    mode: str = "extractive"
    """``"extractive"`` (quoted sentences) or ``"generated"`` (written by a language model)."""
    model: str | None = None
    """The language model that wrote a generated answer; ``None`` for extractive answers."""
    sentences: list[AnswerSentence] | None = None
    """The answer sentence by sentence; left out, they are derived from the citations (an
    extractive answer: one per cited sentence), so after construction this is always a list."""
    notice: str | None = None
    """Why the answer fell back (e.g. the model endpoint is down), else ``None``."""
    history_used: list[int] = field(default_factory=list)
    """Indices of the earlier turns (of the ``history`` given) the question was read with."""
    rewritten_question: str | None = None
    """A follow-up as the language model rewrote it to stand alone (what was searched), else
    ``None``."""

    def __post_init__(self) -> None:
        # Found by an API tester: ``answer.sentences`` was None for every extractive answer
        # while its JSON had them, so ``for s in answer.sentences`` failed.
        if self.sentences is None:
            derived = [] if self.abstained else [
                AnswerSentence(" ".join(c.text.split()), (c.marker,)) for c in self.citations]
            object.__setattr__(self, "sentences", derived)

    def answer_sentences(self) -> list[AnswerSentence]:
        """The sentences as shown; extractive answers: one per citation."""
        return list(self.sentences or [])

    def to_json(self) -> dict[str, Any]:
        """The answer object: the one serialisation that ``qa ask --json``, ``/api/ask``, the
        chat's ``/ask`` and the integrations all return."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "confidence": round(float(self.confidence), 4),
            "mode": self.mode,
            "model": self.model,
            "sentences": [s.to_json() for s in self.answer_sentences()],
            "notice": self.notice,
            "history_used": list(self.history_used),
            "rewritten_question": self.rewritten_question,
            "citations": [c.to_json() for c in self.citations],
            "passages": [p.to_json() for p in self.passages],
        }


def answer_text(citations: list[Citation]) -> str:
    """The answer: each cited sentence followed by its marker."""
    return " ".join(f"{' '.join(c.text.split())} [{c.marker}]" for c in citations)
