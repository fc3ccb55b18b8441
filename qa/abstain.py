"""Deciding whether the documents answer a question at all.

Top-1 cosine similarity alone does not separate answerable from unanswerable questions (on the
sample articles both ranges overlap between about 0.77 and 0.84). The decision combines it with
checks that a reader would make:

- **missing terms**: names and numbers of the question (capitalised words, digits) that appear
  in none of the retrieved passages, matched across spelling systems (Kyiv/Kiew, Moscow/Moskau,
  Zelensky/Selenskyj) by a transliteration key and character trigrams;
- **answer type**: a "when" question whose three best sentences hold no date or time; a "how
  many" question whose best sentence holds no number. (On the calibration set every answerable
  "how many" question had a number in its best sentence; a number anywhere in the three best
  sentences carried no signal, as news text has numbers everywhere. A "who" check was dropped:
  German capitalises every noun, so names cannot be told from nouns by their shape.)

A model turns these into a confidence: boosted regression trees (the shipped fit: they can read
one signal differently depending on another, e.g. the scores of a cross-lingual question; each
signal may only push one way, set in ``eval/calibrate.py``) or a logistic model. Its trees or
weights and its threshold are fitted by ``eval/calibrate.py`` on XQuAD (with and without each
question's paragraph) and ``eval/calibration.jsonl`` (a question set written apart from the test
set ``eval/sample.jsonl``) and stored in ``qa/calibration.json``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_STOP = frozenset(
    (
        "what which who whom whose when where why how did does do is are was were the a an of in "
        "on at to for and or with by from about has have had will would can could should this that "
        "these those its it his her their there after before during under over into than then also "
        "not no yes according wer was wann wo warum wie welche welcher welches welchem welchen "
        "wessen wem wen woher wohin der die das den dem des ein eine einer eines einem und oder "
        "mit von zu im am an auf für über nach bei hat haben hatte wurde wurden ist sind war waren "
        "sein seine ihre ihr es sich nicht auch noch laut seit gegen ohne durch um aus vor "
        "zwischen "
    ).split()
)
_KEY_RULES = (("cz", "tsch"), ("tsch", "ch"), ("sch", "sh"), ("ph", "f"), ("th", "t"),
              ("ck", "k"), ("c", "k"), ("q", "k"), ("ie", "i"), ("w", "v"), ("y", "i"), ("j", "i"),
              ("z", "s"))

@lru_cache(maxsize=1 << 16)
def spelling_key(word: str) -> str:
    """Lower case, no diacritics, a few transliteration rules and no doubled letters, so that
    spellings of one name in German and English meet: Kyiv/Kiew -> kiv, Moscow/Moskau -> moskau,
    Zelensky/Selenskyj -> selenski, Qatar/Katar -> katar."""
    w = unicodedata.normalize("NFKD", word.lower())
    w = "".join(c for c in w if not unicodedata.combining(c)).replace("ß", "ss")
    w = re.sub(r"ow$", "au", w)
    for a, b in _KEY_RULES:
        w = w.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", w)


def _trigrams(word: str) -> set[str]:
    w = f"#{word}#"
    return {w[i : i + 3] for i in range(len(w) - 2)}


# Retrieved passages repeat from question to question: their word keys are computed once.
@lru_cache(maxsize=4096)
def _text_keys(text: str) -> frozenset[str]:
    return frozenset(spelling_key(w) for w in re.findall(r"[^\W_]+", text))


@lru_cache(maxsize=4096)
def _text_trigrams(text: str) -> frozenset[str]:
    return frozenset().union(*(_trigrams(w) for w in _text_keys(text)))


def salient_terms(question: str) -> list[str]:
    """The names and numbers of a question: words with digits, and capitalised words that are
    neither the first word nor a question or function word."""
    question = re.sub(r"['’]s\b", "", question)
    terms = []
    for i, word in enumerate(_WORD.findall(question)):
        is_name = i > 0 and len(word) >= 3 and word[0].isupper() and word.lower() not in _STOP
        if is_name or any(ch.isdigit() for ch in word):
            terms.append(word)
    return terms


def missing_terms(question: str, texts: Iterable[str]) -> list[str]:
    """The salient terms of ``question`` that none of ``texts`` contains (fuzzily)."""
    return list(_missing_terms(question, tuple(texts)))


@lru_cache(maxsize=4096)
def _missing_terms(question: str, texts: tuple[str, ...]) -> tuple[str, ...]:
    terms = salient_terms(question)
    if not terms:
        return ()
    words: set[str] = set().union(*(_text_keys(t) for t in texts)) if texts else set()
    grams: set[str] | None = None  # built only if a term needs the fuzzy match
    missing = []
    for term in terms:
        for part in (p for p in re.split(r"[-'’]", term) if p):
            key = spelling_key(part)
            if key.isdigit():
                found = any(key in w for w in words)
            elif key in words or (len(key) >= 5 and any(w.startswith(key[:5]) for w in words)):
                found = True
            else:
                if grams is None:
                    grams = set().union(*(_text_trigrams(t) for t in texts))
                g = _trigrams(key)
                found = len(g & grams) / len(g) >= 0.6
            if not found:
                missing.append(term)
                break
    return tuple(missing)


def no_time(question: str, best_sentences: list[str]) -> float:
    """1.0 where the question asks "when" and none of the best sentences holds a time."""
    from .answer_kinds import answer_kinds, holds_time

    return float(answer_kinds(question)["when"] and not any(map(holds_time, best_sentences)))


def no_number(question: str, best_sentence: str) -> float:
    """1.0 where the question asks "how many" and the best sentence holds no number."""
    from .answer_kinds import answer_kinds, holds_number

    return float(answer_kinds(question)["number"] and not holds_number(best_sentence, question))


def features(
    question: str, passage_scores: list[float], sentence_scores: list[tuple[float, str]],
    passage_texts: list[str], best_probability: float, best_sentence: str,
    best_evidence: dict[str, float] | None = None,
) -> dict[str, float]:
    """All signals for one question: scores of the best passage and sentence and how far the
    best passage stands above the rest, the ranker's belief in its best sentence, missing terms,
    answer-type mismatches, and (``best_evidence``) how much of the question the ranker's best
    sentence and its passage hold."""
    from .answer_kinds import answer_kinds
    from .ranking import form

    ranked = sorted(sentence_scores, key=lambda t: -t[0])
    best = [text for _, text in ranked[:3]]
    top = passage_scores[0] if passage_scores else 0.0
    rest = passage_scores[5:] or passage_scores[1:] or [top]
    missing = missing_terms(question, passage_texts)
    missing_top = missing_terms(question, passage_texts[:1])
    terms = salient_terms(question)
    ev = best_evidence or {}
    p = min(max(best_probability, 1e-4), 1 - 1e-4)
    kinds = answer_kinds(question)
    asks_kind = any(kinds.values())
    q_lang = language(question)
    p_lang = language(passage_texts[0]) if passage_texts else ""
    return {
        # English questions over German text score lower; the model learns how much.
        "cross_lingual": float(bool(q_lang and p_lang and q_lang != p_lang)),
        "top_score": top,
        "top_sentence": ranked[0][0] if ranked else top,
        "lift": top - sum(rest) / len(rest),
        "ranker_logit": math.log(p / (1 - p)),
        "missing_terms": float(bool(missing)),
        "missing_share": len(missing) / len(terms) if terms else 0.0,
        "missing_top_share": len(missing_top) / len(terms) if terms else 0.0,
        "best_content_hit": ev.get("content_hit", 0.0),
        "best_name_hit": ev.get("name_hit", 0.0),
        "best_name_hit_passage": ev.get("name_hit_passage", 0.0),
        "no_time": no_time(question, best),
        "no_number": no_number(question, best_sentence) if best_sentence else 0.0,
        "asks_kind": float(asks_kind),
        "short_answer": form(best_sentence)["short"] if best_sentence else 1.0,
    }


_EN = frozenset("the of and to is was what who did does which how when where why for on with an "
                "are were has have by from that this it".split())
_DE = frozenset("der die das und ist war wer wie wann wo warum welche welcher welches den dem "
                "des ein eine einer nicht mit von zu im auf sich hat haben wurde sind".split())


def language(text: str) -> str:
    """``"en"``, ``"de"`` or ``""`` (unknown), by counting function words."""
    words = [w.lower() for w in _WORD.findall(text)]
    en = sum(w in _EN for w in words)
    de = sum(w in _DE for w in words)
    return "en" if en > de else "de" if de > en else ""


_TAG = re.compile(r"<[^>]*>|&[#\w]+;|\[[^\]]*\]\([^)]*\)")
_GREETING = re.compile(
    r"^(hi|hello|hey|hallo|moin|servus|guten (morgen|tag|abend)|good (morning|afternoon|"
    r"evening)|thanks?( you)?|thank you|danke( schön| sehr)?|bye|tschüss|ok(ay)?|yes|no|ja|nein|"
    r"test(ing)?|ping)\W*$", re.IGNORECASE)


def not_a_question(question: str) -> bool:
    """True for input that asks nothing: markup or code without words outside its tags, a lone
    symbol or number, a greeting or thanks."""
    text = _TAG.sub(" ", question)
    words = [w for w in _WORD.findall(text) if not w.isdigit()]
    if not words or sum(len(w) for w in words) < 3:
        return True
    return bool(_GREETING.match(" ".join(text.split())))


def confidence(feats: dict[str, float], calibration: dict[str, Any]) -> float:
    """The fitted model's probability that the documents answer the question: boosted trees
    (``"trees"``) or a logistic model (``"weights"``), both over :func:`features`."""
    if not feats:
        return 0.0
    z = calibration["bias"] + sum(w * feats.get(n, 0.0)
                                  for n, w in calibration.get("weights", {}).items())
    z += sum(tree_value(tree, feats) for tree in calibration.get("trees", ()))
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def tree_value(tree: list[list[Any]], feats: dict[str, float]) -> float:
    """The leaf value of one regression tree for ``feats``. Nodes are ``[feature, threshold,
    left, right]`` (go left when the feature is at most the threshold) or ``[value]`` (a leaf);
    the root is node 0."""
    node = tree[0]
    while len(node) == 4:
        name, threshold, left, right = node
        node = tree[left if feats.get(name, 0.0) <= threshold else right]
    return float(node[0])
