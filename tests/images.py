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


# EXIF orientation → the transpose that shows the stored pixels upright, and its inverse
_SHOW = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}
_STORE = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def jpeg_with_orientation(upright: np.ndarray, orientation: int) -> bytes:
    """JPEG whose stored pixels are ``upright`` turned away, with the EXIF Orientation tag that
    turns them back: a reader honouring the tag shows ``upright``."""
    stored = Image.fromarray(upright).transpose(_STORE[orientation])
    assert np.array_equal(np.asarray(stored.transpose(_SHOW[orientation])), upright)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def two_faces() -> np.ndarray:
    """(400, 640, 3) uint8: the astronaut's head on the left, a larger mirrored copy right."""
    head = astronaut()[20:300, 120:340]
    big = np.asarray(Image.fromarray(head[:, ::-1]).resize((286, 364)))
    canvas = np.full((400, 640, 3), 90, np.uint8)
    canvas[60:340, 20:240] = head
    canvas[18:382, 320:606] = big
    return canvas


def forged_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
