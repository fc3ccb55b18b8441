"""Splitting documents into passages and sentences, keeping exact character offsets.

Contract, checked by the tests on real text: for every chunk ``doc.text[chunk.start:chunk.end] ==
chunk.text``, and every sentence span ``(s, e)`` of a chunk lies inside it. Citations are built
from these offsets, never by searching for text again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .documents import Document
from .errors import BadRequest

# Sizes in characters. German runs at roughly 4-5 characters per model token, so 800 characters
# stay far below the 512 tokens the embedding model reads, and so do the 1,600 of a whole
# paragraph (see Chunker).
DEFAULT_CHUNK_SIZE = 800
DEFAULT_CHUNK_OVERLAP = 0
# The splitters an index can record: v2 split any text longer than chunk_size, paragraphs
# included; v3 (the default) keeps a paragraph of up to twice chunk_size whole.
SPLITTER_V2 = "recursive-sentence-v2"
SPLITTER = "paragraph-sentence-v3"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: travels unchanged from the splitter to the index and the UI."""

    doc_id: str
    chunk_id: int
    text: str
    start: int
    end: int
    title: str = ""
    sentences: tuple[tuple[int, int], ...] = field(default=())

    def sentence_texts(self) -> list[str]:
        """The text of each sentence span, in order."""
        return [self.text[s - self.start : e - self.start] for s, e in self.sentences]

    def to_json(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "sentences": [list(s) for s in self.sentences],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Chunk:
        return cls(
            doc_id=d["doc_id"],
            chunk_id=int(d["chunk_id"]),
            text=d["text"],
            start=int(d["start"]),
            end=int(d["end"]),
            title=d.get("title", ""),
            sentences=tuple((int(s), int(e)) for s, e in d.get("sentences", ())),
        )


# Abbreviations after which a full stop does not end a sentence (German and English; any
# single letter, in any script, counts as one too: initials, "z. B.", Arabic "د.").
_ABBREVIATIONS = {
    "z", "b", "bzw", "ca", "dr", "prof", "nr", "vgl", "usw", "etc", "inkl", "ggf", "u", "a",
    "d", "h", "i", "e", "mr", "mrs", "ms", "st", "jr", "sr", "vs", "no", "abs", "art", "bd",
    "evtl", "mio", "mrd", "rd", "sog", "tel", "jh", "jhd", "gen", "hl", "mag", "dipl", "ing",
    "okt", "nov", "dez", "jan", "feb", "aug", "sept", "sep", "u.a", "z.b", "d.h", "u.s", "e.g",
    "i.e",
}
# Sentence ends: Latin, Greek and Cyrillic full stop, question and exclamation marks and the
# ellipsis; the Arabic question mark and Urdu full stop; the Devanagari danda; the Armenian and
# Ethiopic full stops; followed by closing quotes or brackets and whitespace. CJK full stops and
# marks end a sentence with or without whitespace after them.
_ENDS = ".!?…؟۔।॥։።፧"
_CJK_ENDS = "。！？｡"
_CLOSERS = "\"'”“»«’)\\]」』）】》"
_BOUNDARY = re.compile(
    rf"(?<=[{_ENDS}])[{_CLOSERS}]*\s+|(?<=[{_CJK_ENDS}])[{_CLOSERS}]*\s*|\n+")
_CJK_OPEN, _CJK_CLOSE = "《「『（【", "》」』）】"
_OPENERS = "\"'„“«»(\\[「『（"
_SENTENCE_STARTERS = "¿¡–—-"


def _starts_sentence(text: str) -> bool:
    """Whether ``text`` can begin a sentence: not with a lowercase letter (after an opening
    quote). Letters of scripts without case (Arabic, Devanagari, CJK...) can."""
    text = text.lstrip(_OPENERS)
    if not text:
        return False
    c = text[0]
    return not c.islower() and (c.isalnum() or c in _SENTENCE_STARTERS)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans ``(s, e)`` in ``text[start:end]``, whitespace trimmed, absolute offsets.

    ``text[s:e]`` is the sentence, exactly. Sentences end at a sentence mark (see ``_ENDS`` and
    ``_CJK_ENDS``) before a word that can start a sentence, unless the mark follows an
    abbreviation, a single letter or a one- or two-digit number (a German ordinal), and at line
    breaks.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    s = start
    for m in _BOUNDARY.finditer(text, start, end):
        if "\n" in m.group():
            cut = True
        elif text[m.start() - 1] in _CJK_ENDS:
            # not inside a title or quotation: 《摔跤吧！爸爸》 is one name
            inner = text[s : m.start()]
            cut = m.end() < end and sum(map(inner.count, _CJK_OPEN)) <= sum(
                map(inner.count, _CJK_CLOSE))
        else:
            nxt = text[m.end() : m.end() + 3]
            before = text[s : m.start()].rstrip(_ENDS)
            last_word = re.split(r"\s", before)[-1].lower() if before else ""
            cut = _starts_sentence(nxt) and not (
                last_word in _ABBREVIATIONS
                or (len(last_word) == 1 and last_word.isalpha())
                or (len(last_word) <= 2 and last_word.isdigit())
            )
        if cut:
            _append_trimmed(text, s, m.start() + len(m.group().rstrip()), spans)
            s = m.end()
    _append_trimmed(text, s, end, spans)
    return spans


def _append_trimmed(text: str, s: int, e: int, spans: list[tuple[int, int]]) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        spans.append((s, e))


class Chunker:
    """Splits documents into passages at paragraph, line and sentence boundaries, then records
    exact offsets and the sentence spans of each passage.

    A passage is a paragraph where it can be: short paragraphs are joined up to ``chunk_size``
    characters, a paragraph of up to twice ``chunk_size`` stays whole, a heading or short line
    (up to a quarter of ``chunk_size``) opens the passage of the paragraph after it, and only a
    longer paragraph (or a text without paragraph breaks) is split, by LangChain's recursive
    splitter, at line, sentence and clause ends (``chunk_overlap`` applies there). Splitting a
    paragraph in two made the passage at rank 1 the wrong half of the right paragraph: on the
    XQuAD dev half (one paragraph per document) the first passage held the answer for 0.903 of
    the English questions with 800-character pieces, 0.927 with whole paragraphs, while the
    right paragraph came first as often (0.922). ``splitter=SPLITTER_V2`` splits as indexes
    built before did (any text over ``chunk_size``), so that they keep their chunking.
    """

    def __init__(
        self, *, chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        splitter: str = SPLITTER,
    ) -> None:
        if chunk_size < 50:
            raise BadRequest(f"chunk_size must be at least 50 characters, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise BadRequest(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")
        if splitter not in (SPLITTER, SPLITTER_V2):
            raise BadRequest(f"unknown splitter {splitter!r}: this version knows {SPLITTER!r} "
                             f"and {SPLITTER_V2!r}")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.splitter = splitter
        self._splitter: Any = None

    @classmethod
    def from_settings(cls, chunking: dict[str, Any]) -> Chunker:
        """The chunker an index was built with (its manifest's ``chunking``); indexes that
        recorded no splitter, or v2, split as v2 did."""
        splitter = chunking.get("splitter", SPLITTER_V2)
        return cls(chunk_size=chunking["chunk_size"], chunk_overlap=chunking["chunk_overlap"],
                   splitter=SPLITTER if splitter == SPLITTER else SPLITTER_V2)

    @property
    def settings(self) -> dict[str, Any]:
        return {"splitter": self.splitter, "chunk_size": self.chunk_size,
                "chunk_overlap": self.chunk_overlap}

    @property
    def max_paragraph(self) -> int:
        """The longest paragraph kept whole (v3)."""
        return 2 * self.chunk_size if self.splitter == SPLITTER else self.chunk_size

    def _get_splitter(self) -> Any:
        if self._splitter is None:
            from langchain_text_splitters import RecursiveCharacterTextSplitter

            self._splitter = RecursiveCharacterTextSplitter(
                chunk_size=self.chunk_size,
                chunk_overlap=self.chunk_overlap,
                # paragraph, line, sentence end, clause, word, character
                separators=["\n\n", "\n", rf"(?<=[{_ENDS}])\s+", rf"(?<=[{_CJK_ENDS}])",
                            r"(?<=[;:])\s+", r"(?<=[,，、،])\s*", " ", ""],
                is_separator_regex=True,
                keep_separator="end",
                strip_whitespace=True,
            )
        return self._splitter

    def pieces(self, text: str) -> list[str]:
        """The passage texts of ``text``, in order (see the class docstring)."""
        if self.splitter == SPLITTER_V2:
            return list(self._get_splitter().split_text(text))
        paragraphs: list[tuple[int, int]] = []
        pos = 0
        for m in _PARAGRAPH_BREAK.finditer(text):
            paragraphs.append((pos, m.start()))
            pos = m.end()
        paragraphs.append((pos, len(text)))
        out: list[str] = []
        run: tuple[int, int] | None = None  # short paragraphs joined so far
        for s, e in paragraphs:
            piece = text[s:e].strip()
            if not piece:
                continue
            s = text.index(piece, s)
            e = s + len(piece)
            if len(piece) <= self.chunk_size and (run is None or e - run[0] <= self.chunk_size):
                run = (run[0] if run else s, e)
                continue
            # A heading or a short line before a long paragraph opens that paragraph's passage
            # (alone, "# The history of the roastery" ranked among the passages for every
            # question about the company, and said nothing).
            before, run = run, None
            leads = before is not None and before[1] - before[0] <= self.chunk_size // 4
            if len(piece) <= self.chunk_size:
                if before is not None and not leads:
                    out.append(text[before[0] : before[1]])
                run = (before[0] if before is not None and leads else s, e)
                continue
            parts = [piece] if len(piece) <= self.max_paragraph else \
                list(self._get_splitter().split_text(piece))
            if before is not None:
                first_end = text.index(parts[0], s) + len(parts[0])
                if leads and first_end - before[0] <= self.max_paragraph:
                    parts[0] = text[before[0] : first_end]
                else:
                    out.append(text[before[0] : before[1]])
            out.extend(parts)
        if run is not None:
            out.append(text[run[0] : run[1]])
        return out

    def split(self, doc: Document) -> list[Chunk]:
        """The passages of ``doc`` in order, each with offsets and sentence spans."""
        pieces = self.pieces(doc.text)
        chunks: list[Chunk] = []
        cursor = 0
        for piece in pieces:
            # Overlapping pieces start before the previous end, but never before its start.
            floor = chunks[-1].start + 1 if chunks else 0
            search_from = max(floor, cursor - self.chunk_overlap - len(piece))
            start = doc.text.find(piece, search_from)
            if start < 0:  # the splitter never rewrites text; this guards the contract
                raise RuntimeError(f"chunk not found in {doc.doc_id} at offset {cursor}")
            end = start + len(piece)
            cursor = end
            chunks.append(
                Chunk(
                    doc_id=doc.doc_id,
                    chunk_id=len(chunks),
                    text=piece,
                    start=start,
                    end=end,
                    title=doc.title,
                    sentences=tuple(sentence_spans(doc.text, start, end)),
                )
            )
        return chunks
