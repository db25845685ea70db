"""What a file is from its first bytes (app.storage.sniff): every magic it knows, the declared
type against the sniffed one, kinds and extensions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.kie.simulator.assets import FILES
from app.storage.sniff import GENERIC_TYPES, SNIFF_BYTES, content_type_of, extension_of, kind_of, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"
UNKNOWN = b"just some text, not a media file at all"

KNOWN_TYPES = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "audio/wav",
    "audio/mpeg",
    "audio/ogg",
    "audio/flac",
    "audio/mp4",
    "video/webm",
    "video/mp4",
    "video/quicktime",
}


def ftyp(brand: bytes) -> bytes:
    """The start of an ISO BMFF file: a 32-byte ``ftyp`` box with ``brand`` as its major brand."""
    return b"\x00\x00\x00\x20ftyp" + brand + b"\x00\x00\x02\x00isomiso2mp41"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\xff\xd8\xff\xdb\x00\x43", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", "audio/wav"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64\x00", "audio/mpeg"),  # MPEG-1 layer III frame sync
        (b"\xff\xf3\x40\xc4", "audio/mpeg"),  # MPEG-2 layer III
        (b"\xff\xe3\x18\xc4", "audio/mpeg"),  # MPEG-2.5 (the shortest sync: 11 bits)
        (b"OggS\x00\x02\x00\x00", "audio/ogg"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "video/webm"),
        (ftyp(b"isom"), "video/mp4"),
        (ftyp(b"mp42"), "video/mp4"),
        (ftyp(b"avc1"), "video/mp4"),
        (ftyp(b"M4A "), "audio/mp4"),
        (ftyp(b"M4B "), "audio/mp4"),
        (ftyp(b"qt  "), "video/quicktime"),
        (ftyp(b"heic"), "image/heic"),
        (ftyp(b"mif1"), "image/heif"),
        (ftyp(b"avif"), "image/avif"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_sniff_knows_each_magic(head: bytes, expected: str) -> None:
    assert sniff(head) == expected
    # Only the start matters: what follows (the rest of the file) never changes the answer.
    assert sniff(head + b"\x00" * 100) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff",  # one byte: too short for a frame sync
        b"\xff\x00\x00\x00",  # 0xFF without the sync bits after it
        b"\xff\xd8",  # two thirds of a JPEG marker
        b"\x89PNG\r\n",  # a truncated PNG signature
        b"GIF88a",
        b"RIFF\x24\x00\x00\x00CDXAfmt ",  # RIFF, but none of WEBP, WAVE or AVI
        b"\x00\x00\x00\x20moov",  # a box, but not ftyp
        b"%PDF-1.7\n",
        b"PK\x03\x04\x14\x00",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        UNKNOWN,
    ],
)
def test_sniff_answers_none_for_bytes_it_does_not_know(head: bytes) -> None:
    assert sniff(head) is None


def test_the_magic_must_be_at_its_offset() -> None:
    assert sniff(b"\x00" + PNG) is None
    assert sniff(b"xxxx" + b"ftypisom") is not None  # ftyp is at offset 4: any size before it
    assert sniff(b"ftypisom") is None  # but not at offset 0
    assert sniff(b"WEBPRIFF\x00\x00\x00\x00") is None


@pytest.mark.parametrize("ext", sorted(FILES))
def test_the_simulators_real_files_are_recognised(ext: str) -> None:
    content_type, data = FILES[ext]
    assert sniff(data[:SNIFF_BYTES]) == content_type
    assert extension_of(content_type) == ext


@given(st.binary(max_size=200))
def test_sniff_never_raises_and_reads_only_the_first_bytes(data: bytes) -> None:
    found = sniff(data)
    assert found is None or found in KNOWN_TYPES
    # Uploads sniff only the first SNIFF_BYTES: no magic may need more.
    assert sniff(data[:SNIFF_BYTES]) == found


@given(st.binary(max_size=100), st.sampled_from(sorted(GENERIC_TYPES)))
def test_a_generic_declared_type_is_always_the_sniffed_one(data: bytes, declared: str) -> None:
    assert content_type_of(declared, data) == (sniff(data) or "application/octet-stream")


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("image/png", "image/png"),
        ("IMAGE/PNG", "image/png"),
        ("image/png; charset=binary", "image/png"),
        ("  Video/MP4 ;codecs=avc1 ", "video/mp4"),
        ("audio/mpeg", "audio/mpeg"),
        ("text/plain", "text/plain"),  # a specific type is kept even if the bytes say otherwise
        ("image/jpeg", "image/jpeg"),
    ],
)
def test_a_specific_declared_type_is_kept_without_parameters(declared: str, expected: str) -> None:
    assert content_type_of(declared, PNG) == expected
    assert content_type_of(declared, UNKNOWN) == expected


@pytest.mark.parametrize(
    "declared",
    [
        None,
        "",
        "   ",
        "application/octet-stream",
        "Application/Octet-Stream; x=y",
        "binary/octet-stream",
        "application/binary",
    ],
)
def test_a_missing_or_generic_declared_type_is_sniffed(declared: str | None) -> None:
    assert content_type_of(declared, PNG) == "image/png"
    assert content_type_of(declared, ftyp(b"qt  ")) == "video/quicktime"
    assert content_type_of(declared, UNKNOWN) == "application/octet-stream"
    assert content_type_of(declared, b"") == "application/octet-stream"


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("image/png", "image"),
        ("image/svg+xml", "image"),
        ("video/mp4", "video"),
        ("video/quicktime", "video"),
        ("audio/mpeg", "audio"),
        ("audio/wav", "audio"),
        ("text/plain", "other"),
        ("application/octet-stream", "other"),
        ("application/mp4", "other"),
        ("imagery/png", "other"),
        ("", "other"),
    ],
)
def test_kind_of(content_type: str, kind: str) -> None:
    assert kind_of(content_type) == kind


@pytest.mark.parametrize(
    ("content_type", "ext"),
    [
        ("image/png", "png"),
        ("image/jpeg", "jpg"),
        ("image/webp", "webp"),
        ("image/gif", "gif"),
        ("video/mp4", "mp4"),
        ("video/quicktime", "mov"),
        ("video/webm", "webm"),
        ("audio/mpeg", "mp3"),
        ("audio/wav", "wav"),
        ("audio/x-wav", "wav"),
        ("audio/mp4", "m4a"),
        ("audio/ogg", "ogg"),
        ("audio/flac", "flac"),
        ("text/plain", "bin"),
        ("application/octet-stream", "bin"),
        ("image/x-unknown", "bin"),
        ("", "bin"),
    ],
)
def test_extension_of(content_type: str, ext: str) -> None:
    assert extension_of(content_type) == ext


def test_every_sniffed_type_has_an_extension_and_a_media_kind() -> None:
    for content_type in KNOWN_TYPES:
        assert extension_of(content_type) != "bin", content_type
        assert kind_of(content_type) in ("image", "video", "audio"), content_type
