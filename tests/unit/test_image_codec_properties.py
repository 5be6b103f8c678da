"""decode_image on any bytes: an RGB picture within the limits, or an ImageDecodeError.

Property-based (hypothesis, derandomized so CI sees the same inputs every run) over arbitrary
bytes and over valid files of every accepted kind with bytes flipped, cut off and inserted; a
bounded fuzz run of the same mutations from a seeded generator; and the refusals of the hostile
photo corpus (tests/hostile.py) at the decoder, where they need no server.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from reenact.errors import RequestError
from reenact.image_codec import DecodeLimits, ImageDecodeError, decode_image
from tests import hostile, images

# Small limits keep every mutated header that declares a large picture cheap to refuse, and
# test that the limits hold for whatever the header says.
LIMITS = DecodeLimits(max_pixels=200_000, max_bytes=200_000)
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ_INPUTS = 1500  # about 2-4 s on one core


def _seed_files() -> dict[str, bytes]:
    """Small valid files of every kind and mode the decoder accepts."""
    rgb = images.astronaut()[120:220:2, 170:270:2]  # (50, 50, 3): the face, halved
    rgba = np.dstack([rgb, np.linspace(0, 255, 50 * 50).reshape(50, 50).astype(np.uint8)])
    grey16 = (rgb[:, :, 0].astype(np.uint16) * 257).astype(np.uint16)
    return {
        "jpeg": images.encode(rgb, "JPEG", quality=85),
        "jpeg-progressive": images.encode(rgb, "JPEG", quality=85, progressive=True),
        "jpeg-exif": hostile.jpeg_with_exif_orientation(rgb, 6),
        "jpeg-cmyk": hostile.cmyk_jpeg(rgb),
        "png": images.encode(rgb, "PNG"),
        "png-rgba": images.encode(rgba, "PNG"),
        "png-grey16": images.encode(grey16, "PNG"),
        "png-rgb16": hostile.png_16bit_rgb(rgb),
        "png-palette": hostile.palette_png_with_transparency(rgb),
        "webp-lossy": images.encode(rgb, "WEBP", quality=80),
        "webp-lossless": images.encode(rgb, "WEBP", lossless=True),
    }


SEEDS = _seed_files()


def assert_decoded_or_refused(data: bytes, limits: DecodeLimits = LIMITS) -> np.ndarray | None:
    """The property: (H, W, 3) uint8 within the limits, or ImageDecodeError; nothing else."""
    try:
        pixels = decode_image(data, limits)
    except ImageDecodeError as exc:
        assert isinstance(exc, RequestError) and str(exc).startswith("IMAGE"), str(exc)
        return None
    assert isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    assert 1 <= pixels.shape[0] * pixels.shape[1] <= limits.max_pixels
    return pixels


def test_every_seed_file_decodes():
    for name, data in SEEDS.items():
        pixels = assert_decoded_or_refused(data)
        assert pixels is not None and pixels.shape[0] * pixels.shape[1] == 2500, name


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data):
    assert_decoded_or_refused(data)


@PROPERTY_SETTINGS
@given(st.sampled_from(sorted(SEEDS)), st.binary(min_size=1, max_size=64))
def test_a_valid_header_followed_by_anything(name, tail):
    """The first bytes of a valid file (its signature and part of its header), then junk."""
    data = SEEDS[name]
    assert_decoded_or_refused(data[: len(tail) % 48 + 4] + tail)


MUTATION = st.tuples(
    st.sampled_from(["flip", "cut", "insert", "set"]),
    st.floats(0.0, 1.0, exclude_max=True),  # where, as a share of the file's length
    st.binary(min_size=1, max_size=16),  # the bytes inserted or written
)


def mutate(data: bytes, kind: str, where: float, payload: bytes) -> bytes:
    """``data`` with one mutation at ``where`` (0 = start, 1 = end)."""
    at = int(where * len(data))
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ payload[0] | 1]) + data[at + 1 :]
    if kind == "cut":
        return data[:at]
    if kind == "insert":
        return data[:at] + payload + data[at:]
    return data[:at] + payload + data[at + len(payload) :]  # overwrite


@PROPERTY_SETTINGS
@given(st.sampled_from(sorted(SEEDS)), st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_valid_files(name, mutations):
    data = SEEDS[name]
    for kind, where, payload in mutations:
        data = mutate(data, kind, where, payload) or data[:1]
    assert_decoded_or_refused(data)


def test_bounded_fuzz_run_of_the_decoder():
    """FUZZ_INPUTS mutated files from a seeded generator: mostly in the first 64 bytes (the
    headers that steer the decoder), the rest anywhere; some refused, some decoded."""
    rng = np.random.default_rng(20240601)
    names = sorted(SEEDS)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(FUZZ_INPUTS):
        data = SEEDS[names[rng.integers(len(names))]]
        for _ in range(rng.integers(1, 4)):
            head = rng.random() < 0.7
            where = rng.random() * (min(64, len(data)) if head else len(data)) / len(data)
            kind = ("flip", "cut", "insert", "set")[rng.integers(4)]
            payload = rng.integers(0, 256, rng.integers(1, 9), dtype=np.uint8).tobytes()
            data = mutate(data, kind, where, payload) or data[:1]
        pixels = assert_decoded_or_refused(data)
        outcomes["decoded" if pixels is not None else "refused"] += 1
    # both paths exercised: a fuzz run where nothing decodes tests only the header checks
    assert outcomes["decoded"] > FUZZ_INPUTS // 20 and outcomes["refused"] > FUZZ_INPUTS // 4


# --- the hostile corpus at the decoder ---------------------------------------------------------

DECODER_REFUSALS = [
    case for case in hostile.photo_cases() if not any(hostile.NO_FACE in str(w) for w in case[2])
]
SERVED = hostile.served_photos()


@pytest.mark.parametrize(
    ("name", "data", "words"), DECODER_REFUSALS, ids=[case[0] for case in DECODER_REFUSALS]
)
def test_hostile_photos_are_refused_by_the_decoder_with_their_words(name, data, words):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data)
    missing = hostile.missing_words(words, str(info.value))
    assert not missing, f"{name}: {missing} not in {info.value}"


@pytest.mark.parametrize(
    "bomb",
    [
        images.forged_png_header(65535, 65535),
        images.forged_png_header(7000, 6000),
        hostile.jpeg_with_size(65500, 65500),
        hostile.webp_with_size(16383, 16383),
        hostile.webp_extended_canvas(60000, 60000),
    ],
    ids=["png", "png-just-over", "jpeg", "webp", "webp-vp8x"],
)
def test_a_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(monkeypatch, bomb):
    def no_decoding(self):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageDecodeError, match="limit is 40000000 pixels"):
        decode_image(bomb)


def test_the_limits_are_the_callers():
    data = images.encode(np.zeros((20, 30, 3), np.uint8), "PNG")
    assert decode_image(data, DecodeLimits(max_pixels=600)).shape == (20, 30, 3)
    with pytest.raises(ImageDecodeError, match="20 = 600 pixels; the limit is 599"):
        decode_image(data, DecodeLimits(max_pixels=599))
    with pytest.raises(ImageDecodeError, match=f"{len(data)} bytes; the limit is 10 bytes"):
        decode_image(data, DecodeLimits(max_bytes=10))


def test_the_byte_limit_is_checked_before_the_file_is_opened(monkeypatch):
    def no_opening(*args, **kwargs):
        raise AssertionError("opened")

    monkeypatch.setattr(Image, "open", no_opening)
    with pytest.raises(ImageDecodeError, match="the limit is 100 bytes"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, DecodeLimits(max_bytes=100))


@pytest.mark.parametrize(("name", "data"), SERVED, ids=[name for name, _ in SERVED])
def test_unusual_photos_decode_upright_to_the_astronaut(name, data):
    """CMYK, 16-bit, palette with transparency; a meaningless or broken EXIF orientation leaves
    the photo as stored (the astronaut is square: a wrong turn shows in the pixels only)."""
    pixels = decode_image(data)
    assert pixels.shape == (512, 512, 3)
    # JPEG at quality 90 and a 255-colour palette differ from the original by a few levels on
    # average; the photo turned by 90 degrees differs by about 60
    assert np.abs(pixels.astype(np.int16) - images.astronaut()).mean() < 8, name
