"""Crash safety: a writer killed at any moment leaves the index loadable, verified and in the
state before or after its update, never half; two writers at once never corrupt it.

The random-kill check is bench/crash.py (300 kills there, 30 here); the same worker, checks and
journal are used. Everything runs with the fast trigram embedder in child processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import crash
from qa import IndexBusy, Retriever
from qa.index import IndexDir

from .conftest import REPO, TrigramEmbedder


def test_thirty_random_kills_never_damage_the_index(tmp_path: Path) -> None:
    res = crash.run(30, seed=11, work=tmp_path)
    assert res["failures"] == [], res["failures"]
    assert res["kills"] == 30
    assert res["updates_started_by_workers"] > 0


# A writer that kills itself (SIGKILL) at its N-th step: before each file it writes (through
# qa.index.files), each folder fsync, rename, replace and folder removal of IndexDir.write. Run
# for N = 1, 2, ... until one gets through all of them.
STEP_KILLER = r"""
import os, signal, sys, shutil
sys.path.insert(0, os.getcwd())
import qa.index.files as files
import qa.index.merge
import qa.index.storage as st
from qa import Retriever
from tests.conftest import TrigramEmbedder

docs, idx, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
qa.index.merge.MERGE_FACTOR = 2 if mode == "merge" else 10
count = [0]
def step():
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(obj, name):
    orig = getattr(obj, name)
    def wrapped(*a, **k):
        step()
        return orig(*a, **k)
    setattr(obj, name, wrapped)

for name in ("write_file", "save_npy", "fsync_dir"):
    wrap(files, name)
wrap(st.os, "rename")
wrap(st.os, "replace")
wrap(st.shutil, "rmtree")
if mode == "optimize":
    Retriever.load(idx, embedder=TrigramEmbedder()).optimize()
else:
    Retriever.build([docs], idx, embedder=TrigramEmbedder())
print("steps", count[0])
"""


def _segments(idx: Path) -> int:
    return len(IndexDir(idx).read().views)


@pytest.mark.parametrize("mode", ["update", "merge", "optimize"])
def test_a_kill_at_every_step_of_a_write_leaves_old_or_new(tmp_path: Path, mode: str) -> None:
    """``update``: two documents change and one is deleted (a new segment and deletion marks);
    ``merge``: the same update fills a tier of segments, which it merges into its new one;
    ``optimize``: every segment merged into one, deleted rows dropped."""
    v = crash.versions()
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    for i, (name, texts) in enumerate(v.items()):
        (docs / name).write_text(texts["A"], encoding="utf-8")
        if mode != "update" and i % 3 == 2:  # several segments, some rows deleted
            (docs / "doc0.txt").write_text(v["doc0.txt"]["AB"[i % 2]], encoding="utf-8")
            Retriever.build([docs], idx, embedder=TrigramEmbedder())
    (docs / "doc0.txt").write_text(v["doc0.txt"]["A"], encoding="utf-8")
    Retriever.build([docs], idx, embedder=TrigramEmbedder())
    old = crash.check_index(idx, v)
    segments_before = _segments(idx)
    pristine = tmp_path / "pristine"
    shutil.copytree(idx, pristine)
    if mode != "optimize":  # the update: two documents change, one is deleted
        (docs / "doc0.txt").write_text(v["doc0.txt"]["B"], encoding="utf-8")
        (docs / "doc1.txt").write_text(v["doc1.txt"]["B"], encoding="utf-8")
        (docs / "doc2.txt").unlink()
    new = crash.disk_state(docs, v)
    seen = set()
    for n in range(1, 300):
        proc = subprocess.run(
            [sys.executable, "-c", STEP_KILLER, str(docs), str(idx), str(n), mode],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        state = crash.check_index(idx, v)
        assert state in (old, new), (n, state)
        seen.add("new" if state == new else "old")
        if proc.returncode == 0:  # got through every step: nothing left to interrupt
            assert state == new
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        shutil.rmtree(idx)  # back to the old index for the next step
        shutil.copytree(pristine, idx)
    else:
        pytest.fail("the write never completed")
    assert n > 8, n  # there were many steps to interrupt
    if mode == "update":
        assert seen == {"old", "new"}  # kills before and after the switch to the new version
        assert _segments(idx) == segments_before + 1
    else:  # the merge took segments away
        assert _segments(idx) < segments_before + (mode == "merge"), (segments_before, mode)
    if mode == "optimize":
        assert _segments(idx) == 1 and not len(IndexDir(idx).read().views[0].deleted_rows)
    # no garbage is kept beyond the live version, the previous one and their segments
    Retriever.build([docs], idx, embedder=TrigramEmbedder())
    assert not list(idx.glob(".tmp-*"))
    crash.assert_no_garbage(idx)


# -- two indexing runs at once --------------------------------------------------------------------

SLOW_WRITER = r"""
import os, sys, time
sys.path.insert(0, os.getcwd())
from qa import Retriever, IndexBusy
from tests.conftest import TrigramEmbedder

