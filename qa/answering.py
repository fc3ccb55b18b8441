"""From retrieved passages to the answer a person reads: rank the candidate sentences, decide
whether the documents answer at all, and compose the cited answer.

Sentences come from the best passages (``ANSWER_PASSAGES`` deep) and are ranked by the learned
model in :mod:`qa.ranking`. The best sentence is cited, with at most ``MAX_SENTENCES - 1`` more
that the ranker finds nearly as likely; sentences of one passage read in document order. Whether
to answer at all is :mod:`qa.abstain`'s model (boosted trees) over the same evidence.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import abstain, ranking
from .answer import NOT_FOUND, Answer, Citation, Passage, answer_text
from .index.snapshot import Snapshot

# Depth the answer/abstain decision looks at: sentences of the top 5 passages, names and numbers
# of the top 20. The decision must not depend on k.
ANSWER_PASSAGES = 5
FEATURE_PASSAGES = 20
MAX_SENTENCES = 2
# Another sentence is cited beside the best one only if the ranker finds it at least this
# likely relative to the best (the answer should be short, not the whole passage); when the
# ranker is unsure of its best (below SECOND_SENTENCE_MIN), a runner-up half as likely is
# cited too, so the reader gets the likely alternative rather than one doubtful sentence.
SECOND_SENTENCE_RATIO = 0.7
SECOND_SENTENCE_MIN = 0.5
UNSURE_RATIO = 0.5

# An embedder without a fitted model never abstains: its score scale is unknown.
_UNCALIBRATED: dict[str, Any] = {"bias": 0.0, "weights": {}, "threshold": 0.0}


@lru_cache(maxsize=8)
def _model_file(custom: str | None) -> dict[str, Any]:
    if custom:
        text = Path(custom).read_text(encoding="utf-8")
    else:
        text = (Path(__file__).parent / "calibration.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _entry(embedder: str) -> dict[str, Any]:
    fitted = _model_file(os.environ.get("QA_CALIBRATION") or None)
    # One model on another engine ("-int8", "-fp32": vectors within cosine 0.999) uses its fits.
    entry: dict[str, Any] = fitted.get(embedder) or fitted.get(
        re.sub(r"-(int8|fp32)$", "", embedder), {})
    return entry


def language_axis(embedder: str, dim: int) -> np.ndarray | None:
    """The unit vector along which ``embedder`` sets German questions apart from English ones
    (fitted by eval/calibrate.py), or None if it has none. Questions are searched with it
    removed (``Retriever._embed_queries``): otherwise a question's language is part of what it
    matches, and passages in its own language outrank the one that answers it in the other."""
    axis = _entry(embedder).get("language_axis")
    if not axis or len(axis) != dim:
        return None
    v = np.asarray(axis, np.float32)
    return v / (np.linalg.norm(v) or 1.0)


def models_for(embedder: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fitted sentence ranker and answer-or-abstain model for ``embedder`` (see
    eval/calibrate.py), from ``$QA_CALIBRATION`` if set, else the ones shipped."""
    entry = _entry(embedder)
    return entry.get("ranker", ranking.UNFITTED), entry.get("abstain", _UNCALIBRATED)


@dataclass(frozen=True)
class Retrieved:
    """What retrieval found for one question: passages (snapshot rows) best first, with their
    scores and the similarity of each of their sentences to the question."""

    snapshot: Snapshot
    scored: list[tuple[int, float]]
    sentence_sims: dict[int, np.ndarray]

    def with_own_words(self, own: Retrieved) -> Retrieved:
        """A follow-up's passages: those found with the turn it leans on (``self``) and those
        its own words find (``own``), whose scores and sentence similarities are raised by the
        gap between the two best passages, a passage keeping the higher of its two scores.

        A question read with an earlier one scores higher on everything near that one, so a
        passage only the follow-up's own words point to fell out of the top five: "And what
        about Abramovich?" after a long question on the energy strikes got the earlier answer
        again, word for word. On the follow-up sets this lifts the cited sentence holding the
        answer from 25 to 27 of 32 and from 32 to 34 of 40 (README)."""
        if not self.scored or not own.scored:
            return self
        lift = self.scored[0][1] - own.scored[0][1]
        scores = dict(self.scored)
        sims = dict(self.sentence_sims)
        for row, score in own.scored:
            scores[row] = max(scores.get(row, -np.inf), score + lift)
            raised = own.sentence_sims[row] + lift
            sims[row] = np.maximum(sims[row], raised) if row in sims else raised
        return Retrieved(self.snapshot, sorted(scores.items(), key=lambda t: -t[1]), sims)

    def candidates(self, depth: int = ANSWER_PASSAGES) -> list[ranking.Candidate]:
        """The sentences of the top ``depth`` passages."""
        out = []
        for rank, (row, score) in enumerate(self.scored[:depth], start=1):
            chunk = self.snapshot.chunks[row]
            for i, ((s, e), sim) in enumerate(zip(chunk.sentences,
                                                  self.sentence_sims[row].tolist())):
                text = chunk.text[s - chunk.start : e - chunk.start]
                out.append(ranking.Candidate(rank, chunk.doc_id, s, e, text, sim, score, i))
        return out


