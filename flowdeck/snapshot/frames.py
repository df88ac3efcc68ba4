"""The zstd frames of a pack: how a chunk of a file is encoded, and how a frame is decoded as it streams in.

Every frame is a standard zstd frame, so any zstd decoder (and any flowdeck that reads packs) reads them. A
chunk that does not compress (random bytes, archives, images, models: most large files) is written as a frame
of *raw blocks*: the bytes as they are behind a 3-byte header per 128 KiB. That costs no compression CPU on
push (zstd level 3 runs at about 660 MB/s on such data here, copying at several GB/s) and decodes as a copy on
pull. Whether a chunk compresses is judged from its first 16 KiB, compressed at the pack's level: a sample
that shrinks by less than 5 % means the chunk is stored raw (see docs/storage.md, "Snapshots").

Raw frames declare a 128 KiB window (not the whole chunk), so decoding one as it streams in holds at most
about 256 KiB per stream.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

__all__ = [
    "RAW_BLOCK",
    "SAMPLE",
    "FrameDecoder",
    "encode",
    "raw_block_header",
    "raw_frame",
    "raw_frame_header",
    "raw_frame_size",
    "stored_raw",
    "write_frame",
]

RAW_BLOCK = 128 * 1024  # zstd's largest block
SAMPLE = 16 * 1024  # bytes compressed to judge whether a chunk compresses
KEEP = 0.95  # a sample must shrink below this share of its size for its chunk to be compressed
_MAGIC = b"\x28\xb5\x2f\xfd"
# Frame header descriptor 0x80: a 4-byte content size, not single-segment, no checksum, no dictionary.
# Window descriptor 0x38: exponent 7, mantissa 0, so a window of 2**17 = 128 KiB (one raw block).
_HEADER = _MAGIC + b"\x80\x38"


def raw_frame(data: bytes | memoryview) -> bytes:
    """A zstd frame holding ``data`` (1 byte to 4 GiB) as raw blocks."""
    return b"".join(_raw_parts(data))


def _raw_parts(data: bytes | memoryview) -> list[bytes | memoryview]:
    size = len(data)
    view = memoryview(data)
    parts: list[bytes | memoryview] = [raw_frame_header(size)]
    for start in range(0, size, RAW_BLOCK):
        block = view[start : start + RAW_BLOCK]
        parts.append(raw_block_header(len(block), start + RAW_BLOCK >= size))
        parts.append(block)  # a view: the caller joins or writes them, one copy of the data at most
    return parts


def stored_raw(compressor: Any, sample: bytes | memoryview, size: int) -> bool:
    """Whether a chunk of ``size`` bytes beginning with ``sample`` (at least its first SAMPLE bytes, when it
    has that many) is written as raw blocks."""
    return size > SAMPLE and len(compressor.compress(sample[:SAMPLE])) > KEEP * SAMPLE


def raw_frame_size(size: int) -> int:
    """The length of ``raw_frame`` of ``size`` bytes: its header and one 3-byte header per block."""
    return _RAW_HEAD + 3 * -(-size // RAW_BLOCK) + size


def raw_block_header(size: int, last: bool) -> bytes:
    """The 3-byte header of a raw block of ``size`` bytes."""
    # Bit 0 last block, bits 1-2 type (0: raw), bits 3-23 size; 3 bytes little-endian.
    return (int(last) | size << 3).to_bytes(3, "little")


def raw_frame_header(size: int) -> bytes:
    """The header of ``raw_frame`` of ``size`` bytes (its blocks follow)."""
    return _HEADER + struct.pack("<I", size)


def _compresses(compressor: Any, data: bytes | memoryview) -> bool:
    return not stored_raw(compressor, data, len(data))


def encode(compressor: Any, data: bytes | memoryview) -> bytes:
    """``data`` as one zstd frame: compressed when a sample of it compresses, else raw blocks."""
    if not _compresses(compressor, data):
        return raw_frame(data)
    frame: bytes = compressor.compress(data)
    return frame


def write_frame(out: BinaryIO, compressor: Any, data: bytes | memoryview) -> int:
    """Write ``encode(compressor, data)`` to ``out``; return its length.

    A raw frame is written piece by piece from ``data`` itself, so a writer reusing one read buffer allocates
    nothing per chunk of incompressible data (see flowdeck/snapshot/memory.py on why that matters)."""
    parts: list[bytes | memoryview] = _raw_parts(data) if not _compresses(compressor, data) else [
        compressor.compress(data)
    ]
    size = 0
    for part in parts:
        out.write(part)
        size += len(part)
    return size


class FrameDecoder:
    """Decode frames piece by piece as they arrive (one decoder per thread: zstd contexts are not shared).

    Memory is the pieces in flight, plus zstd's window for a compressed frame (up to its content, 1 MiB)."""

    def __init__(self, zstandard: Any) -> None:
        self._zstd = zstandard
        self._decompressor = zstandard.ZstdDecompressor()

    def frame(self, pieces: Iterable[bytes | memoryview], ulen: int) -> Iterator[bytes | memoryview]:
        """The decompressed bytes of one frame given as ``pieces``; raises ValueError when the frame is
        malformed, has trailing bytes or does not decode to exactly ``ulen`` bytes.

        A frame in the exact form ``raw_frame`` writes is read without zstd: its blocks are yielded as
        slices of the pieces themselves (valid until the next one is asked for), which saves a copy of every
        byte of incompressible data; any other frame goes through zstd."""
        it = iter(pieces)
        head = bytearray()
        rest: bytes | memoryview = b""
        for piece in it:
            need = _RAW_HEAD - len(head)
            head += piece[:need]
            if len(head) == _RAW_HEAD:
                rest = memoryview(piece)[need:]
                break
        if head[:6] == _HEADER and int.from_bytes(head[6:], "little") == ulen:
            yield from _raw_blocks(rest, it, ulen)
            return
        yield from self._zstd_frame(itertools.chain([bytes(head), rest], it), ulen)

    def _zstd_frame(self, pieces: Iterable[bytes | memoryview], ulen: int) -> Iterator[bytes]:
        obj = self._decompressor.decompressobj()
        produced = 0
        try:
            for piece in pieces:
                if not piece:
                    continue
                if obj.eof:
                    raise ValueError("bytes after the end of a frame")
                out = obj.decompress(piece)
                if out:
                    produced += len(out)
                    if produced > ulen:
                        raise ValueError("a frame is longer than recorded")
                    yield out
        except self._zstd.ZstdError as exc:
            raise ValueError(f"a frame does not decompress ({exc})") from None
        if not obj.eof or produced != ulen or obj.unused_data:
            raise ValueError("a frame has the wrong length")


