"""Hostile requests for the service, all made by code (no binary file is committed).

Two kinds:

- photos (:func:`photo_cases`): truncated and corrupted JPEG/PNG/WebP, files that are not photos
  (text, HTML, SVG, PDF, GIF, BMP, TIFF, HEIC), decompression bombs (small files whose header
  declares a gigapixel image), degenerate sizes, unusual pixel formats without a face, noise and
  faces too small to see;
- tensors (:func:`tensor_cases`): a good photo with a malformed option (wrong dtype or shape,
  NaN and infinities, too many or too long emotion names, non-UTF-8 text, out-of-range values).

Every :class:`HostileCase` names the words its error message must hold; ``by_triton`` cases are
refused by Triton's own input checks before the model runs, in Triton's wording. Unusual but valid
photos that must be served (CMYK, 16-bit, palette with transparency, a meaningless or broken EXIF
orientation) are in :func:`served_photos`.
"""

from __future__ import annotations

import functools
import io
import struct
from dataclasses import dataclass

import cv2
import numpy as np
import skimage.data
from PIL import Image

from tests import images

Words = tuple[str | tuple[str, ...], ...]
"""Each item must appear in the message; an item that is a tuple: any one of its strings."""

IMAGE_DECODE_FAILED = ("truncated or corrupt", "header is corrupt")
"""The decoder's words for a file of an accepted format that it cannot read."""
NOT_ACCEPTED = "not a JPEG, PNG or WebP"
NO_FACE = "no face found"
TRITON_SHAPE = ("shape", "dims")
TRITON_DTYPE = ("data-type", "datatype", "data type")


@dataclass(frozen=True)
class Tensor:
    """One request input. array: what ``set_data_from_numpy`` sends (object arrays for BYTES)."""

    name: str
    array: np.ndarray
    datatype: str  # KServe datatype: BYTES, FP32, INT32, INT64, UINT8, BOOL


@dataclass(frozen=True)
class HostileCase:
    name: str
    inputs: tuple[Tensor, ...]
    words: Words
    by_triton: bool = False  # refused by Triton before the model runs


def missing_words(words: Words, message: str) -> list[str | tuple[str, ...]]:
    """The items of ``words`` that ``message`` lacks (case-insensitive)."""
    lowered = message.lower()
    missing = []
    for item in words:
        options = (item,) if isinstance(item, str) else item
        if not any(option.lower() in lowered for option in options):
            missing.append(item)
    return missing


# ---------------------------------------------------------------------------------------------
# pictures


@functools.cache
def astronaut_jpeg() -> bytes:
    """The good photo: the astronaut, JPEG quality 90 (a face the service must serve)."""
    return images.encode(images.astronaut(), "JPEG", quality=90)


