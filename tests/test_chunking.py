"""The offsets contract: text[start:end] == chunk.text, on real German text."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.chunking import SPLITTER, SPLITTER_V2, Chunker, sentence_spans
from qa.documents import Document, load_documents

from .conftest import REPO, SAMPLE


def real_documents() -> list[Document]:
    docs, _ = load_documents([SAMPLE])
    xquad = REPO / "eval" / "xquad" / "corpus"
    more, _ = load_documents([xquad])
    return docs + more[:40]


@pytest.mark.parametrize("splitter", [SPLITTER, SPLITTER_V2])
@pytest.mark.parametrize("size,overlap", [(800, 0), (300, 60), (120, 0)])
def test_chunks_have_exact_offsets_and_cover_the_text(size: int, overlap: int,
                                                      splitter: str) -> None:
    chunker = Chunker(chunk_size=size, chunk_overlap=overlap, splitter=splitter)
    for doc in real_documents():
        chunks = chunker.split(doc)
        assert chunks, doc.doc_id
        covered = 0
        for c in chunks:
            assert doc.text[c.start : c.end] == c.text
            assert len(c.text) <= chunker.max_paragraph
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


def _paragraph(n: int, words: int) -> str:
    return " ".join(f"Absatz {n} Satz {i} erzählt etwas über Kiew." for i in range(words))


def test_a_paragraph_up_to_twice_the_size_stays_one_passage() -> None:
    # between the size and twice it: v2 cut it in two, so the first passage could be the
    # wrong half of the right paragraph
    kept = _paragraph(1, 12)
    assert 300 < len(kept) <= 600
    short = [_paragraph(n, 2) for n in (2, 3, 4)]
    long = _paragraph(5, 60)
    text = "\n\n".join([short[0], kept, *short[1:], long])
    doc = Document("d.txt", "d.txt", text, "")
    texts = [c.text for c in Chunker(chunk_size=300).split(doc)]
    assert kept in texts
    # short paragraphs next to each other are joined up to the size; a longer one is split
    assert "\n\n".join(short[1:]) in texts
    assert short[0] in texts
    assert all(len(t) <= 300 for t in texts if t.startswith("Absatz 5"))
    assert len([t for t in texts if t.startswith("Absatz 5")]) > 1
    v2 = [c.text for c in Chunker(chunk_size=300, splitter=SPLITTER_V2).split(doc)]
    assert kept not in v2 and all(len(t) <= 300 for t in v2)


def test_an_index_keeps_the_splitter_it_was_built_with() -> None:
    assert Chunker.from_settings({"chunk_size": 800, "chunk_overlap": 0}).splitter == SPLITTER_V2
    old = {"splitter": SPLITTER_V2, "chunk_size": 800, "chunk_overlap": 0}
    assert Chunker.from_settings(old).settings == old
    assert Chunker().settings["splitter"] == SPLITTER
    with pytest.raises(ValueError, match="unknown splitter"):
        Chunker(splitter="nonsense")


def test_a_heading_opens_the_passage_of_the_paragraph_after_it() -> None:
    # Alone, a heading before a long paragraph was a passage that said nothing and still
    # ranked among the first for questions about its subject.
    heading = "# Die Geschichte der Falkenried Kaffeerösterei"
    for words in (12, 40):  # a paragraph kept whole, and one that is split
        body = _paragraph(1, words)
        text = f"{heading}\n\n{body}\n\n## Heute\n\n{_paragraph(2, 12)}"
        doc = Document("d.md", "d.md", text, "")
        texts = [c.text for c in Chunker(chunk_size=300).split(doc)]
        assert texts[0].startswith(heading + "\n\nAbsatz 1 Satz 0"), texts[0]
        assert any(t.startswith("## Heute\n\nAbsatz 2") for t in texts)
        assert all(t.strip() not in (heading, "## Heute") for t in texts)