_RAW_HEAD = len(_HEADER) + 4  # the frame header and its 4-byte content size


class _Cursor:
    """Reads a frame's pieces in order, handing out at most the bytes asked for from the current piece."""

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")
        self._at = 0

    def take(self, limit: int, at_end: str) -> memoryview:
        """Up to ``limit`` (> 0) bytes, at least one; ValueError(``at_end``) when the pieces ran out."""
        while self._at >= len(self._piece):
            got = next(self._pieces, None)
            if got is None:
                raise ValueError(at_end)
            self._piece, self._at = memoryview(got), 0
        taken = self._piece[self._at : self._at + limit]
        self._at += len(taken)
        return taken

    def exhausted(self) -> bool:
        """True when no byte is left, in the current piece or any later one (reads the rest)."""
        return self._at >= len(self._piece) and not any(len(p) for p in self._pieces)


def _raw_blocks(
    first: bytes | memoryview, rest: Iterator[bytes | memoryview], ulen: int
) -> Iterator[bytes | memoryview]:
    """The contents of the raw blocks of a frame whose header (content size ``ulen``) was read; the pieces
    must hold exactly the blocks, each a raw block of at most RAW_BLOCK bytes, the last one flagged."""
    cursor = _Cursor(itertools.chain([first], rest))
    produced = 0
    last = False
    while not last:
        header = bytearray()
        while len(header) < 3:
            header += cursor.take(3 - len(header), "a frame ends inside a block header")
        value = int.from_bytes(header, "little")
        last, kind, size = bool(value & 1), (value >> 1) & 3, value >> 3
        if kind != 0 or size > RAW_BLOCK or produced + size > ulen:
            raise ValueError("a frame does not decompress (a block is not as recorded)")
        produced += size
        while size:
            take = cursor.take(size, "a frame ends inside a block")
            size -= len(take)
            yield take
    if produced != ulen:
        raise ValueError("a frame has the wrong length")
    if not cursor.exhausted():
        raise ValueError("bytes after the end of a frame")
