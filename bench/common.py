"""Shared helpers: timing, percentiles, memory, the machine, the corpora used."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
XQUAD = REPO / "eval" / "xquad"
RESULTS = REPO / "bench" / "results.json"


def percentiles(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {
        "p50": round(statistics.median(s), 2),
        "p95": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
        "n": len(s),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB), from ``VmHWM``.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries into it the peak of the process image that
    exec replaced, so a probe started by a benchmark holding gigabytes reported the benchmark's
    peak, not its own."""
    return rss_mb("VmHWM")


def rss_mb(kind: str = "VmRSS") -> float:
    """Resident memory now (MiB): ``VmRSS`` in all, or its ``RssAnon`` (heap: the process's own)
    or ``RssFile`` (mapped files: page cache the kernel can drop) part."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply rate (numpy/BLAS, all cores), best of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b  # warm up
    best = min(timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "when": time.strftime("%Y-%m-%d %H:%M")}


def xquad_paragraphs() -> list[str]:
    return [p.read_text("utf-8") for p in sorted((XQUAD / "corpus").rglob("*.txt"))]


def xquad_questions(lang: str = "en") -> list[str]:
    rows = [json.loads(x) for x in (XQUAD / "questions.jsonl").read_text("utf-8").splitlines()]
    return [r["question"] for r in rows if r["lang"] == lang]


def save_section(name: str, data: dict[str, Any]) -> None:
    results = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else {}
    results[name] = data
    results["machine"] = machine()
    RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", "utf-8")
