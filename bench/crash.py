"""Crash safety of the index: a writer killed with SIGKILL at random moments never leaves it
damaged or half-updated, and re-running the update completes the work.

    python bench/crash.py                     # 300 kills (the figures in RELIABILITY.md)
    python bench/crash.py --rounds 30 --seed 1

A child process (``sys.executable -c WORKER``, the fast trigram embedder of tests/conftest.py)
changes, deletes and re-creates documents in a folder and updates the index after each change,
alternating ``Retriever.build`` (sync of the folder), ``Retriever.add`` and ``Retriever.remove``.
Before each index update it appends the state the index is in and the state it is going to
(``{doc_id: "A" | "B"}``, absent = not indexed) to a journal (fsynced), and after it a "done" line.

After each SIGKILL the parent checks that

* the index loads (``Retriever.load``) and every file matches its checksum
  (``IndexDir.verify(full=True)``);
* every document is exactly one of its two known versions, never half: its passages are numbered
  0..n-1 with n as in the manifest, each passage's text is the slice ``text[start:end]`` of that
  version, together they cover all of it, and each passage and sentence vector is the embedding
  of its text;
* the index as a whole is the state before the interrupted update or the state after it (per the
  journal), so no update is half applied and none is lost;
* a re-run (``Retriever.build`` over the folder) succeeds and makes the index match the folder.

Prints the number of kills, where they landed (during a write: an unfinished ``.tmp-*`` folder
or a version not yet made live was left behind), and any failure. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

N_DOCS = 8

WORKER = r"""
import json, os, random, sys
from pathlib import Path
sys.path.insert(0, os.getcwd())
from qa import Retriever
from tests.conftest import TrigramEmbedder
from bench.crash import versions
import qa.index.merge
# Small tiers, so that merges (and kills during them) are frequent; an optimize now and then.
qa.index.merge.MERGE_FACTOR = 3

docs, idx, journal_path, seed = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rnd = random.Random(seed)
V = versions()
names = sorted(V)

def on_disk():
    state = {}
    for n in names:
        p = docs / n
        if p.exists():
            text = p.read_text(encoding="utf-8")
            state[n] = "A" if text == V[n]["A"] else "B"
    return state

def put(name, which):
    p = docs / name
    if which is None:
        p.unlink(missing_ok=True)
        return
    tmp = docs / f".{name}.tmp"
    tmp.write_text(V[name][which], encoding="utf-8")
    os.replace(tmp, p)

def indexed(r):
    return {d: V[d]["hash"][m["sha256"]] for d, m in r.snapshot().documents.items()}

journal = open(journal_path, "a", encoding="utf-8")
def log(rec):
    journal.write(json.dumps(rec) + "\n")
    journal.flush()
    os.fsync(journal.fileno())

r = Retriever.load(idx, embedder=TrigramEmbedder())
print("ready", flush=True)
n = 0
while True:
    changed = rnd.sample(names, rnd.randint(1, 3))
    for name in changed:
        put(name, rnd.choice(["A", "B", "B", None]))
    disk = on_disk()
    before = indexed(r)
    how = rnd.choice(["sync", "sync", "add_remove", "add_remove", "optimize"])
    if how == "optimize":
        n += 1
        log({"begin": n, "how": "optimize", "before": before, "after": before})
        r.optimize()
        log({"done": n})
    elif how == "sync":
        n += 1
        log({"begin": n, "how": "sync", "before": before, "after": disk})
        r = Retriever.build([docs], idx, embedder=TrigramEmbedder())
        log({"done": n})
    else:
        present = [docs / c for c in changed if (docs / c).exists()]
        gone = [c for c in changed if not (docs / c).exists()]
        if present:
            after = dict(before)
            after.update({c: disk[c] for c in changed if c in disk})
            n += 1
            log({"begin": n, "how": "add", "before": before, "after": after})
            r.add(present)
            log({"done": n})
            before = after
        if gone:
            after = {d: v for d, v in before.items() if d not in gone}
            n += 1
            log({"begin": n, "how": "remove", "before": before, "after": after})
            r.remove(gone)
            log({"done": n})
