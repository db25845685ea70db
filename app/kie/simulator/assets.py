"""Tiny but real result files for the KIE simulator: a PNG, an MP4 and an MP3, built in code.

The gateway downloads and stores KIE's results, sniffs their types and may probe them, so the
simulator serves files that are valid in their formats rather than random bytes. Each builder
is pure and deterministic; the module-level constants hold the bytes, built once at import.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 over type + data."""
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def build_png(size: int = 8, rgb: tuple[int, int, int] = (64, 128, 192)) -> bytes:
    """A ``size`` x ``size`` truecolour PNG filled with one colour."""
    # IHDR: width, height, bit depth 8, colour type 2 (RGB), compression 0, filter 0, no interlace.
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * size  # filter type 0 (None) before every scanline
    pixels = zlib.compress(row * size, 9)
    return (
        PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")
    )


def _box(kind: bytes, payload: bytes) -> bytes:
    """One ISO BMFF box: 32-bit size (header included), four-character type, payload."""
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def build_mp4() -> bytes:
    """A minimal ISO BMFF file: ``ftyp``, a ``moov`` holding an ``mvhd``, and a small ``mdat``.

    It has no tracks, so players show nothing, but every box size is right and MIME sniffers
    and box walkers (ffprobe, file(1), our own checks) accept it as MP4.
    """
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isom" + b"iso2" + b"mp41")
    identity_matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, 0, 0, 1000, 1000)  # version 0, no flags, times, timescale, 1 s
        + struct.pack(">IH10x", 0x00010000, 0x0100)  # rate 1.0, volume 1.0, reserved
        + identity_matrix
        + bytes(24)  # pre_defined
        + struct.pack(">I", 2),  # next_track_ID
    )
    mdat = _box(b"mdat", bytes(16))
    return ftyp + _box(b"moov", mvhd) + mdat


# MPEG-1 Layer III, no CRC, 32 kbit/s, 44.1 kHz, no padding, mono: frame size 144*32000/44100 = 104.
_MP3_HEADER = bytes((0xFF, 0xFB, 0x10, 0xC4))
_MP3_FRAME_SIZE = 104
_MP3_SIDE_INFO_MONO = 17


def build_mp3(frames: int = 12) -> bytes:
    """``frames`` silent MPEG-1 Layer III frames (about 0.3 s at 12 frames).

    All-zero side information means ``main_data_begin = 0`` and ``part2_3_length = 0`` for the
    granules: decoders read no Huffman data and output silence.
    """
    frame = _MP3_HEADER + bytes(_MP3_SIDE_INFO_MONO) + bytes(_MP3_FRAME_SIZE - 4 - _MP3_SIDE_INFO_MONO)
    assert len(frame) == _MP3_FRAME_SIZE
    return frame * frames


PNG_BYTES = build_png()
MP4_BYTES = build_mp4()
MP3_BYTES = build_mp3()

# Extension -> (content type, bytes): what ``GET /_sim/files/{name}`` serves.
FILES: dict[str, tuple[str, bytes]] = {
    "png": ("image/png", PNG_BYTES),
    "mp4": ("video/mp4", MP4_BYTES),
    "mp3": ("audio/mpeg", MP3_BYTES),
}
