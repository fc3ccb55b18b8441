"""Durable writes and positioned reads: the file operations every index file goes through.

Writes are fsynced before a folder is renamed into place, so a crash never publishes a partial
file; reads at random offsets use ``pread`` with readahead off, so a query reads only what it
needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import IndexDamaged


def pread_exact(f: BinaryIO, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset``; IndexDamaged if the file is shorter (truncated)."""
    data = os.pread(f.fileno(), size, offset)
    if len(data) != size:
        raise IndexDamaged(f"index file {f.name} is shorter than its manifest says (truncated?); "
                           "rebuild it with `qa index`")
    return data


def open_random(path: Path) -> BinaryIO:
    """Open a file read at random offsets: no readahead, so a query reads only what it needs."""
    f = open(path, "rb")  # noqa: SIM115 - lives as long as the snapshot that reads it
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
    return f


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (new files, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` as a plain ``.npy`` (never pickled) and fsync it."""
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data`` atomically (readers see old or new)."""
    tmp = path.with_name(path.name + ".tmp")
    write_file(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)
