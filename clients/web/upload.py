"""Reading and checking an uploaded photo before it is forwarded to the server.

The photo is the raw request body (no multipart form, so no temporary file): it is read into
memory up to the server's byte limit and refused beyond it, and its kind is sniffed from its
first bytes; only the kinds the server decodes are forwarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from reenact.image_codec import (
    ACCEPTED_FORMATS,
    ACCEPTED_TEXT,
    DecodeLimits,
    ImageDecodeError,
    decode_image,
    sniff_format,
)


class UploadRefused(Exception):
    """An upload the gateway refuses without asking the server.

    status: the HTTP status; kind: a word the page picks its heading by.
    """

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def too_large_message(size: int, limits: DecodeLimits, exact: bool = True) -> str:
    amount = f"{size:,} bytes" if exact else f"more than {size - 1:,} bytes"
    return (
        f"The photo is {amount}; the limit is {limits.max_bytes:,} bytes "
        f"({limits.max_bytes / 1e6:g} MB): send a smaller photo"
    )


def check_declared_size(content_length: str | None, limits: DecodeLimits) -> None:
    """Refuse an upload whose Content-Length is over the limit before reading any of it."""
    if content_length is not None and content_length.isdigit():
        declared = int(content_length)
        if declared > limits.max_bytes:
            raise UploadRefused(413, "too_large", too_large_message(declared, limits))


async def read_limited(chunks: AsyncIterator[bytes], limits: DecodeLimits) -> bytes:
    """The whole body; UploadRefused (413) as soon as it passes ``limits.max_bytes``."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limits.max_bytes:
            raise UploadRefused(
                413, "too_large", too_large_message(limits.max_bytes + 1, limits, exact=False)
            )
        parts.append(chunk)
    return b"".join(parts)


def check_kind(data: bytes, limits: DecodeLimits) -> str:
    """The photo's kind ("JPEG", "PNG", "WebP") from its magic bytes; UploadRefused (415)
    for anything else, with the server's own decoder's message (it names what was sent)."""
    kind = sniff_format(data)
    if kind is not None and kind.upper() in ACCEPTED_FORMATS:
        return kind
    try:
        # refuses from the first bytes or the header: no pixel of a non-image is decoded
        decode_image(data, limits)
    except ImageDecodeError as exc:
        raise UploadRefused(415 if data else 400, "not_image", str(exc)) from exc
    raise UploadRefused(415, "not_image", f"not a {ACCEPTED_TEXT} image")
