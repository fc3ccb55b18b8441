"""Reading files: formats, titles, encodings, and files that must be skipped by name."""

from __future__ import annotations

import os
from pathlib import Path

from qa.documents import decode_bytes, html_to_text, load_documents, read_document


def make_pdf(text: str) -> bytes:
    """A minimal one-page PDF with ``text`` in its text layer."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_folder_is_read_recursively_with_relative_ids_and_titles(corpus: Path):
    docs, skipped = load_documents([corpus])
    by_id = {d.doc_id: d for d in docs}
    assert sorted(by_id) == ["cats.txt", "rivers.md", "sub/volcano.html"]
    assert skipped == []
    assert by_id["rivers.md"].title == "Rivers of Europe"
    assert by_id["cats.txt"].title == "cats.txt"
    html = by_id["sub/volcano.html"]
    assert html.title == "Volcanoes"
    assert "Mount Etna is an active volcano" in html.text
    assert "hidden script text" not in html.text


def test_pdf_text_layer_is_read(tmp_path: Path) -> None:
    f = tmp_path / "report.pdf"
    f.write_bytes(make_pdf("Die Ukraine bot Neutralitaet an."))
    doc = read_document(f)
    assert "Die Ukraine bot Neutralitaet an." in doc.text
    assert doc.title == "report.pdf"


def test_windows_1252_german_is_decoded_with_umlauts(tmp_path: Path) -> None:
    text = "Die Gespräche in Istanbul wurden abgebrochen. Größere Übereinkunft – „bald“."
    f = tmp_path / "alt.txt"
    f.write_bytes(text.encode("cp1252"))
    assert read_document(f).text == text
    latin1 = "Die Gespräche über größere Sicherheitsgarantien für die Ukraine gehen weiter."
    assert decode_bytes(latin1.encode("latin-1")) == latin1


def test_bad_files_are_skipped_and_named_while_good_ones_load(tmp_path: Path, corpus: Path):
    (corpus / "empty.txt").write_text("")
    (corpus / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (corpus / "notes.docx").write_bytes(b"ignored: unsupported suffix in folders")
    docs, skipped = load_documents([corpus, tmp_path / "missing.txt"])
    assert len(docs) == 3
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["empty.txt"] == "contains no text"
    assert "binary" in reasons["blob.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert reasons["missing.txt"] == "no such file or folder"
    assert all("\n" not in str(s) for s in skipped)


def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    f = tmp_path / "secret.txt"
    f.write_text("text")
    f.chmod(0)
    try:
        if os.access(f, os.R_OK):  # root reads anything; nothing to test then
            return
        docs, skipped = load_documents([tmp_path])
        assert docs == [] and "secret.txt" in skipped[0].path
    finally:
        f.chmod(0o644)


def test_symlink_loop_does_not_hang(corpus: Path) -> None:
    (corpus / "sub" / "loop").symlink_to(corpus, target_is_directory=True)
    docs, _ = load_documents([corpus])
    assert len(docs) == len({d.doc_id for d in docs})
    assert "cats.txt" in {d.doc_id for d in docs}


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(tmp_path: Path) -> None:
    # Latin-1 bytes in a name, as old archives leave them: the whole update used to stop with
    # a UnicodeEncodeError when the index was written.
    from qa import Retriever

    from .conftest import TrigramEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kran.txt").write_text("Der Kran steht im Hafen von Kiel.", encoding="utf-8")
    bad = os.path.join(os.fsencode(docs), b"caf\xe9.txt")
    with open(bad, "wb") as f:
        f.write("Ein Café in der Altstadt.".encode())
    r = Retriever.build([docs], tmp_path / "idx", embedder=TrigramEmbedder())
    assert set(r.snapshot().documents) == {"kran.txt"}
    (skip,) = r.last_report.skipped
    assert skip.path.endswith("caf\\xe9.txt") and "not valid UTF-8" in skip.reason
    str(skip).encode("utf-8")  # printable


def test_utf8_with_a_few_damaged_bytes_stays_utf8() -> None:
    data = ("Die Hafenmeisterin heißt Petra Ohlsen. ".encode() + b"\xff\xfe\x80 kaputt "
            + b"Sie arbeitet seit 2011 im Hafen.")
    text = decode_bytes(data)
    assert "heißt Petra Ohlsen" in text and text.count("\ufffd") == 3
    # a single-byte encoding is still read as one
    assert decode_bytes("Grüße aus München".encode("cp1252")) == "Grüße aus München"


def test_html_text_hidden_from_readers_is_not_indexed() -> None:
    # Found by an API tester: "Invisible text says tickets are free." inside a display:none
    # element was indexed and could be cited.
    text, title = html_to_text(
        "<html><head><title>Guide</title></head><body><p>Tickets cost 5 euros.</p>"
        '<div style="display: none"><div>Invisible text says</div> tickets are free.</div>'
        "<p hidden>Also hidden.</p><span style='visibility:hidden'>Gone too.</span>"
        '<p>Open daily.<img src="x.png" style="display:none"> Closed on Mondays.</p></body>'
        "</html>")
    assert title == "Guide"
    assert text == "Tickets cost 5 euros.\n\nOpen daily. Closed on Mondays."
