"""Load test of ``qa serve``: many clients at once, then a long run that watches memory.

    python bench/load.py                                   # 50 clients x 60 s, then 10,000 requests
    python bench/load.py --clients 10 --duration 5 --memory-requests 500 --memory-every 100

Builds the sample-corpus index into a temporary folder with ``qa index`` (or uses ``--index``),
starts ``qa serve`` (web chat and JSON API, the real model) on a free 127.0.0.1 port as a child
process, and then

1. **concurrency**: ``--clients`` threads for ``--duration`` seconds (or until ``--requests`` in
   all), each with its own keep-alive connection, ask ``POST /api/ask`` and ``POST /api/search``
   in turn with questions from a list (English and German, varied so nothing is cached), ``k``
   from 1 to 10. ``--gradio-clients`` of them use the chat's Gradio ``/ask`` endpoint through
   ``gradio_client`` instead. A share (``--bad-share``) of the JSON requests is deliberately bad
   (empty question, ``k`` 0, 3,000 characters) and must get a 4xx with a ``detail``;
   ``--heavy-clients`` of them send only the costliest valid questions (2,000 characters of
   emoji or CJK, thousands of tokens), to see what they do to everyone else's latency;
   ``--writer-clients`` more threads upload and delete documents all the while
   (``bench/writers.py``: one re-uploads a 150 KB document, the others tiny ones), to see
   whether questions wait for updates; their uploads, deletes and 503 "busy" answers are counted
   apart from the questions;
2. **memory**: ``--memory-requests`` more requests from ``--memory-clients`` threads, reading the
   server's resident memory (``VmRSS`` of /proc/PID/status) every ``--memory-every`` requests.

A request fails when it gets no answer in 60 s, an unexpected status, or a body without the
fields it must have (an answer of ``k`` passages, in rank order). Prints requests, failures,
throughput, latency percentiles and the memory series; ``--json FILE`` writes them. Exit status
1 if any request failed. The embedding model runs one question at a time (one C engine behind a
lock), so throughput is about 1 / (time to embed a question) whatever the number of clients.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from .writers import WriterStats, writer_client
except ImportError:  # run as a script, python bench/load.py: its folder is on the path
    from writers import WriterStats, writer_client  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "qa" / "data" / "sample"

QUESTIONS = [
    "What did Ukraine offer in Istanbul?",
    "Wer sollte die Gespräche über eine Deeskalation vermitteln?",
    "Why did Russia say it was withdrawing from Kyiv?",
    "Was ist die stille Übereinkunft von 2023?",
    "Which countries were to give security guarantees?",
    "Wann wurden die Gespräche in Istanbul abgebrochen?",
    "What is the energy strike moratorium?",
    "Wer hat Angriffe auf Energieanlagen eingestellt?",
    "Did Putin fail to take Kyiv?",
    "Welche Rolle spielt Katar?",
    "How do you bake sourdough bread?",  # not in the documents: an abstention
    "Was kostet ein Liter Milch?",
]
BAD = [
    ({"question": "", "k": 3}, 422),
    ({"question": "What did Ukraine offer?", "k": 0}, 422),
    ({"question": "x" * 3000, "k": 3}, 422),
]


def question(rnd: random.Random) -> str:
    """A varied question: the embedder sees a new text almost every time."""
    q = rnd.choice(QUESTIONS)
    return q if rnd.random() < 0.3 else f"{q} ({rnd.randint(1, 10**6)})"


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    kinds: list[str] = field(default_factory=list)  # the route of each latency
    by_kind: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    expected_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.kinds.append(kind)
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.failures) + self.expected_errors


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the server -----------------------------------------------------------------------------------

class Server:
    """``qa serve`` in a child process on a free 127.0.0.1 port."""

    def __init__(self, index: Path, *, api_only: bool = False) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by stop()
        env = {k: v for k, v in os.environ.items() if k not in ("QA_AUTH", "QA_API_TOKEN")}
        cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(index), "--host",
               "127.0.0.1", "--port", str(self.port)] + (["--api-only"] if api_only else [])
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qa serve exited ({self.proc.returncode}): {self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"qa serve did not start in {timeout} s: {self.tail()}")
            time.sleep(0.2)
        # one question, so the model is loaded before anything is timed
        status, body = post(http.client.HTTPConnection("127.0.0.1", self.port, timeout=300),
                            "/api/ask", {"question": QUESTIONS[0], "k": 3})
        if status != 200:
            raise RuntimeError(f"warm-up question failed: {status} {body[:300]!r}")

    def info(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/api/info")
        return json.loads(conn.getresponse().read())  # type: ignore[no-any-return]

    def tail(self, n: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read()[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def post(conn: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


# -- clients --------------------------------------------------------------------------------------

def check_body(path: str, k: int, body: bytes) -> str | None:
    """What is wrong with a 200 answer, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return "body is not JSON"
    passages = data.get("passages")
    if not isinstance(passages, list) or [p.get("rank") for p in passages] != list(
            range(1, k + 1)):
        return f"expected {k} ranked passages"
    if path == "/api/ask" and not (isinstance(data.get("answer"), str)
                                   and isinstance(data.get("abstained"), bool)):
        return "no answer"
    return None