def faceless(height: int = 120, width: int = 160) -> np.ndarray:
    """(height, width, 3) uint8 RGB: scikit-image's coffee cup, resized (no face in it)."""
    return cv2.resize(skimage.data.coffee(), (width, height), interpolation=cv2.INTER_AREA)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 uniform noise."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def tiny_face(face_px: int = 8, size: int = 256) -> np.ndarray:
    """(size, size, 3) uint8: the astronaut shrunk until her face is ``face_px`` wide, on grey."""
    face_width = 95  # tests.corpus.ASTRONAUT_FACE: 178..273
    side = max(1, round(512 * face_px / face_width))
    small = cv2.resize(images.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((size, size, 3), 128, np.uint8)
    canvas[100 : 100 + side, 100 : 100 + side] = small
    return canvas


def _flip(data: bytes, offset: int) -> bytes:
    """``data`` with every bit of the byte at ``offset`` inverted."""
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


def _marker(data: bytes, code: int) -> int:
    """Offset of the first JPEG marker 0xFF ``code``."""
    offset = data.find(bytes([0xFF, code]), 2)
    assert offset > 0, f"no marker FF{code:02X}"
    return offset


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small faceless JPEG whose SOF0 header declares ``width`` x ``height`` (a bomb)."""
    data = images.encode(faceless(), "JPEG", quality=80)
    sof = _marker(data, 0xC0)  # FF C0, length (2), precision (1), height (2), width (2)
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def webp_with_size(width: int, height: int) -> bytes:
    """A small lossy WebP whose VP8 frame header declares ``width`` x ``height`` (< 16384)."""
    data = images.encode(faceless(), "WEBP", quality=80)
    assert data[12:16] == b"VP8 ", data[12:16]
    # RIFF (12) + chunk header (8) + frame tag (3) + start code (3), then 14-bit sizes
    return data[:26] + struct.pack("<HH", width & 0x3FFF, height & 0x3FFF) + data[30:]


def webp_extended_canvas(width: int, height: int) -> bytes:
    """A WebP with a VP8X header declaring a ``width`` x ``height`` canvas (24-bit sizes)."""
    frame = images.encode(faceless(), "WEBP", quality=80)[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + frame
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif_with_size(width: int, height: int) -> bytes:
    """A GIF whose logical screen declares ``width`` x ``height``."""
    data = images.encode(faceless(), "GIF")
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


def animated_gif() -> bytes:
    frames = [Image.fromarray(faceless()), Image.fromarray(noise(120, 160))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def png_16bit_rgb(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB as a 16-bit-per-channel PNG (Pillow cannot write one: OpenCV)."""
    wide = image.astype(np.uint16) * 257
    ok, data = cv2.imencode(".png", cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def cmyk_jpeg(image: np.ndarray) -> bytes:
    return images.encode(Image.fromarray(image).convert("CMYK"), "JPEG", quality=90)


def palette_png_with_transparency(image: np.ndarray) -> bytes:
    pil = Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    return images.encode(pil, "PNG", transparency=0)


def jpeg_with_exif_orientation(image: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return images.encode(image, "JPEG", quality=90, exif=exif.tobytes())


def jpeg_with_app1(image: np.ndarray, payload: bytes) -> bytes:
    """A JPEG with ``payload`` as an APP1 (EXIF) segment right after SOI."""
    data = images.encode(image, "JPEG", quality=90)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


MALFORMED_EXIF = (
    b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08"  # big-endian TIFF header, IFD at offset 8
    + b"\x00\x03"  # three entries, but the block ends inside the first one
    + b"\x01\x12\x00\x03\x00\x00"
)
"""An EXIF block whose first IFD promises three entries and breaks off in the orientation tag."""

EXIF_OFFSET_PAST_END = b"Exif\x00\x00II\x2a\x00\xff\xff\xff\x7f"
"""An EXIF block whose first IFD offset points 2 GB past its end."""


def _photo(name: str, data: bytes, words: Words) -> tuple[str, bytes, Words]:
    return name, data, words


def _corrupt_jpegs() -> list[tuple[str, bytes, Words]]:
    data = images.encode(faceless(), "JPEG", quality=85)
    sos = _marker(data, 0xDA)
    decoded = ("IMAGE", (*IMAGE_DECODE_FAILED, NO_FACE))  # libjpeg may decode damaged data
    return [
        _photo("jpeg-soi-only", data[:2], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("jpeg-cut-in-header", data[:40], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("jpeg-cut-before-scan", data[:sos], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("jpeg-cut-in-scan", data[: sos + (len(data) - sos) // 2], ("truncated",)),
        _photo("jpeg-flipped-sof", _flip(data, _marker(data, 0xC0) + 9), decoded),
        _photo("jpeg-flipped-dqt", _flip(data, _marker(data, 0xDB) + 1), decoded),
        _photo("jpeg-flipped-scan", _flip(_flip(data, sos + 40), sos + 300), decoded),
    ]


def _corrupt_pngs() -> list[tuple[str, bytes, Words]]:
    data = images.encode(faceless(), "PNG")
    idat = data.find(b"IDAT") - 4
    return [
        _photo("png-signature-only", data[:8], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("png-cut-in-ihdr", data[:20], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("png-cut-in-idat", data[: idat + (len(data) - idat) // 2], ("truncated",)),
        _photo("png-flipped-ihdr", _flip(data, 18), ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("png-flipped-idat", _flip(data, idat + 40), ("IMAGE", IMAGE_DECODE_FAILED)),
    ]


def _corrupt_webps() -> list[tuple[str, bytes, Words]]:
    data = images.encode(faceless(), "WEBP", quality=80)
    return [
        _photo("webp-riff-only", data[:12], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("webp-cut-in-frame", data[: len(data) // 2], ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo("webp-flipped-chunk-tag", _flip(data, 14), ("IMAGE", IMAGE_DECODE_FAILED)),
        _photo(
            "webp-flipped-data",
            _flip(_flip(data, 60), len(data) // 2),
            ("IMAGE", (*IMAGE_DECODE_FAILED, NO_FACE)),
        ),
    ]


def _not_photos() -> list[tuple[str, bytes, Words]]:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'
    heic = struct.pack(">I", 24) + b"ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    return [
        _photo("empty", b"", ("IMAGE is empty",)),
        _photo("zero-bytes", b"\x00" * 1024, (NOT_ACCEPTED,)),
        _photo("plain-text", b"hello, this is a face, trust me\n", (NOT_ACCEPTED,)),
        _photo("html", b"<!DOCTYPE html><html><body><img src=x></body></html>", (NOT_ACCEPTED,)),
        _photo("svg", svg, (NOT_ACCEPTED, "SVG")),
        _photo("pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", (NOT_ACCEPTED, "PDF")),
        _photo("gif-header", b"GIF89a\x10\x00\x10\x00\x00\x00\x00;", (NOT_ACCEPTED, "GIF")),
        _photo("animated-gif", animated_gif(), (NOT_ACCEPTED, "GIF")),
        _photo("bmp", images.encode(faceless(), "BMP"), (NOT_ACCEPTED, "BMP")),
        _photo("tiff", images.encode(faceless(), "TIFF"), (NOT_ACCEPTED, "TIFF")),
        _photo("heic-header", heic, (NOT_ACCEPTED, "HEIC")),
    ]


def _bombs() -> list[tuple[str, bytes, Words]]:
    limit = ("pixels", "limit")
    return [
        _photo("png-bomb-65535", images.forged_png_header(65535, 65535), ("4294836225", *limit)),
        _photo("png-bomb-just-over", images.forged_png_header(7000, 6000), ("42000000", *limit)),
        _photo("jpeg-bomb-65500", jpeg_with_size(65500, 65500), ("4290250000", *limit)),
        _photo("webp-bomb-16383", webp_with_size(16383, 16383), ("268402689", *limit)),
        _photo("webp-vp8x-bomb", webp_extended_canvas(60000, 60000), ("3600000000", *limit)),
        _photo("gif-bomb-65535", gif_with_size(65535, 65535), (NOT_ACCEPTED, "GIF")),
    ]


def _odd_pictures() -> list[tuple[str, bytes, Words]]:
    no_face = ("IMAGE", NO_FACE)
    return [
        _photo("1x1-png", images.encode(np.zeros((1, 1, 3), np.uint8), "PNG"), no_face),
        _photo("4x4-jpeg", images.encode(noise(4, 4), "JPEG"), no_face),
        _photo("1x4000-png", images.encode(noise(4000, 1), "PNG"), no_face),
        _photo("4000x1-png", images.encode(noise(1, 4000), "PNG"), no_face),
        _photo("16bit-rgb-png-no-face", png_16bit_rgb(faceless()), no_face),
        _photo("cmyk-jpeg-no-face", cmyk_jpeg(faceless()), no_face),
        _photo("palette-png-no-face", palette_png_with_transparency(faceless()), no_face),
        _photo("noise-512", images.encode(noise(512, 512), "PNG"), no_face),
        _photo("face-8px", images.encode(tiny_face(8), "PNG"), no_face),
    ]


def photo_cases() -> list[tuple[str, bytes, Words]]:
    """(name, file bytes, words) of every hostile photo: each must be refused."""
    return [
        *_corrupt_jpegs(),
        *_corrupt_pngs(),
        *_corrupt_webps(),
        *_not_photos(),
        *_bombs(),
        *_odd_pictures(),
    ]


def served_photos() -> list[tuple[str, bytes]]:
    """(name, file bytes) of unusual but valid photos of the astronaut: each must be served.

    A broken or meaningless EXIF orientation is ignored, as image viewers do."""
    face = images.astronaut()
    return [
        ("cmyk-jpeg", cmyk_jpeg(face)),
        ("16bit-rgb-png", png_16bit_rgb(face)),
        ("palette-png-with-transparency", palette_png_with_transparency(face)),
        ("exif-orientation-0", jpeg_with_exif_orientation(face, 0)),
        ("exif-orientation-9", jpeg_with_exif_orientation(face, 9)),
        ("exif-orientation-255", jpeg_with_exif_orientation(face, 255)),
        ("exif-malformed", jpeg_with_app1(face, MALFORMED_EXIF)),
        ("exif-offset-past-end", jpeg_with_app1(face, EXIF_OFFSET_PAST_END)),
    ]


# ---------------------------------------------------------------------------------------------
# tensors


def text(*values: bytes) -> np.ndarray:
    """A BYTES tensor's array."""
    return np.array(list(values), dtype=object)


def _image(data: bytes) -> Tensor:
    return Tensor("IMAGE", text(data), "BYTES")


def _fp32(name: str, values: list[float] | np.ndarray) -> Tensor:
    return Tensor(name, np.asarray(values, np.float32), "FP32")


def _case(name: str, *options: Tensor, words: Words, by_triton: bool = False) -> HostileCase:
    """A request with the good photo plus ``options`` (a given IMAGE replaces the photo)."""
    given = {t.name for t in options}
    base = () if "IMAGE" in given else (_image(astronaut_jpeg()),)
    return HostileCase(name, (*base, *options), words, by_triton)


def _emotions(*names: bytes) -> Tensor:
    return Tensor("EMOTIONS", text(*names), "BYTES")


def _bad_floats() -> list[HostileCase]:
    cases = []
    for label, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
        cases += [
            _case(f"intensity-{label}", _fp32("INTENSITY", [value]), words=("INTENSITY", "finite")),
            _case(
                f"head-pose-{label}",
                _fp32("HEAD_POSE", [0.0, value, 0.0]),
                words=("HEAD_POSE", "finite", "yaw"),
            ),
            _case(
                f"expression-{label}",
                _fp32("EXPRESSION", np.where(np.arange(55) == 7, value, 0.2)[None]),
                words=("EXPRESSION", "finite", "[0, 1]"),
            ),
        ]
    return cases


def _bad_names() -> list[HostileCase]:
    many = [b"happy"] * 1000
    return [
        _case("emotions-1000", _emotions(*many), words=("EMOTIONS", "1000", "limit is 32")),
        # a photo the decoder refuses: the count must be refused first, before any decoding
        _case(
            "emotions-1000-checked-before-the-photo",
            _image(images.forged_png_header(65535, 65535)),
            _emotions(*many),
            words=("EMOTIONS", "limit is 32"),
        ),
        _case(
            "emotion-name-100kB",
            _emotions(b"happy" + b"y" * 100_000),
            words=("EMOTIONS", "characters", "limit"),
        ),
        _case("emotion-not-utf8", _emotions(b"\xff\xfe\xfa"), words=("EMOTIONS", "UTF-8")),
        _case("emotion-empty-name", _emotions(b""), words=("unknown emotion", "accepted")),
        _case("emotion-nul", _emotions(b"happy\x00"), words=("unknown emotion", "accepted")),
        _case("emotion-path", _emotions(b"../../etc/passwd"), words=("unknown emotion",)),
        _case("emotion-sql", _emotions(b"sad'; DROP TABLE x;--"), words=("unknown emotion",)),
        _case(
            "emotions-and-expression",
            _emotions(b"happy"),
            _fp32("EXPRESSION", np.zeros((1, 55))),
            words=("EMOTIONS or EXPRESSION",),
        ),
        _case(
            "expression-no-rows",
            _fp32("EXPRESSION", np.zeros((0, 55))),
            words=("EXPRESSION", "K >= 1"),
        ),
        _case(
            "expression-33-rows",
            _fp32("EXPRESSION", np.zeros((33, 55))),
            words=("EXPRESSION", "limit is 32"),
        ),
    ]


def _bad_scalars() -> list[HostileCase]:
    return [
        _case("intensity-negative", _fp32("INTENSITY", [-0.5]), words=("INTENSITY", "[0, 1.5]")),
        _case(
            "face-index-negative",
            Tensor("FACE_INDEX", np.array([-1], np.int32), "INT32"),
            words=("FACE_INDEX", "0 or more"),
        ),
        _case(
            "face-index-huge",
            Tensor("FACE_INDEX", np.array([2**31 - 1], np.int32), "INT32"),
            words=("FACE_INDEX 2147483647 is out of range", "1 face(s) found"),
        ),
        _case(
            "output-format-gif",
            Tensor("OUTPUT_FORMAT", text(b"gif"), "BYTES"),
            words=("OUTPUT_FORMAT", "jpeg, png", "gif"),
        ),
        _case(
            "output-format-empty",
            Tensor("OUTPUT_FORMAT", text(b""), "BYTES"),
            words=("OUTPUT_FORMAT", "jpeg, png"),
        ),
        _case(
            "output-format-not-utf8",
            Tensor("OUTPUT_FORMAT", text(b"\xc3\x28"), "BYTES"),
            words=("OUTPUT_FORMAT", "UTF-8"),
        ),
        _case("image-empty-bytes", _image(b""), words=("IMAGE is empty",)),
    ]


def _malformed_for_triton() -> list[HostileCase]:
    """Wrong dtype, shape or names: Triton refuses them against config.pbtxt."""
    good = astronaut_jpeg()
    raw = np.frombuffer(good, np.uint8).copy()
    return [
        _case("image-fp32", _fp32("IMAGE", [1.0]), words=("IMAGE", TRITON_DTYPE), by_triton=True),
        _case(
            "image-uint8",
            Tensor("IMAGE", raw, "UINT8"),
            words=("IMAGE", TRITON_DTYPE),
            by_triton=True,
        ),
        _case(
            "image-two",
            Tensor("IMAGE", text(good, good), "BYTES"),
            words=("IMAGE", TRITON_SHAPE),
            by_triton=True,
        ),
        _case(
            "image-none",
            Tensor("IMAGE", np.empty(0, dtype=object), "BYTES"),
            words=("IMAGE", TRITON_SHAPE),
            by_triton=True,
        ),
        _case(
            "head-pose-two-numbers",
            _fp32("HEAD_POSE", [1.0, 2.0]),
            words=("HEAD_POSE", TRITON_SHAPE),
            by_triton=True,
        ),
        _case(
            "expression-54-columns",
            _fp32("EXPRESSION", np.zeros((1, 54))),
            words=("EXPRESSION", TRITON_SHAPE),
            by_triton=True,
        ),
        _case(
            "face-index-int64",
            Tensor("FACE_INDEX", np.array([0], np.int64), "INT64"),
            words=("FACE_INDEX", TRITON_DTYPE),
            by_triton=True,
        ),
        _case(
            "paste-back-fp32",
            _fp32("PASTE_BACK", [1.0]),
            words=("PASTE_BACK", TRITON_DTYPE),
            by_triton=True,
        ),
        _case(
            "unknown-input",
            _fp32("SECRET", [1.0]),
            words=("SECRET", ("unexpected", "unknown")),
            by_triton=True,
        ),
    ]


def tensor_cases() -> list[HostileCase]:
    """Requests with a good photo (unless IMAGE itself is the fault) and one malformed input."""
    return [*_bad_floats(), *_bad_names(), *_bad_scalars(), *_malformed_for_triton()]


def all_cases() -> list[HostileCase]:
    """Every hostile request for face_reenactment: the photos (sent with one emotion, so that a
    photo wrongly accepted costs little) and the tensors."""
    photos = [
        _case(f"photo-{name}", _image(data), _emotions(b"happy"), words=words)
        for name, data, words in photo_cases()
    ]
    return photos + tensor_cases()
