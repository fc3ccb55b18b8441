"""The Milvus side of :mod:`qa.index.milvus`: connecting, the three collections' schemas and
indexes, and the constants both the index and its retriever use."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import IndexNotFound, QAError

# Same cut-over as the FAISS folder (qa.index.faiss_store.EXACT_LIMIT): exact search up to here,
# an approximate index above (see ANN_INDEX).
EXACT_LIMIT = 50_000
# HNSW rather than IVF: Milvus builds it per segment as data arrives (no training pass over all
# vectors first), and bench/milvus.py measures recall@10 against exact search for it.
ANN_INDEX = {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 16, "efConstruction": 200}}
ANN_SEARCH = {"metric_type": "IP", "params": {"ef": 256}}
EXACT_INDEX = {"index_type": "FLAT", "metric_type": "IP", "params": {}}
MAX_ID_BYTES = 1024
MAX_TEXT_BYTES = 65_535
TITLE_CHARS = 500
STRONG = "Strong"


def milvus_client(uri: str) -> Any:
    """A ``pymilvus.MilvusClient`` for ``uri`` (a ``.db`` file: Milvus Lite; else a server)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise QAError("the Milvus backend needs pymilvus: pip install 'qa-cite[milvus]'") from None
    if uri.endswith(".db"):
        # Milvus Lite serves in this process and lacks AllocTimestamp, which pymilvus's query
        # iterator asks for first and then does without: both sides log it, at every listing.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    token = os.environ.get("QA_MILVUS_TOKEN", "")
    try:
        return MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
    except Exception as exc:  # pymilvus raises its own and grpc's exceptions
        raise IndexNotFound(f"cannot connect to Milvus at {uri}: {one_line(exc)}") from exc


def one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "message", None) or exc).split())[:300]


def literal(values: Iterable[Any]) -> str:
    """A Milvus expression list literal (JSON's quoting is Milvus's: ``\\"``, ``\\\\``)."""
    return json.dumps(list(values), ensure_ascii=False)


def row_id(doc_id: str, version: int, kind: str, n: int) -> int:
    """A primary key unique to (document, version, passage or sentence number): workers on
    different machines never collide, and a rerun gets new keys (it gets a new version)."""
    h = hashlib.blake2b(f"{doc_id}\0{version}\0{kind}\0{n}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") & ((1 << 63) - 1)



def create_collections(client: Any, documents: str, passages: str, sentences: str,
                       dim: int) -> None:
    """Create whichever of the three collections is missing (exact vector index, inverted
    indexes on the fields queries filter on, Strong consistency)."""
    from pymilvus import DataType, MilvusClient

    c = client

    def make(name: str, fields: list[tuple[str, Any, dict[str, Any]]], vec_dim: int,
             scalar_index: Sequence[str]) -> None:
        if c.has_collection(name):
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        for fname, ftype, kw in fields:
            schema.add_field(fname, ftype, **kw)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vec_dim)
        index = c.prepare_index_params()
        index.add_index(field_name="vector", **EXACT_INDEX)
        for f in scalar_index:
            index.add_index(field_name=f, index_type="INVERTED")
        try:
            c.create_collection(name, schema=schema, index_params=index,
                                consistency_level=STRONG)
        except Exception:  # created meanwhile by another worker
            if not c.has_collection(name):
                raise

    varchar = DataType.VARCHAR
    make(passages, [
        ("id", DataType.INT64, {"is_primary": True}),
        ("doc_id", varchar, {"max_length": MAX_ID_BYTES}),
        ("version", DataType.INT64, {}),
        ("chunk_id", DataType.INT64, {}),
        ("text", varchar, {"max_length": MAX_TEXT_BYTES}),
        ("start", DataType.INT64, {}),
        ("end", DataType.INT64, {}),
        ("title", varchar, {"max_length": 4 * TITLE_CHARS}),
        ("sentences", DataType.JSON, {}),
    ], dim, ["doc_id"])
    make(sentences, [
        ("id", DataType.INT64, {"is_primary": True}),
        ("passage_id", DataType.INT64, {}),
        ("doc_id", varchar, {"max_length": MAX_ID_BYTES}),
        ("version", DataType.INT64, {}),
        ("position", DataType.INT64, {}),
    ], dim, ["passage_id", "doc_id"])
    # Milvus requires a vector field in every collection; documents get a 2-d zero one.
    make(documents, [
        ("doc_id", varchar, {"is_primary": True, "max_length": MAX_ID_BYTES}),
        ("version", DataType.INT64, {}),
        ("pending", DataType.INT64, {}),
        ("meta", DataType.JSON, {}),
    ], 2, ["pending"])


def build_ann_index(client: Any, passages: str) -> None:
    """Replace the exact index of the collection ``passages`` by HNSW, and load it."""
    client.release_collection(passages)
    for _ in range(3):  # a dropped connection (gRPC GOAWAY) has lost a drop before
        if "vector" not in client.list_indexes(passages):
            break
        client.drop_index(passages, "vector")
    index = client.prepare_index_params()
    index.add_index(field_name="vector", **ANN_INDEX)
    try:
        client.create_index(passages, index)
    except Exception:
        # A build longer than gRPC's keepalive gets the call retried, and the retry finds the
        # index the first call built.
        if client.describe_index(passages, "vector").get("index_type") != "HNSW":
            raise
    client.load_collection(passages)
