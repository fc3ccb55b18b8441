"""A short run of bench/load.py: ``qa serve`` (chat and API, the real model) under 10 concurrent
clients for 5 s, two of them through the Gradio ``/ask`` endpoint, then 500 requests while its
memory is watched. No request may fail. The full run (50 clients x 60 s, then 10,000 requests)
is ``python bench/load.py``; its figures are in RELIABILITY.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import load

pytestmark = [pytest.mark.model,
              pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword")]


def test_short_load_run_has_no_failures(sample_index: Path) -> None:
    res = load.run(clients=10, duration=5, gradio_clients=2, memory_requests=500,
                   memory_every=100, memory_clients=4, index=sample_index, log=lambda m: None)
    print(load.report(res))
    for phase in ("concurrency", "memory"):
        r = res[phase]
        assert r["failures"] == 0, r["first_failures"]
        assert r["answered"] > 0 and r["requests"] == r["answered"] + r["expected_4xx"]
    assert res["concurrency"]["by_route"].get("gradio /ask", 0) > 0
    assert {"/api/ask", "/api/search"} <= set(res["concurrency"]["by_route"])
    assert res["memory"]["requests"] == 500
    assert len(res["memory"]["rss_mib"]) >= 5
    assert res["server_alive"]
    # the index given is copied, not changed
    assert (sample_index / "CURRENT").is_file()
