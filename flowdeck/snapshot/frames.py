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

import struct
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["RAW_BLOCK", "SAMPLE", "FrameDecoder", "encode", "raw_frame"]

RAW_BLOCK = 128 * 1024  # zstd's largest block
SAMPLE = 16 * 1024  # bytes compressed to judge whether a chunk compresses
KEEP = 0.95  # a sample must shrink below this share of its size for its chunk to be compressed
_MAGIC = b"\x28\xb5\x2f\xfd"
# Frame header descriptor 0x80: a 4-byte content size, not single-segment, no checksum, no dictionary.
# Window descriptor 0x38: exponent 7, mantissa 0, so a window of 2**17 = 128 KiB (one raw block).
_HEADER = _MAGIC + b"\x80\x38"


def raw_frame(data: bytes | memoryview) -> bytes:
    """A zstd frame holding ``data`` (1 byte to 4 GiB) as raw blocks."""
    size = len(data)
    view = memoryview(data)
    parts: list[bytes | memoryview] = [_HEADER, struct.pack("<I", size)]
    for start in range(0, size, RAW_BLOCK):
        block = view[start : start + RAW_BLOCK]
        last = 1 if start + RAW_BLOCK >= size else 0
        # Block header: bit 0 last block, bits 1-2 type (0: raw), bits 3-23 size; 3 bytes little-endian.
        parts.append((last | len(block) << 3).to_bytes(3, "little"))
        parts.append(block)  # joined once below: one copy of the data
    return b"".join(parts)


def encode(compressor: Any, data: bytes) -> bytes:
    """``data`` as one zstd frame: compressed when a sample of it compresses, else raw blocks."""
    if len(data) > SAMPLE and len(compressor.compress(data[:SAMPLE])) > KEEP * SAMPLE:
        return raw_frame(data)
    frame: bytes = compressor.compress(data)
    return frame


class FrameDecoder:
    """Decode frames piece by piece as they arrive (one decoder per thread: zstd contexts are not shared).

    Memory is the pieces in flight plus zstd's window for the frame: 128 KiB for raw frames, up to the frame's
    content (1 MiB) for compressed ones."""

    def __init__(self, zstandard: Any) -> None:
        self._zstd = zstandard
        self._decompressor = zstandard.ZstdDecompressor()

    def frame(self, pieces: Iterable[bytes | memoryview], ulen: int) -> Iterator[bytes]:
        """The decompressed bytes of one frame given as ``pieces``; raises ValueError when the frame is
        malformed, has trailing bytes or does not decode to exactly ``ulen`` bytes."""
        obj = self._decompressor.decompressobj()
        produced = 0
        try:
            for piece in pieces:
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
