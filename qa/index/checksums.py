"""Checksums of index files and manifests.

Files up to :data:`FULL_CHECK_BYTES` are checksummed whole on every load; larger ones (the
vectors of big indexes) by size and :data:`SAMPLE_BLOCKS` sampled blocks, so a cold start stays
fast, and answering guards the vectors it reads (:func:`.rows.check_unit_rows`); ``qa verify``
checks everything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

FULL_CHECK_BYTES = 16 * 2**20
SAMPLE_BLOCKS = 32
SAMPLE_BLOCK = 64 * 1024


def sha256(path: Path) -> str:
    """SHA-256 of the whole file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sampled_sha256(path: Path) -> str:
    """SHA-256 over the size and 32 evenly spaced blocks (first and last included)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(SAMPLE_BLOCKS):
            f.seek(max(0, (size - SAMPLE_BLOCK) * i // (SAMPLE_BLOCKS - 1)))
            h.update(f.read(SAMPLE_BLOCK))
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """What a manifest records of a file: size, SHA-256, and the sampled SHA-256 if large."""
    entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": sha256(path)}
    if entry["size"] > FULL_CHECK_BYTES:
        entry["sampled_sha256"] = sampled_sha256(path)
    return entry


def well_formed(entry: Any) -> bool:
    """Whether a manifest's entry for a file has a size and a SHA-256."""
    return (isinstance(entry, dict) and isinstance(entry.get("size"), int)
            and not isinstance(entry.get("size"), bool) and isinstance(entry.get("sha256"), str))


def file_problem(path: Path, entry: dict[str, Any], *, full: bool) -> str | None:
    """What is wrong with ``path`` against its manifest ``entry``, or None if it matches.
    ``full=False`` checks large files by their sampled blocks only."""
    if not path.is_file():
        return "is missing"
    if path.stat().st_size != entry["size"]:
        return "has the wrong size (truncated?)"
    sampled = not full and "sampled_sha256" in entry
    actual = sampled_sha256(path) if sampled else sha256(path)
    if actual != entry["sampled_sha256" if sampled else "sha256"]:
        return "does not match its checksum (edited?)"
    return None


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of a manifest's content without its own checksum: a flipped bit anywhere in it
    (the embedder's name, the dimension) is caught like damage to any other file."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
