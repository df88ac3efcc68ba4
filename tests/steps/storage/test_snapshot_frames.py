"""The frames of a pack: raw-block frames are standard zstd, and a frame decodes exactly as it streams in."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import zstandard

from flowdeck.snapshot.frames import RAW_BLOCK, FrameDecoder, encode, raw_frame

MIB = 1024 * 1024


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 100, RAW_BLOCK, RAW_BLOCK + 1, MIB])
def test_a_raw_frame_is_a_standard_zstd_frame(size: int) -> None:
    data = os.urandom(size)
    frame = raw_frame(data)
    # The header (10 bytes) and one 3-byte header per 128 KiB block: the data is stored as it is.
    assert len(frame) == size + 10 + 3 * -(-size // RAW_BLOCK)
    assert zstandard.ZstdDecompressor().decompress(frame, max_output_size=size) == data
    assert b"".join(FrameDecoder(zstandard).frame(_pieces(frame, 7777), size)) == data


def test_random_data_is_stored_raw_and_text_compressed() -> None:
    compressor = zstandard.ZstdCompressor(level=3)
    noise = os.urandom(MIB)
    assert encode(compressor, noise) == raw_frame(noise)
    text = b"".join(b"def f%d(x):\n    return x + %d\n" % (i, i) for i in range(40000))[:MIB]
    frame = encode(compressor, text)
    assert len(frame) < len(text) // 4
    assert b"".join(FrameDecoder(zstandard).frame(_pieces(frame, 1000), len(text))) == text


def test_a_small_chunk_is_always_compressed_by_zstd() -> None:
    # Below the sample size, zstd decides (it stores incompressible blocks raw by itself).
    compressor = zstandard.ZstdCompressor(level=3)
    data = os.urandom(8192)
    frame = encode(compressor, data)
    assert zstandard.ZstdDecompressor().decompress(frame, max_output_size=len(data)) == data


@pytest.mark.parametrize(
    ("damage", "expected_length"),
    [
        (lambda f: f[:-5], MIB),  # truncated
        (lambda f: f + b"x", MIB),  # trailing bytes
        (lambda f: f, MIB - 1),  # shorter than recorded
        (lambda f: f, MIB + 1),  # longer than recorded
        (lambda f: f[:4] + b"\x00" + f[5:], MIB),  # a damaged header
    ],
)
def test_a_damaged_frame_raises_value_error(damage: Callable[[bytes], bytes], expected_length: int) -> None:
    frame = damage(raw_frame(os.urandom(MIB)))
    with pytest.raises(ValueError):
        b"".join(FrameDecoder(zstandard).frame(_pieces(frame, 65536), expected_length))


def test_a_damaged_compressed_frame_raises_value_error() -> None:
    text = b"hello flowdeck " * 50000
    frame = bytearray(zstandard.ZstdCompressor(level=3).compress(text))
    frame[len(frame) // 2] ^= 0xFF
    with pytest.raises(ValueError):
        b"".join(FrameDecoder(zstandard).frame([bytes(frame)], len(text)))


@pytest.mark.parametrize("piece", [1, 2, 3, 10, 11, 13, RAW_BLOCK + 3, 4 * MIB])
def test_a_raw_frame_decodes_without_zstd_whatever_the_pieces(piece: int) -> None:
    # Raw frames are read block by block from the pieces themselves; headers may straddle two pieces.
    data = os.urandom(RAW_BLOCK * 2 + 5)
    out = list(FrameDecoder(zstandard).frame(_pieces(raw_frame(data), piece), len(data)))
    assert b"".join(out) == data


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f[:10] + ((RAW_BLOCK + 1) << 3).to_bytes(3, "little") + f[13:],  # a block larger than allowed
        lambda f: f[:10] + (f[10] | 0b010).to_bytes(1, "little") + f[11:],  # not a raw block any more
        lambda f: f[:10] + (f[10] | 1).to_bytes(1, "little") + f[11:],  # the first block flagged last
        lambda f: f[:11],  # ends inside a block header
    ],
)
def test_a_damaged_raw_frame_raises_value_error(damage: Callable[[bytes], bytes]) -> None:
    data = os.urandom(RAW_BLOCK * 2)
    with pytest.raises(ValueError):
        b"".join(FrameDecoder(zstandard).frame(_pieces(damage(raw_frame(data)), 4096), len(data)))
