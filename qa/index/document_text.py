"""A document's whole text from an index version, for reading it beside its citations."""

from __future__ import annotations

from ..documents import UnreadableFile, read_document
from ..errors import BadRequest
from .snapshot import Snapshot


def document_text(snap: Snapshot, doc_id: str) -> str:
    """The text the offsets of ``doc_id``'s passages refer to: the source file when it still
    holds what was indexed (same SHA-256), else the passages put back at their offsets, the gaps
    between them (whitespace the splitter dropped) as line breaks and spaces of the same length.
    BadRequest for an id the index does not hold."""
    meta = snap.documents.get(doc_id)
    if meta is None:
        raise BadRequest(f"no document {doc_id!r} in the index")
    try:
        doc = read_document(meta.get("source") or "", doc_id)
        if doc.content_hash == meta.get("sha256"):
            return doc.text
    except (UnreadableFile, OSError):
        pass
    pieces: list[str] = []
    end = 0
    for c in sorted((c for c in snap.chunks if c.doc_id == doc_id), key=lambda c: c.start):
        if c.start > end:
            pieces.append("\n" * min(c.start - end, 2) + " " * max(c.start - end - 2, 0))
        if c.end > end:
            pieces.append(c.text[max(end - c.start, 0):])
            end = c.end
    return "".join(pieces)