HEAVY = ["😀" * 2000, "猫" * 2000, "x" * 2000]  # the most costly questions allowed (2,000 chars)


def json_client(port: int, stats: Stats, stop: threading.Event, budget: Budget, seed: int,
                bad_share: float, heavy: bool = False) -> None:
    rnd = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while not stop.is_set() and budget.take():
        i += 1
        path = "/api/ask" if i % 2 else "/api/search"
        bad = rnd.random() < bad_share
        if bad:
            body, expected = rnd.choice(BAD)
            k = body["k"]
        else:
            k = rnd.randint(1, 10)
            q = rnd.choice(HEAVY) if heavy else question(rnd)
            body, expected = {"question": q, "k": k}, 200
        t0 = time.perf_counter()
        try:
            status, raw = post(conn, path, body)
        except (OSError, http.client.HTTPException) as exc:
            stats.fail(f"{path}: {type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        dt = time.perf_counter() - t0
        if status != expected:
            stats.fail(f"{path}: status {status}, expected {expected}: {raw[:200]!r}")
        elif bad:
            detail = json.loads(raw).get("detail")
            if isinstance(detail, str) and "\n" not in detail:
                with stats.lock:
                    stats.expected_errors += 1
            else:
                stats.fail(f"{path}: {status} without a one-line detail: {raw[:200]!r}")
        else:
            problem = check_body(path, k, raw)
            if problem:
                stats.fail(f"{path}: {problem}: {raw[:200]!r}")
            else:
                stats.ok("heavy " + path if heavy else path, dt)
    conn.close()


def gradio_client(url: str, stats: Stats, stop: threading.Event, budget: Budget,
                  seed: int) -> None:
    from gradio_client import Client

    rnd = random.Random(seed)
    try:
        client = Client(url, verbose=False)
    except Exception as exc:
        stats.fail(f"gradio: cannot connect: {type(exc).__name__}: {exc}")
        return
    while not stop.is_set() and budget.take():
        k = rnd.randint(1, 10)
        t0 = time.perf_counter()
        try:
            res = client.predict(question(rnd), k, api_name="/ask")
        except Exception as exc:
            stats.fail(f"gradio /ask: {type(exc).__name__}: {exc}")
            continue
        dt = time.perf_counter() - t0
        problem = check_body("/api/ask", k, json.dumps(res).encode())
        if problem:
            stats.fail(f"gradio /ask: {problem}")
        else:
            stats.ok("gradio /ask", dt)
    client.close() if hasattr(client, "close") else None


class Budget:
    """At most ``n`` requests handed out (None: unlimited); a callback every ``every``."""

    def __init__(self, n: int | None, every: int = 0, on_every: Any = None) -> None:
        self.n, self.every, self.on_every = n, every, on_every
        self.taken = 0
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.n is not None and self.taken >= self.n:
                return False
            self.taken += 1
            if self.every and self.on_every and self.taken % self.every == 0:
                self.on_every(self.taken)
            return True


def run_clients(server: Server, *, clients: int, gradio_clients: int, duration: float,
                requests: int | None, bad_share: float, seed: int,
                budget: Budget | None = None, heavy_clients: int = 0,
                writers: WriterStats | None = None, writer_clients: int = 0,
                ) -> tuple[Stats, float]:
    stats = Stats()
    stop = threading.Event()
    budget = budget or Budget(requests)
    threads = []
    writer_threads = [
        threading.Thread(target=writer_client, daemon=True,
                         args=(server.port, writers, stop, seed + 500 + w, w == 0))
        for w in range(writer_clients if writers is not None else 0)]
    for c in range(clients):
        if c < gradio_clients:
            t = threading.Thread(target=gradio_client,
                                 args=(server.url(), stats, stop, budget, seed + c))
        else:
            heavy = c >= clients - heavy_clients
            t = threading.Thread(target=json_client,
                                 args=(server.port, stats, stop, budget, seed + c,
                                       0.0 if heavy else bad_share, heavy))
        t.daemon = True
        threads.append(t)
    for t in writer_threads:  # updates under way before the first question
        t.start()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    deadline = t0 + duration
    while any(t.is_alive() for t in threads) and time.perf_counter() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=90)
    seconds = time.perf_counter() - t0
    for t in writer_threads:  # an upload under way is finished, not cut off
        t.join(timeout=600)
    return stats, seconds


