"""Decode and encode photos for the service.

:func:`decode_image` accepts JPEG, PNG (also with alpha, 16-bit, grey, palette) and WebP, honours
the EXIF orientation and returns RGB ``uint8``. It refuses anything else, empty or truncated files
and images above a pixel limit (decompression bombs: the limit is checked on the header, before
any pixel is decoded) with an :class:`ImageDecodeError` a person can act on.
"""

from __future__ import annotations

import io
import warnings
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


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"IMAGE is not a {ACCEPTED_TEXT} image (first bytes: {data[:8]!r})"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"IMAGE is too large: {exc}") from exc


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
    img = _open(data)
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
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(
            f"IMAGE could not be decoded as {img.format} ({exc}): the file may be truncated "
            "or corrupt"
        ) from exc
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
