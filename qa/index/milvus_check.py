"""The consistency check of an index in Milvus (``qa verify --milvus``): exactly the live
version of every document is stored, completely, and no rows of other versions are left."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import IndexDamaged

if TYPE_CHECKING:
    from .milvus import MilvusIndex


def verify(index: MilvusIndex) -> dict[str, Any]:
    """Counts of documents, passages and sentences; IndexDamaged names the first document with
    missing, extra or orphaned rows."""
    docs = index.documents()
    seen: dict[tuple[str, int], int] = {}
    sentences_of: dict[tuple[str, int], int] = {}
    for r in index.iterate(index.passages_name, "", ["doc_id", "version", "sentences"]):
        key = (r["doc_id"], r["version"])
        seen[key] = seen.get(key, 0) + 1
        sentences_of[key] = sentences_of.get(key, 0) + len(r["sentences"])
    stored_sentences: dict[tuple[str, int], int] = {}
    for r in index.iterate(index.sentences_name, "", ["doc_id", "version"]):
        key = (r["doc_id"], r["version"])
        stored_sentences[key] = stored_sentences.get(key, 0) + 1
    for key in sorted(set(seen) | set(stored_sentences)):
        doc = docs.get(key[0])
        if doc is None or doc["version"] != key[1]:
            raise IndexDamaged(f"{index.where}: rows of {key[0]!r} version {key[1]} that is "
                               "not live (orphans; a writer still running, or killed: the "
                               "next `qa index` removes them)")
    for doc_id, doc in docs.items():
        key = (doc_id, doc["version"])
        if seen.get(key, 0) != doc["chunks"] or \
                stored_sentences.get(key, 0) != sentences_of.get(key, 0):
            raise IndexDamaged(f"{index.where}: document {doc_id!r} has {seen.get(key, 0)} "
                               f"of {doc['chunks']} passages or incomplete sentences")
    return {"documents": len(docs), "passages": sum(seen.values()),
            "sentences": sum(stored_sentences.values())}