def summary(stats: Stats, seconds: float) -> dict[str, Any]:
    ms = [x * 1000 for x in stats.latencies]
    normal = [x * 1000 for x, kind in zip(stats.latencies, stats.kinds)
              if not kind.startswith("heavy")]
    return {
        "requests": stats.requests,
        "answered": len(stats.latencies),
        "expected_4xx": stats.expected_errors,
        "failures": len(stats.failures),
        "by_route": dict(sorted(stats.by_kind.items())),
        "seconds": round(seconds, 1),
        "throughput_per_s": round(stats.requests / seconds, 2) if seconds else 0.0,
        "latency_ms": {
            "p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1),
            "p99": round(percentile(ms, 99), 1), "max": round(max(ms), 1) if ms else None,
            "mean": round(statistics.fmean(ms), 1) if ms else None,
        },
        "first_failures": stats.failures[:10],
        **({"ordinary_latency_ms": {
            "p50": round(percentile(normal, 50), 1), "p95": round(percentile(normal, 95), 1),
            "p99": round(percentile(normal, 99), 1)}} if len(normal) < len(ms) else {}),
    }


def build_index(dest: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(SAMPLE), "--index",
                           str(dest)], cwd=REPO, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"qa index failed: {proc.stderr[-2000:]}")


def run(*, clients: int = 50, duration: float = 60, requests: int | None = None,
        gradio_clients: int = 2, memory_requests: int = 10_000, memory_every: int = 1000,
        memory_clients: int = 4, bad_share: float = 0.05, index: Path | None = None,
        api_only: bool = False, seed: int = 0, heavy_clients: int = 0,
        writer_clients: int = 0, log: Any = print) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="qa-load-"))
    try:
        if index is None:
            t0 = time.perf_counter()
            index = work / "index"
            build_index(index)
            log(f"built the sample index in {time.perf_counter() - t0:.1f} s")
        else:  # a copy: the server may write (uploads), and the original stays as it was
            shutil.copytree(index, work / "index")
            index = work / "index"
        if api_only:
            gradio_clients = 0
        if gradio_clients:
            try:
                import gradio_client  # noqa: F401
            except ImportError:
                log("gradio_client is not installed: the Gradio route is not load-tested")
                gradio_clients = 0
        server = Server(index, api_only=api_only)
        try:
            t0 = time.perf_counter()
            server.wait_ready()
            log(f"qa serve (pid {server.pid}) ready on {server.url()} in "
                f"{time.perf_counter() - t0:.1f} s")
            info = server.info()
            out: dict[str, Any] = {
                "setup": {"embedder": info.get("embedder"), "documents": info.get("documents"),
                          "passages": info.get("passages"), "clients": clients,
                          "gradio_clients": gradio_clients,
                          "duration_s": duration, "request_cap": requests,
                          "bad_share": bad_share, "api_only": api_only,
                          "heavy_clients": heavy_clients, "writer_clients": writer_clients,
                          "cores": os.cpu_count(), "loadavg_before": os.getloadavg()},
            }
            rss: list[tuple[int, float]] = [(0, rss_kib(server.pid) / 1024)]
            cpu0 = cpu_seconds(server.pid)
            log(f"phase 1: {clients} clients ({gradio_clients} through Gradio), {duration} s"
                + (f" or {requests} requests" if requests else ""))
            writers = WriterStats()
            stats, secs = run_clients(server, clients=clients, gradio_clients=gradio_clients,
                                      duration=duration, requests=requests,
                                      bad_share=bad_share, seed=seed,
                                      heavy_clients=heavy_clients, writers=writers,
                                      writer_clients=writer_clients)
            out["concurrency"] = summary(stats, secs)
            if writer_clients:
                out["concurrency"]["writers"] = writers.summary()
            out["concurrency"]["server_cpu_s"] = round(cpu_seconds(server.pid) - cpu0, 1)
            rss.append((stats.requests, rss_kib(server.pid) / 1024))
            log(f"phase 2: {memory_requests} requests from {memory_clients} clients, memory "
                f"every {memory_every}")
            series: list[tuple[int, float]] = [(0, rss_kib(server.pid) / 1024)]

            def sample(n: int) -> None:
                series.append((n, round(rss_kib(server.pid) / 1024, 1)))

            mstats, msecs = run_clients(
                server, clients=memory_clients, gradio_clients=0, duration=10**9,
                requests=None, bad_share=bad_share, seed=seed + 1000,
                budget=Budget(memory_requests, memory_every, sample))
            if series[-1][0] != mstats.requests:
                series.append((mstats.requests, round(rss_kib(server.pid) / 1024, 1)))
            out["memory"] = summary(mstats, msecs)
            out["memory"]["rss_mib"] = [[n, round(v, 1)] for n, v in series]
            vals = [v for _, v in series[1:]] or [0.0]
            out["memory"]["rss_growth_mib"] = round(vals[-1] - vals[0], 1)
            out["rss_before_and_after_phase_1_mib"] = [round(v, 1) for _, v in rss]
            out["setup"]["loadavg_after"] = os.getloadavg()
            out["server_alive"] = server.proc.poll() is None
            if (out["concurrency"]["failures"] or out["memory"]["failures"]
                    or writers.failures):
                out["server_log_tail"] = server.tail()
            return out
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(res: dict[str, Any]) -> str:
    lines = []
    for name in ("concurrency", "memory"):
        r = res[name]
        lat = r["latency_ms"]
        lines.append(
            f"{name}: {r['requests']} requests in {r['seconds']} s ({r['throughput_per_s']}/s), "
            f"{r['failures']} failed, {r['expected_4xx']} deliberately bad answered 4xx; "
            f"latency ms p50 {lat['p50']}, p95 {lat['p95']}, p99 {lat['p99']}, max {lat['max']}")
        lines.append(f"  by route: {r['by_route']}")
        if "ordinary_latency_ms" in r:
            o = r["ordinary_latency_ms"]
            lines.append(f"  latency of the ordinary questions: p50 {o['p50']}, p95 {o['p95']}, "
                         f"p99 {o['p99']} ms")
        for f in r["first_failures"]:
            lines.append(f"  FAILED {f}")
        if "writers" in r:
            w = r["writers"]
            lines.append(f"  writers meanwhile: {w['uploads']} uploads (median "
                         f"{w['upload_s_median']} s, max {w['upload_s_max']} s), "
                         f"{w['deletes']} deletes, "
                         f"{w['busy_503']} answered 503 busy, {w['failures']} failed")
            for f in w["first_failures"]:
                lines.append(f"  WRITER FAILED {f}")
    mem = res["memory"]
    lines.append("server RSS (MiB) after N requests of phase 2: " + ", ".join(
        f"{n}: {v}" for n, v in mem["rss_mib"]) + f"  (growth {mem['rss_growth_mib']} MiB)")
    lines.append(f"server RSS before / after phase 1: {res['rss_before_and_after_phase_1_mib']}")
    lines.append(f"embedder {res['setup']['embedder']}, {res['setup']['passages']} passages")
    lines.append(f"load average before {res['setup']['loadavg_before']}, after "
                 f"{res['setup']['loadavg_after']} ({res['setup']['cores']} cores)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of phase 1")
    ap.add_argument("--requests", type=int, default=None, help="stop phase 1 after this many")
    ap.add_argument("--gradio-clients", type=int, default=2,
                    help="clients (of --clients) that use the Gradio /ask endpoint")
    ap.add_argument("--memory-requests", type=int, default=10_000)
    ap.add_argument("--memory-every", type=int, default=1000)
    ap.add_argument("--memory-clients", type=int, default=4)
    ap.add_argument("--bad-share", type=float, default=0.05,
                    help="share of deliberately bad JSON requests (must get 4xx)")
    ap.add_argument("--heavy-clients", type=int, default=0,
                    help="clients (of --clients) that send only the costliest valid questions "
                         "(2,000 emoji or CJK characters)")
    ap.add_argument("--writer-clients", type=int, default=0,
                    help="extra clients that upload and delete documents during phase 1 "
                         "(one a 150 KB document, the others tiny ones)")
    ap.add_argument("--index", type=Path, help="use (a copy of) this index, not a new one")
    ap.add_argument("--api-only", action="store_true", help="serve without the chat")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    res = run(clients=args.clients, duration=args.duration, requests=args.requests,
              gradio_clients=args.gradio_clients, memory_requests=args.memory_requests,
              memory_every=args.memory_every, memory_clients=args.memory_clients,
              bad_share=args.bad_share, index=args.index, api_only=args.api_only,
              seed=args.seed, heavy_clients=args.heavy_clients,
              writer_clients=args.writer_clients,
              log=lambda m: print(m, file=sys.stderr, flush=True))
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", "utf-8")
    failed = (res["concurrency"]["failures"] + res["memory"]["failures"]
              + res["concurrency"].get("writers", {}).get("failures", 0))
    return 1 if failed or not res["server_alive"] else 0


if __name__ == "__main__":
    sys.exit(main())