class Slow(TrigramEmbedder):
    def embed_passages(self, texts):
        time.sleep(float(sys.argv[3]))
        return super().embed_passages(texts)

folder, idx = sys.argv[1], sys.argv[2]
print("start", flush=True)
try:
    r = Retriever.load(idx, embedder=Slow())
    rep = r.add([folder])
    print("added", ",".join(rep.added), flush=True)
except IndexBusy as exc:
    print("busy", exc, flush=True)
    sys.exit(3)
"""


def _folder(path: Path, prefix: str, n: int = 3) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        (path / f"{prefix}{i}.txt").write_text(
            f"{prefix} document {i}. " + " ".join(f"Sentence {j} about {prefix}." for j in
                                                  range(30)), encoding="utf-8")
    return path


def test_two_indexing_runs_at_once_both_land(tmp_path: Path, corpus: Path) -> None:
    idx = tmp_path / "idx"
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    a = _folder(tmp_path / "a", "alpha")
    b = _folder(tmp_path / "b", "beta")
    procs = [subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(f), str(idx), "0.3"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for f in (a, b)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # the second waited for the first and built on its result: nothing lost
    r = Retriever.load(idx, embedder=TrigramEmbedder())
    ids = {d["doc_id"] for d in r.documents()}
    assert {"alpha0.txt", "alpha1.txt", "alpha2.txt", "beta0.txt", "beta1.txt",
            "beta2.txt", "cats.txt", "rivers.md", "sub/volcano.html"} == ids
    IndexDir(idx).verify(full=True)


def test_a_second_run_that_cannot_wait_is_told_the_index_is_busy(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idx = tmp_path / "idx"
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    before = (idx / "CURRENT").read_text()
    slow = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(_folder(tmp_path / "a", "alpha")), str(idx),
         "2.0"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert slow.stdout is not None and slow.stdout.readline().strip() == "start"
        # wait until it holds the writer lock
        deadline = time.monotonic() + 60
        while True:
            try:
                with IndexDir(idx).lock():
                    pass
            except IndexBusy:
                break
            assert time.monotonic() < deadline, "the slow writer never took the lock"
            time.sleep(0.02)
        # this run waits at most 0.3 s instead of 30 s
        real_lock = IndexDir.lock
        monkeypatch.setattr(IndexDir, "lock",
                            lambda self, wait=0.0: real_lock(self, wait=min(wait, 0.3)))
        other = _folder(tmp_path / "b", "beta")
        with pytest.raises(IndexBusy) as err:
            Retriever.load(idx, embedder=TrigramEmbedder()).add([other])
        msg = str(err.value)
        assert "being written by another process" in msg and "\n" not in msg
        assert (idx / "CURRENT").read_text() == before  # the busy run changed nothing
    finally:
        out, errs = slow.communicate(timeout=120)
    assert slow.returncode == 0, errs
    monkeypatch.undo()
    r = Retriever.load(idx, embedder=TrigramEmbedder())
    assert "alpha0.txt" in {d["doc_id"] for d in r.documents()}
    IndexDir(idx).verify(full=True)
    # and the busy run simply works when tried again
    r.add([tmp_path / "b"])
    assert "beta0.txt" in {d["doc_id"] for d in Retriever.load(idx).documents()}


def test_the_cli_says_busy_in_one_line(tmp_path: Path, corpus: Path) -> None:
    """`qa index` while another process holds the writer lock (for longer than it waits)."""
    idx = tmp_path / "idx"
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    code = (
        "import sys, qa.index.storage as st\n"
        "real = st.IndexDir.lock\n"
        "st.IndexDir.lock = lambda self, wait=0.0: real(self, wait=min(wait, 0.3))\n"
        "from qa.cli import main\n"
        f"sys.exit(main(['index', {str(corpus)!r}, '--index', {str(idx)!r}, '--rebuild']))\n"
    )
    with IndexDir(idx).lock():
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "QA_PROGRESS": ""})
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("qa:")]
    assert len(lines) == 1 and "being written by another process" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_version_left_unpublished_by_a_kill_is_not_kept_instead_of_the_live_one(
    corpus: Path, tmp_path: Path
) -> None:
    """Killed after its version folder was renamed into place but before CURRENT named it: the
    next writer removes that folder and keeps the previous live version for readers."""
    idx = tmp_path / "idx"
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    (corpus / "cats.txt").write_text("Cats hunt mice at night.")
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    live = (idx / "CURRENT").read_text().strip()
    orphan = idx / f"v{int(live[1:]) + 1:06d}"
    shutil.copytree(idx / live, orphan)  # what the killed writer left
    (corpus / "cats.txt").write_text("Cats sleep all day long.")
    Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    new = (idx / "CURRENT").read_text().strip()
    assert sorted(p.name for p in idx.glob("v[0-9]*")) == [live, new]
    assert not orphan.exists() or orphan.name == new


HALF_REMOVER = r"""
import os, signal, sys, shutil
sys.path.insert(0, os.getcwd())
import qa.index.storage as st
from qa import Retriever
from tests.conftest import TrigramEmbedder

