"""Write BENCHMARKS.md from bench/results.json."""

from __future__ import annotations

from typing import Any

from . import embedding, scale
from .common import REPO

INTRO = """# Benchmarks

Measured by `python -m bench` (`make bench`) on this project's CI machine kind: 2 cores, 24 GiB,
no GPU. Ratios compare numbers taken in the same run; absolute figures move with the machine's
load. Raw numbers: `bench/results.json`. Re-run with `python -m bench` (about 20 minutes; `--quick`
for a smoke run, `--only embedding|scale` for one part).

Machine: {machine}
"""

NOTES = """
## Notes

- **Tokens** are the model's own tokens (special tokens included) of every text embedded: indexing
  embeds each sentence and each passage (two granularities), so the XQuAD corpus's tokens are
  embedded about twice; "corpus tokens/s" counts each document's tokens once.
- **FLOPs per token** are those of the encoder's linear layers plus attention at the measured mean
  length (multilingual-e5-small: 12 layers, 384 wide, about 42 MFLOP/token; MiniLM-L6: 6 layers).
  "Of peak" divides the achieved rate by the float32 matrix-multiply rate numpy reaches on all
  cores in the same run; int8/4-bit engines can exceed it.
- **Scale**: above the XQuAD set the passages are synthetic (vectors mixing two real XQuAD vectors
  of the bundled model plus noise; queries are real XQuAD question embeddings). Up to 50k
  passages the index is exact (flat); above, IVF with 4·√n lists and nprobe 128, whose ~100
  candidates the retriever re-scores exactly with passage and sentence vectors.
- **Memory** is the peak resident set of a fresh process that loads the index and answers 200
  questions (vectors are memory-mapped; passage texts are read on demand). **The 1M figure misses
  the 4 GB target.** Most of it is file-backed: the kernel maps whole large page-cache folios
  when a query reads one 1.5 KB vector, so after 200 questions most of the 4.5 GB of
  memory-mapped vectors count as resident, although they are clean page cache that the kernel
  can drop (`madvise(MADV_RANDOM)` does not prevent it). At 100k passages, `/proc/self/smaps`
  after 200 questions showed 292 MiB of sentence vectors and 146 MiB of passage vectors mapped,
  next to about 0.3 GB of heap. Next step: read candidate vectors with `pread` instead of
  through the memory map, so they never enter the process's resident set.
- **GPU**: no GPU machine was lent to this project's sessions so far, so there are no GPU figures.
  The sentence-transformers path runs on a GPU without code changes (`SentenceTransformer`
  picks CUDA when torch sees one).
"""


def write(results: dict[str, Any]) -> None:
    m = results.get("machine", {})
    parts = [INTRO.format(machine=f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, Python "
                          f"{m.get('python', '?')}, {m.get('when', '?')}")]
    if "embedding" in results:
        parts += ["## Indexing throughput\n", "```text", embedding.report(results["embedding"]),
                  "```\n"]
    if "scale" in results:
        parts += ["## Answering at scale\n", "```text", scale.report(results["scale"]), "```\n"]
    parts.append(NOTES)
    (REPO / "BENCHMARKS.md").write_text("\n".join(parts), "utf-8")