"""


def versions() -> dict[str, dict[str, Any]]:
    """Two known versions (A, B) of each document, several passages long, plus their hashes."""
    rnd = random.Random(7)
    words = ("river mountain village harbour bridge market winter summer council railway "
             "forest castle meadow lantern orchard museum library festival").split()
    out: dict[str, dict[str, Any]] = {}
    for i in range(N_DOCS):
        name = f"doc{i}.txt"
        texts = {}
        for which in "AB":
            paras = []
            for p in range(rnd.randint(2, 6)):
                sents = [
                    " ".join(rnd.choice(words) for _ in range(rnd.randint(6, 16))).capitalize()
                    + f" ({name} {which} {p}.{s})."
                    for s in range(rnd.randint(3, 9))
                ]
                paras.append(" ".join(sents))
            texts[which] = "\n\n".join(paras)
        out[name] = {
            "A": texts["A"], "B": texts["B"],
            "hash": {hashlib.sha256(t.encode()).hexdigest(): w for w, t in texts.items()},
        }
    return out


def _last_record(journal: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the last begin record, the matching done record or None)."""
    begin = done = None
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # killed while writing this line
                continue
            if "begin" in rec:
                begin, done = rec, None
            elif begin is not None and rec.get("done") == begin["begin"]:
                done = rec
    return begin, done