docs, idx, which = sys.argv[1], sys.argv[2], sys.argv[3]
orig = shutil.rmtree
def half_then_kill(path, *a, **k):
    # The files that mark a folder as the index's own go first, then the writer dies.
    for name in ("manifest.json", "segment.json"):
        p = os.path.join(path, name)
        if os.path.exists(p) and (which == "any" or name.startswith(which)):
            os.unlink(p)
            os.kill(os.getpid(), signal.SIGKILL)
    return orig(path, *a, **k)
st.shutil.rmtree = half_then_kill
Retriever.build([docs], idx, embedder=TrigramEmbedder())
"""


@pytest.mark.parametrize("which", ["manifest", "segment"])
def test_a_kill_halfway_through_removing_an_old_version_leaves_no_garbage(
    corpus: Path, tmp_path: Path, which: str
) -> None:
    """The CI failure of 2026-12-02: a writer killed while removing an old version had deleted
    its manifest, so the folder no longer looked like the index's own and was kept forever.
    Removal now renames the folder to a ``.tmp-`` name first; the next writer clears it."""
    idx = tmp_path / "idx"
    for text in ("Cats hunt mice at night.", "Cats sleep all day long."):
        (corpus / "cats.txt").write_text(text)
        r = Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    r.optimize()  # the segments the versions before it listed go with the next update
    (corpus / "cats.txt").unlink()  # this update removes the oldest version and its segment
    proc = subprocess.run([sys.executable, "-c", HALF_REMOVER, str(corpus), str(idx), which],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    (corpus / "dogs.txt").write_text("Dogs bark at the postman.")
    r = Retriever.build([corpus], idx, embedder=TrigramEmbedder())
    assert "dogs.txt" in r.snapshot().documents and "cats.txt" not in r.snapshot().documents
    assert not list(idx.glob(".tmp-*")) and not list(idx.glob("segments/.tmp-*"))
    crash.assert_no_garbage(idx)
