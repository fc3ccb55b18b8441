"""The offsets contract: text[start:end] == chunk.text, on real German text."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.chunking import Chunker, sentence_spans
from qa.documents import Document, load_documents

from .conftest import REPO, SAMPLE


def real_documents() -> list[Document]:
    docs, _ = load_documents([SAMPLE])
    xquad = REPO / "eval" / "xquad" / "corpus"
    more, _ = load_documents([xquad])
    return docs + more[:40]


@pytest.mark.parametrize("size,overlap", [(800, 0), (300, 60), (120, 0)])
def test_chunks_have_exact_offsets_and_cover_the_text(size: int, overlap: int) -> None:
    chunker = Chunker(chunk_size=size, chunk_overlap=overlap)
    for doc in real_documents():
        chunks = chunker.split(doc)
        assert chunks, doc.doc_id
        covered = 0
        for c in chunks:
            assert doc.text[c.start : c.end] == c.text
            assert len(c.text) <= size
            for s, e in c.sentences:
                assert c.start <= s < e <= c.end
                assert doc.text[s:e].strip() == doc.text[s:e]
            covered = max(covered, c.end)
        assert doc.text[covered:].strip() == ""
        assert [c.chunk_id for c in chunks] == list(range(len(chunks)))


def test_sentence_spans_respect_abbreviations_and_dates() -> None:
    text = ("Am 29. März trafen sich die Delegationen, z. B. aus Kiew. Dr. Medinski sagte: "
            "„Deeskalation bedeutet nicht einen Waffenstillstand.“ Danach folgte nichts.")
    sentences = [text[s:e] for s, e in sentence_spans(text)]
    assert sentences == [
        "Am 29. März trafen sich die Delegationen, z. B. aus Kiew.",
        "Dr. Medinski sagte: „Deeskalation bedeutet nicht einen Waffenstillstand.“",
        "Danach folgte nichts.",
    ]


def test_paragraph_breaks_end_sentences() -> None:
    text = "Überschrift ohne Punkt\n\nErster Satz. Zweiter Satz"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Überschrift ohne Punkt", "Erster Satz.", "Zweiter Satz"]


def test_chunker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="chunk_overlap"):
        Chunker(chunk_size=100, chunk_overlap=100)
    with pytest.raises(ValueError, match="chunk_size"):
        Chunker(chunk_size=10)


def test_long_paragraph_is_split_at_sentence_ends(tmp_path: Path) -> None:
    text = " ".join(f"Satz Nummer {i} erzählt etwas Neues über Kiew." for i in range(60))
    doc = Document("long.txt", "long.txt", text, "")
    chunks = Chunker(chunk_size=300).split(doc)
    assert len(chunks) > 5
    assert all(c.text.endswith(".") for c in chunks)
