"""The scripts in examples/ run as a user would run them, and print what they promise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

EXAMPLES = REPO / "examples"
NEUTRAL = "sich dauerhaft neutral zu erklären"
ISTANBUL = "istanbul-peace-talks.de.txt"


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # never the user's default index
    env.pop("QA_INDEX", None)
    env.pop("QA_API_TOKEN", None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_example(name: str, *args: str, env: dict[str, str], check: bool = True,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=REPO, env=env, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.model
def test_python_api_example(sample_index: Path, tmp_path: Path) -> None:
    out = run_example("python_api.py", str(sample_index), env=_env(tmp_path)).stdout
    assert "index: 2 documents" in out
    assert "Q: What did Ukraine offer in Istanbul?" in out
    assert NEUTRAL in out and "[1]" in out
    assert f"[1] {ISTANBUL}, characters 0-" in out
    assert "A: Not found in the documents." in out  # the unanswerable question


@pytest.mark.model
def test_python_api_example_builds_its_own_index(tmp_path: Path) -> None:
    proc = run_example("python_api.py", env=_env(tmp_path))
    assert "building an index of" in proc.stderr
    assert NEUTRAL in proc.stdout
    assert not (tmp_path / "cache" / "qa" / "sample-index").exists()


@pytest.mark.model
def test_langchain_chain_example(sample_index: Path, tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    out = run_example("langchain_chain.py", str(sample_index), env=_env(tmp_path)).stdout
    assert "=== chain.invoke" in out
    assert f"[1] {ISTANBUL} (characters 0-" in out and NEUTRAL in out
    assert "Question: What did Ukraine offer in Istanbul?\nAnswer:" in out
    assert "=== retriever.batch" in out and "Wer sollte die Gespräche vermitteln?\n  -> " in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_server(sample_index: Path, tmp_path: Path) -> Iterator[str]:
    """``qa serve --api-only`` over the sample index, in a subprocess on a free port."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w+", encoding="utf-8")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--api-only", "--index", str(sample_index),
         "--port", str(port)],
        cwd=REPO, env=_env(tmp_path), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"qa serve did not come up: {log.read()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


@pytest.mark.model
def test_http_client_example(api_server: str, tmp_path: Path) -> None:
    out = run_example("http_client.py", api_server, env=_env(tmp_path)).stdout
    assert "Q: What did Ukraine offer in Istanbul?" in out
    assert NEUTRAL in out and "(abstained: False" in out
    assert f"[1] {ISTANBUL}, characters 0-" in out
    assert "search 'Wer sollte die Gespräche vermitteln?':\n  [1] " in out
    assert "documents:\n" in out and f"  {ISTANBUL}: " in out
    assert "energy-strike-moratorium.de.txt: " in out


def test_http_client_example_without_a_server(tmp_path: Path) -> None:
    proc = run_example("http_client.py", f"http://127.0.0.1:{_free_port()}",
                       env=_env(tmp_path), check=False, timeout=60)
    assert proc.returncode == 1
    assert "no qa server at" in proc.stderr and "qa serve --api-only" in proc.stderr
