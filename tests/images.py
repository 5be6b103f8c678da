"""Test photos made from the scikit-image astronaut, in every encoding the service accepts."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import skimage.data
from PIL import Image


def astronaut() -> np.ndarray:
    """(512, 512, 3) uint8 RGB: the scikit-image astronaut photo (public domain, NASA)."""
    return skimage.data.astronaut()


def encode(image: np.ndarray | Image.Image, fmt: str, **save_args) -> bytes:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    """JPEG of ``image`` stored as is, with an EXIF Orientation tag saying how to show it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def forged_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
