"""Decode and encode photos for the service.

:func:`decode_image` accepts JPEG, PNG (also with alpha, 16-bit, grey, palette) and WebP, honours
the EXIF orientation (an unreadable EXIF block is ignored, as image viewers do) and returns RGB
``uint8``. It refuses anything else, empty, truncated or corrupt files and images above a pixel
limit (decompression bombs: the limit is checked on the header, before any pixel is decoded) with
an :class:`ImageDecodeError` a person can act on: it names what was sent when it recognises the
kind of file (a GIF, a PDF, a PNG with a broken header) and says what is accepted. No other
exception leaves it for any input bytes.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reenact.errors import RequestError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPTED_TEXT = "JPEG, PNG or WebP"


class ImageDecodeError(RequestError):
    """The bytes are not an acceptable image."""


@dataclass(frozen=True)
class DecodeLimits:
    """Limits on what :func:`decode_image` accepts."""

    max_pixels: int = 40_000_000
    max_bytes: int = 50_000_000
    alpha_background: int = 255  # grey level that transparent pixels are composited over


# Exceptions Pillow's readers raise on malformed input (a plugin's own ``_open`` lets OSError and
# ValueError through Image.open; struct.error, EOFError and the others come from short reads and
# bad offsets while parsing headers and EXIF).
DECODER_FAILURES = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
)

# (what the file starts with, at which offset) → what it is, for a refusal that says what was sent
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"WEBP", 8, "WebP"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"%PDF", 0, "PDF"),
    (b"8BPS", 0, "Photoshop (PSD)"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG 2000"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", 0, "JPEG XL"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
)
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}
_TEXT_SIGNATURES = ((b"<svg", "SVG"), (b"<!doctype html", "HTML"), (b"<html", "HTML"))


def sniff_format(data: bytes) -> str | None:
    """What kind of file ``data`` starts like ("PNG", "GIF", "SVG", ...), or None."""
    for magic, offset, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return kind
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[data[8:12]]
    head = data[:1024].lower()
    for marker, kind in _TEXT_SIGNATURES:
        if marker in head:
            return kind
    return None


def _bomb_message(exc: Exception, limits: DecodeLimits) -> str:
    declared = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow: "Image size (N pixels) ..."
    size = f"{declared.group(1)} pixels" if declared else "more pixels than Pillow allows"
    return f"IMAGE declares {size}; the limit is {limits.max_pixels} pixels: send a smaller photo"


def _unreadable_message(data: bytes, exc: Exception | None) -> str:
    kind = sniff_format(data)
    if kind is None:
        return f"IMAGE is not a {ACCEPTED_TEXT} image (first bytes: {data[:8]!r})"
    if kind.upper() not in ACCEPTED_FORMATS:
        return f"IMAGE is a {kind} file, not a {ACCEPTED_TEXT} image: convert it to one of those"
    reason = f" ({exc})" if exc is not None and str(exc) else ""
    return (
        f"IMAGE starts like a {kind} file but its header is corrupt or cut short{reason}: "
        f"send an intact {ACCEPTED_TEXT} file"
    )


@contextlib.contextmanager
def _pillow_warnings_ignored() -> Iterator[None]:
    """Pillow's warnings about a large image (the limit is checked here) and corrupt metadata
    such as an EXIF block (ignored) say nothing the caller does not get from
    :func:`decode_image` itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    """The image with its header read and no pixel decoded yet."""
    try:
        with _pillow_warnings_ignored():
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(_bomb_message(exc, limits)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_unreadable_message(data, None)) from exc
    except DECODER_FAILURES as exc:
        raise ImageDecodeError(_unreadable_message(data, exc)) from exc


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says; as stored when the EXIF block is unreadable
    (as image viewers do: the pixels themselves are fine)."""
    try:
        with _pillow_warnings_ignored():
            return ImageOps.exif_transpose(img)
    except DECODER_FAILURES:
        return img


def _to_rgb(img: Image.Image, background: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any decoded mode; alpha composited over ``background`` grey."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(img, dtype=np.uint32)
        peak = 65535 if img.mode.startswith("I;16") or grey.max(initial=0) > 255 else 255
        grey8 = np.round(grey.astype(np.float64) * 255.0 / peak).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        matte = Image.new("RGBA", rgba.size, (background, background, background, 255))
        img = Image.alpha_composite(matte, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> np.ndarray:
    """Decode an encoded photo.

    data: the file's bytes. Returns (H, W, 3) uint8 RGB, upright as the EXIF orientation says.
    Raises ImageDecodeError (a RequestError) for anything not acceptable.
    """
    limits = limits or DecodeLimits()
    if not data:
        raise ImageDecodeError(f"IMAGE is empty: send the bytes of a {ACCEPTED_TEXT} file")
    if len(data) > limits.max_bytes:
        raise ImageDecodeError(f"IMAGE is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    img = _open(data, limits)
    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageDecodeError(
            f"IMAGE is {width}x{height} = {width * height} pixels; the limit is "
            f"{limits.max_pixels} pixels: send a smaller photo"
        )
    if width < 1 or height < 1:
        raise ImageDecodeError(f"IMAGE has no pixels ({width}x{height})")
    try:
        img.load()
    except DECODER_FAILURES as exc:
        raise ImageDecodeError(
            f"IMAGE could not be decoded as {img.format} ({exc}): the file may be truncated "
            "or corrupt"
        ) from exc
    img = _upright(img)
    return _to_rgb(img, limits.alpha_background)


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 92) -> bytes:
    """Encode (H, W, 3) uint8 RGB as PNG or JPEG bytes."""
    fmt = fmt.lower()
    buffer = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), "RGB")
    if fmt == "png":
        pil.save(buffer, format="PNG", compress_level=1)
    elif fmt in ("jpeg", "jpg"):
        pil.save(buffer, format="JPEG", quality=quality)
    else:
        raise ValueError(f"unknown output format {fmt!r}: use png or jpeg")
    return buffer.getvalue()
