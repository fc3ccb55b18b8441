"""python -m bench [--quick] [--only embedding|indexing|ask|scale|updates|milvus] — prints
tables, writes bench/results.json and BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json

from . import embedding, indexing, scale, updates
from .common import RESULTS, machine


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--only", choices=["embedding", "indexing", "ask", "scale", "updates",
                                       "milvus"])
    args = ap.parse_args()
    print(machine())
    if args.only in (None, "embedding"):
        print("\n== indexing throughput ==")
        print(embedding.report(embedding.run(quick=args.quick)))
    if args.only in (None, "indexing"):
        print("\n== indexing choices: quality, speed, cold start ==")
        print(indexing.report(indexing.run(quick=args.quick)))
    if args.only in (None, "ask"):
        from . import ask_latency

        print("\n== warm ask on the sample articles ==")
        print(ask_latency.report(ask_latency.run(rounds=1 if args.quick else 3)))
    if args.only in (None, "scale"):
        print("\n== answering at scale ==")
        print(scale.report(scale.run(quick=args.quick)))
    if args.only in (None, "updates"):
        print("\n== updates at scale ==")
        print(updates.report(updates.run(quick=args.quick)))
    if args.only in (None, "milvus"):
        from . import milvus

        print("\n== the index in Milvus Lite, next to FAISS ==")
        print(milvus.report(milvus.run(quick=args.quick)))
    if not args.quick:
        from .write_md import write

        write(json.loads(RESULTS.read_text("utf-8")))
        print("\nwrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
