"""What a file is, from its first bytes: for sources that send no content type or a generic one,
and to check that an upload is what it claims to be."""

from __future__ import annotations

GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/binary"})
SNIFF_BYTES = 64

# (offset, magic, content type); checked in order.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
)


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show, or None when they show none we know."""
    for offset, magic, content_type in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        if brand in (b"heic", b"heix", b"heim", b"heis"):
            return "image/heic"
        if brand in (b"mif1", b"msf1"):
            return "image/heif"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame sync
        return "audio/mpeg"
    return None


def content_type_of(declared: str | None, head: bytes) -> str:
    """The declared type (without parameters) unless it is missing or generic; then the sniffed one."""
    declared_type = (declared or "").split(";", 1)[0].strip().lower()
    if declared_type not in GENERIC_TYPES:
        return declared_type
    return sniff(head) or "application/octet-stream"


def kind_of(content_type: str) -> str:
    """``image``, ``video``, ``audio`` or ``other``."""
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "other"


_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-msvideo": "avi",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mp4": "m4a",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}


def extension_of(content_type: str) -> str:
    """A file extension for a content type (``bin`` when we know none)."""
    return _EXTENSIONS.get(content_type, "bin")
