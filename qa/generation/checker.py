"""Checking every sentence a language model wrote against the passages it cites.

A sentence is **supported** when

1. it carries at least one marker ``[n]`` and every marker names a retrieved passage;
2. the embedder finds it close to the cited passages: its cosine similarity to their best
   sentence (or pair of adjacent sentences, as models merge two) reaches a threshold fitted on
   data (``eval/calibrate_checker.py``; stored per embedder in ``checker.json``). The embedder is
   multilingual, so an English sentence is compared with German passages directly;
3. its numbers are in the cited passages (digits and number words of either language), and so
   are its names (capitalised words after the first, matched across spellings like Kyiv/Kiew
   and, through a short list, names that differ between English and German, Russia/Russland).
   German sentences capitalise every noun, so there only numbers are checked.

The checker never drops a sentence: it marks it, and the caller decides what to show.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from ..abstain import salient_terms, spelling_key
from ..answer import AnswerSentence
from ..chunking import sentence_spans
from .prompt import detect_language

_MARKER_GROUP = re.compile(r"\s*((?:\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])+)")
_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
# "[Passage 2]", "[Source 2]", "(2)" after a word: what small models write instead of "[2]".
_LOOSE_MARKER = re.compile(r"\[\s*(?:passage|source|quelle|abschnitt)\s+(\d+)\s*\]",
                           re.IGNORECASE)
_END_THEN_MARKERS = re.compile(r"([.!?…])((?:[ \t]*\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])+)")

_NUMBER_TOKEN = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    # "one"/"ein" are left out of claims (too often not a count) but read in passages.
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "hundred": "100",
    "zwei": "2", "drei": "3", "vier": "4", "fünf": "5", "sechs": "6", "sieben": "7", "acht": "8",
    "neun": "9", "zehn": "10", "elf": "11", "zwölf": "12", "zwanzig": "20", "hundert": "100",
}
_PASSAGE_ONLY_NUMBER_WORDS = {"one": "1", "ein": "1", "eine": "1", "eins": "1", "einer": "1"}
_SCALES = {"thousand": "k", "tausend": "k", "million": "m", "millionen": "m", "millions": "m",
           "billion": "b", "billions": "b", "milliarde": "b", "milliarden": "b",
           "percent": "%", "prozent": "%", "%": "%"}

# English names and words that German writes differently and spelling keys cannot bridge.
_EXONYMS: dict[str, tuple[str, ...]] = {
    "russia": ("russland",), "russian": ("russisch", "russe", "russen"),
    "ukrainian": ("ukrainisch", "ukrainer"), "germany": ("deutschland",),
    "german": ("deutsch",), "britain": ("großbritannien", "britisch"),
    "british": ("britisch", "großbritannien"), "kingdom": ("königreich",),
    "united": ("vereinigt",), "states": ("staaten", "usa"), "america": ("amerika", "usa"),
    "american": ("amerikan", "usa"), "crimea": ("krim",), "europe": ("europa",),
    "european": ("europäisch", "eu"), "union": ("union", "eu"), "nations": ("nationen", "uno"),
    "western": ("west",), "west": ("west",), "east": ("osten",),
    "turkish": ("türkisch", "türkei"), "chinese": ("chinesisch", "china"),
    "french": ("französisch", "frankreich"), "france": ("frankreich",), "italy": ("italien",),
    "spain": ("spanien",), "poland": ("polen",), "austria": ("österreich",),
    "switzerland": ("schweiz",), "netherlands": ("niederlande",), "belgium": ("belgien",),
    "sweden": ("schweden",), "finland": ("finnland",), "norway": ("norwegen",),
    "denmark": ("dänemark",), "greece": ("griechenland",), "hungary": ("ungarn",),
    "egypt": ("ägypten",), "india": ("indien",), "syria": ("syrien",),
    "saudi": ("saudi",), "arabia": ("arabien",), "vienna": ("wien",), "munich": ("münchen",),
    "cologne": ("köln",), "rome": ("rom",), "warsaw": ("warschau",), "prague": ("prag",),
    "brussels": ("brüssel",), "geneva": ("genf",), "black": ("schwarz",), "sea": ("meer",),
    "mediterranean": ("mittelmeer",), "monday": ("montag",), "tuesday": ("dienstag",),
    "wednesday": ("mittwoch",), "thursday": ("donnerstag",), "friday": ("freitag",),
    "saturday": ("samstag", "sonnabend"), "sunday": ("sonntag",), "january": ("januar",),
    "february": ("februar",), "march": ("märz",), "may": ("mai",), "june": ("juni",),
    "july": ("juli",), "october": ("oktober",), "december": ("dezember",),
    "president": ("präsident",), "minister": ("minister",), "foreign": ("außen",),
}

UNCALIBRATED_THRESHOLD = 0.85
"""Similarity threshold for an embedder without a fitted one (the e5 value, rounded up)."""


@dataclass(frozen=True)
class Support:
    """How a sentence relates to its cited passages: the best similarity and what is missing."""

    similarity: float
    missing_numbers: tuple[str, ...]
    missing_names: tuple[str, ...]

    def supported(self, threshold: float) -> bool:
        return self.similarity >= threshold and not self.missing_numbers \
            and not self.missing_names


def split_generated(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """The model's answer as sentences, each with the markers it ends with (or carries).
    Markers written after the full stop ("... neutral. [1]") belong to the sentence before."""
    text = _LOOSE_MARKER.sub(r"[\1]", text.replace("\r", ""))
    text = _END_THEN_MARKERS.sub(lambda m: m.group(2) + m.group(1), text)
    out: list[tuple[str, tuple[int, ...]]] = []
    for s, e in sentence_spans(text):
        raw = text[s:e]
        markers: list[int] = []
        for m in _MARKER.finditer(raw):
            for n in re.split(r"\s*[,;]\s*", m.group(1)):
                if int(n) not in markers:
                    markers.append(int(n))
        plain = " ".join(_MARKER.sub(" ", raw).split())
        plain = re.sub(r"\s+([.,;:!?…])", r"\1", plain)
        if not re.search(r"[^\W_]", plain):
            if markers and out:  # a line of markers alone: they belong to the sentence before
                prev, prev_markers = out[-1]
                out[-1] = (prev, tuple(dict.fromkeys((*prev_markers, *markers))))
            continue
        out.append((plain, tuple(markers)))
    return out


def _numbers(text: str, *, passage: bool) -> set[str]:
    found = {re.sub(r"[.,]", "", t) for t in _NUMBER_TOKEN.findall(text)}
    words = re.findall(r"[^\W\d_]+|%", text.lower())
    table = {**_NUMBER_WORDS, **(_PASSAGE_ONLY_NUMBER_WORDS if passage else {})}
    found.update(table[w] for w in words if w in table)
    found.update("scale:" + _SCALES[w] for w in words if w in _SCALES)
    return found


def missing_numbers(sentence: str, passages: Sequence[str]) -> list[str]:
    """Numbers (and scale words: million, percent...) of ``sentence`` absent from ``passages``."""
    have = set().union(*(_numbers(p, passage=True) for p in passages)) if passages else set()
    # A year or count written "2,000" in English is "2.000" or "2000" in German: compare digits.
    return sorted(n for n in _numbers(sentence, passage=False) if n not in have)


def _trigrams(word: str) -> set[str]:
    w = f"#{word}#"
    return {w[i : i + 3] for i in range(len(w) - 2)}


def _name_found(term: str, keys: set[str], grams: set[str], lowered: str) -> bool:
    alts = _EXONYMS.get(term.lower(), ())
    if any(a in lowered for a in alts):
        return True
    for part in (p for p in re.split(r"[-'’]", term) if p):
        key = spelling_key(part)
        if key in keys or (len(key) >= 5 and any(k.startswith(key[:5]) for k in keys)):
            continue
        g = _trigrams(key)
        if not g or len(g & grams) / len(g) < 0.6:
            return False
    return True


def missing_names(sentence: str, passages: Sequence[str]) -> list[str]:
    """Names of ``sentence`` (capitalised words after the first) that ``passages`` lack, spelling
    tolerant; empty for German sentences, whose capitals mark every noun."""
    if detect_language(sentence) == "de":
        return []
    terms = [t for t in salient_terms(sentence) if not any(ch.isdigit() for ch in t)]
    if not terms:
        return []
    lowered = " ".join(passages).lower()
    keys = {spelling_key(w) for w in re.findall(r"[^\W_]+", lowered)}
    grams: set[str] = set().union(*(_trigrams(k) for k in keys)) if keys else set()
    return [t for t in terms if not _name_found(t, keys, grams, lowered)]


def checker_threshold(embedder: str) -> float:
    """The similarity threshold fitted for ``embedder`` (``checker.json``), else a default."""
    text = resources.files("qa.generation").joinpath("checker.json").read_text("utf-8")
    fitted = json.loads(text).get(embedder)
    return float(fitted["threshold"]) if fitted else UNCALIBRATED_THRESHOLD


class SentenceChecker:
    """Verifies generated sentences against retrieved passages with one embedder."""

    def __init__(self, embedder: Any, threshold: float | None = None) -> None:
        self.embedder = embedder
        self.threshold = (checker_threshold(getattr(embedder, "name", ""))
                          if threshold is None else float(threshold))
        # Passages repeat from question to question: their sentence vectors are kept.
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            # "query:" on both sides: e5's setting for comparing two statements.
            for t, v in zip(todo, self.embedder.embed_queries(todo)):
                self._cache[t] = np.asarray(v, dtype=np.float32)
            while len(self._cache) > 8192:
                self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts])

    @staticmethod
    def units(passage: str) -> list[tuple[str, int, int]]:
        """What a claim is compared with: each sentence of ``passage`` and each pair of adjacent
        sentences, with their offsets in ``passage``."""
        spans = sentence_spans(passage) or [(0, len(passage))]
        out = [(" ".join(passage[s:e].split()), s, e) for s, e in spans]
        out += [(f"{a[0]} {b[0]}", a[1], b[2]) for a, b in zip(out, out[1:])]
        return [u for u in out if u[0]]

    def best_units(self, sentences: Sequence[str], passages: Sequence[Sequence[str]]
                   ) -> list[tuple[float, int, int, int]]:
        """For each sentence, its best cosine similarity to a unit of its own passages
        (``passages[i]`` are the texts sentence ``i`` cites), with which passage (index into
        ``passages[i]``) and where in it: ``(similarity, passage, start, end)``."""
        if not sentences:
            return []
        claims = self._vectors(list(sentences))
        out = []
        for claim, texts in zip(claims, passages):
            units = [(j, u) for j, t in enumerate(texts) for u in self.units(t)]
            if not units:
                out.append((0.0, 0, 0, 0))
                continue
            sims = self._vectors([u[0] for _, u in units]) @ claim
            best = int(sims.argmax())
            j, (_, s, e) = units[best]
            out.append((float(sims[best]), j, s, e))
        return out

    def support(self, sentence: str, passages: Sequence[str]) -> Support:
        """How well ``passages`` back ``sentence`` (no threshold applied)."""
        return self.supports([sentence], [passages])[0]

    def supports(self, sentences: Sequence[str], passages: Sequence[Sequence[str]]
                 ) -> list[Support]:
        """:meth:`support` for many sentences at once (one embedding call for the claims)."""
        best = self.best_units(sentences, passages)
        return [Support(b[0], tuple(missing_numbers(s, p)), tuple(missing_names(s, p)))
                for s, p, b in zip(sentences, passages, best)]

    def check(self, text: str, passages: dict[int, str]) -> list[CheckedSentence]:
        """The model's answer ``text`` sentence by sentence, each marked supported or not
        against ``passages`` (marker number -> passage text), with the evidence it rests on."""
        parts = split_generated(text)
        verdicts = [False] * len(parts)
        todo = [i for i, (_, markers) in enumerate(parts)
                if markers and all(m in passages for m in markers)]
        results = self.supports([parts[i][0] for i in todo],
                                [[passages[m] for m in parts[i][1]] for i in todo])
        for i, res in zip(todo, results):
            verdicts[i] = res.supported(self.threshold)
        out = []
        for (sentence, markers), ok in zip(parts, verdicts):
            evidence: list[tuple[int, int, int, float]] = []
            if ok:
                for m in markers:
                    sim, _, s, e = self.best_units([sentence], [[passages[m]]])[0]
                    evidence.append((m, s, e, sim))
            out.append(CheckedSentence(AnswerSentence(sentence, markers, ok), tuple(evidence)))
        return out


@dataclass(frozen=True)
class CheckedSentence:
    """A generated sentence with its verdict, and for a supported one the span of each cited
    passage it matches best: ``(marker, start, end, similarity)``, offsets in the passage."""

    sentence: AnswerSentence
    evidence: tuple[tuple[int, int, int, float], ...] = ()