def normalise(text: str) -> str:
    """Text compared without case and spacing (repeated sentences)."""
    return " ".join(text.split()).lower()


def choose(cands: list[ranking.Candidate], probs: list[float]) -> list[tuple[ranking.Candidate,
                                                                             float]]:
    """The best sentence and close seconds, no repeats; grouped by passage in the order of their
    best sentence, and in document order within a passage."""
    order = sorted(range(len(cands)), key=lambda i: -probs[i])
    chosen: list[tuple[ranking.Candidate, float]] = []
    seen: set[str] = set()
    for i in order:
        if len(chosen) == MAX_SENTENCES:
            break
        p = probs[i]
        if chosen:
            best = chosen[0][1]
            confident_second = p >= SECOND_SENTENCE_MIN and p >= SECOND_SENTENCE_RATIO * best
            unsure_second = best < SECOND_SENTENCE_MIN and p >= UNSURE_RATIO * best
            if not (confident_second or unsure_second):
                break
        key = normalise(cands[i].text)
        if key in seen or ranking.form(cands[i].text)["heading"]:
            continue
        seen.add(key)
        chosen.append((cands[i], p))
    passage_order = list(dict.fromkeys(c.rank for c, _ in chosen))
    return sorted(chosen, key=lambda t: (passage_order.index(t[0].rank), t[0].start))


def build_answer(
    question: str,
    found: Retrieved,
    k: int,
    *,
    ranker: dict[str, Any],
    abstainer: dict[str, Any],
    history_used: list[int] | None = None,
    refuse: bool = False,
) -> Answer:
    """The cited answer (or abstention) for ``question`` from what retrieval ``found``.
    ``refuse`` abstains whatever the evidence (the input is not a question)."""
    cands = found.candidates(ANSWER_PASSAGES)
    rows = ranking.features(question, cands)
    probs = ranking.probabilities(rows, ranker)
    # The abstention model reads the best sentence and probability of the sentence model it
    # was fitted with, which may not be the one that chooses (eval/calibrate.py --ranker-fit).
    evidence = ranking.probabilities(rows, abstainer["ranker"]) if "ranker" in abstainer \
        else probs
    best = int(np.argmax(evidence)) if evidence else -1
    shown = [i for i, c in enumerate(cands) if c.rank <= k]
    chosen = choose([cands[i] for i in shown], [probs[i] for i in shown])
    feats: dict[str, float] = {}
    if found.scored:
        chunks = found.snapshot.chunks
        feats = abstain.features(
            question,
            [s for _, s in found.scored[:FEATURE_PASSAGES]],
            [(c.sim, c.text) for c in cands],
            [chunks[row].text for row, _ in found.scored[:FEATURE_PASSAGES]],
            evidence[best] if evidence else 0.0,
            cands[best].text if evidence else "",
            dict(zip(ranking.FEATURES, rows[best])) if evidence else None,
        )
    confidence = 0.0 if refuse else abstain.confidence(feats, abstainer)
    abstained = refuse or not chosen or confidence < abstainer["threshold"]
    citations = [] if abstained else [
        Citation(c.rank, c.doc_id, c.start, c.end, c.text, p) for c, p in chosen]
    passages = []
    for rank, (row, score) in enumerate(found.scored[:k], start=1):
        ch = found.snapshot.chunks[row]
        hl = tuple((x.start, x.end) for x in citations if x.marker == rank)
        passages.append(
            Passage(rank, ch.doc_id, ch.title, ch.start, ch.end, ch.text, score, ch.chunk_id, hl))
    return Answer(
        question, NOT_FOUND if abstained else answer_text(citations), abstained, passages,
        citations, confidence, feats, history_used=list(history_used or []),
    )