def check_index(idx: Path, v: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Load, verify and inspect the index; returns its state ``{doc_id: "A" | "B"}``.
    Raises AssertionError (or the library's error) when anything is wrong."""
    import numpy as np

    from qa import Retriever
    from qa.index import IndexDir
    from tests.conftest import TrigramEmbedder

    r = Retriever.load(idx, embedder=TrigramEmbedder())
    d = IndexDir(idx)
    if hasattr(d, "verify"):
        d.verify(full=True)
    snap = r.snapshot()
    emb = TrigramEmbedder()
    state: dict[str, str] = {}
    rows: dict[str, list[int]] = {}
    for row in range(len(snap.chunks)):
        rows.setdefault(snap.chunks[row].doc_id, []).append(row)
    assert set(rows) == set(snap.documents), (sorted(rows), sorted(snap.documents))
    for doc_id, meta in snap.documents.items():
        which = v[doc_id]["hash"].get(meta["sha256"])
        assert which is not None, f"{doc_id}: indexed text is neither version"
        text = v[doc_id][which]
        chunks = sorted(((snap.chunks[i], i) for i in rows[doc_id]),
                        key=lambda t: t[0].chunk_id)
        assert [c.chunk_id for c, _ in chunks] == list(range(meta["chunks"])), \
            f"{doc_id}: passages {[c.chunk_id for c, _ in chunks]} of {meta['chunks']}"
        covered = 0
        for c, row in chunks:
            assert c.text == text[c.start:c.end], f"{doc_id}: passage {c.chunk_id} is not a slice"
            assert not text[covered:c.start].strip(), f"{doc_id}: gap before {c.chunk_id}"
            covered = max(covered, c.end)
            assert np.allclose(snap.passage_vectors([row])[0], emb.embed_queries([c.text])[0],
                               atol=1e-5), f"{doc_id}: passage vector of {c.chunk_id}"
            sentences = snap.sentence_vectors_of(row)
            assert len(sentences) == len(c.sentences), f"{doc_id}: sentences of {c.chunk_id}"
            if len(sentences):
                assert np.allclose(sentences, emb.embed_queries(list(c.sentence_texts())),
                                   atol=1e-5)
        assert not text[covered:].strip(), f"{doc_id}: end of the text is missing"
        state[doc_id] = which
    return state


def assert_no_garbage(idx: Path) -> None:
    """Only the live version, the previous one and the segments they list are kept."""
    versions = sorted(p for p in idx.glob("v[0-9]*"))
    assert len(versions) <= 2, [p.name for p in versions]
    listed = set()
    for v in versions:
        listed.update(e["name"] for e in json.loads((v / "manifest.json").read_text())
                      .get("segments", []))
    on_disk = {p.name for p in (idx / "segments").iterdir()} if (idx / "segments").is_dir() \
        else set()
    assert on_disk == listed, f"segments {sorted(on_disk)}, listed {sorted(listed)}"


def disk_state(docs: Path, v: dict[str, dict[str, Any]]) -> dict[str, str]:
    out = {}
    for name in v:
        p = docs / name
        if p.exists():
            t = p.read_text(encoding="utf-8")
            out[name] = "A" if t == v[name]["A"] else "B" if t == v[name]["B"] else "?"
    return out


def run(rounds: int, seed: int = 0, max_delay: float = 0.6, work: Path | None = None,
        verbose: bool = False) -> dict[str, Any]:
    """Kill the worker ``rounds`` times; returns counts and failures (an empty list is a pass)."""
    from qa import Retriever
    from tests.conftest import TrigramEmbedder

    rnd = random.Random(seed)
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="qa-crash-")) if work is None else work
    docs, idx, journal = work / "docs", work / "idx", work / "journal.jsonl"
    v = versions()
    docs.mkdir(parents=True, exist_ok=True)
    for name, texts in v.items():
        (docs / name).write_text(texts["A"], encoding="utf-8")
    Retriever.build([docs], idx, embedder=TrigramEmbedder())

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]))
    where: Counter[str] = Counter()
    failures: list[str] = []
    updates_seen = 0
    t0 = time.monotonic()
    for i in range(rounds):
        journal.unlink(missing_ok=True)
        child = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(docs), str(idx), str(journal),
             str(seed * 100003 + i)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            child.kill()
            failures.append(f"round {i}: worker did not start: {child.stderr.read()[-500:]}")
            child.wait()
            continue
        time.sleep(rnd.uniform(0.0, max_delay))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.returncode != -signal.SIGKILL:
            failures.append(f"round {i}: worker ended by itself ({child.returncode}): "
                            f"{child.stderr.read()[-500:]}")
        # Where did the kill land?
        mid_write = bool(list(idx.glob(".tmp-*")) or list(idx.glob("segments/.tmp-*")))
        current = (idx / "CURRENT").read_text().strip()
        newer = [p.name for p in idx.glob("v[0-9]*") if p.name > current]
        begin, done = _last_record(journal)
        if begin is not None:
            updates_seen += begin["begin"]
        how = f" ({begin.get('how', '?')})" if begin is not None and done is None else ""
        if mid_write:
            where[f"during a write (unfinished .tmp- folder left){how}"] += 1
        elif newer:
            where["after the new version was written, before it was made live"] += 1
        elif begin is not None and done is None:
            where[f"during an update, outside the write{how}"] += 1
        else:
            where["between updates"] += 1
        try:
            state = check_index(idx, v)
            if begin is not None:
                allowed = [begin["after"]] if done is not None else [begin["before"],
                                                                     begin["after"]]
                assert state in allowed, f"index {state} is not one of {allowed}"
            Retriever.build([docs], idx, embedder=TrigramEmbedder())  # the re-run
            after = check_index(idx, v)
            assert after == disk_state(docs, v), f"re-run left {after}, folder has " \
                f"{disk_state(docs, v)}"
            assert not list(idx.glob(".tmp-*")), "re-run left a .tmp- folder"
            assert_no_garbage(idx)
        except Exception as exc:
            failures.append(f"round {i}: {type(exc).__name__}: {exc}")
            # start the next round from a sound index
            Retriever.build([docs], idx, embedder=TrigramEmbedder(), rebuild=True)
        if verbose:
            print(f"round {i + 1}/{rounds}: ok" if not failures else f"round {i + 1}: "
                  f"{len(failures)} failures so far", file=sys.stderr)
    elapsed = time.monotonic() - t0
    versions_left = sorted(p.name for p in idx.glob("v[0-9]*"))
    segments_left = len(list(idx.glob("segments/s*")))
    if own:
        shutil.rmtree(work, ignore_errors=True)
    return {"kills": rounds, "updates_started_by_workers": updates_seen,
            "where": dict(where), "failures": failures, "seconds": round(elapsed, 1),
            "version_folders_left": len(versions_left), "segments_left": segments_left}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=300, help="kills (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-delay", type=float, default=0.6,
                    help="seconds: each kill comes at a random time up to this after start")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.rounds, seed=args.seed, max_delay=args.max_delay, verbose=args.verbose)
    print(f"kills: {res['kills']} in {res['seconds']} s; index updates started by the killed "
          f"workers: {res['updates_started_by_workers']}")
    for k, n in sorted(res["where"].items(), key=lambda t: -t[1]):
        print(f"  {n:4d}  killed {k}")
    print("checks after each kill: load + checksums, documents whole, state before or after "
          "the interrupted update, re-run matches the folder")
    print(f"failures: {len(res['failures'])}")
    for f in res["failures"][:20]:
        print("  " + f)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
