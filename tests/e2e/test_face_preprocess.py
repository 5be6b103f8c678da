"""face_preprocess through a real tritonserver, over gRPC and HTTP.

Every decoded image is compared with an independent decode by OpenCV; every refusal must be an
INVALID_ARG error whose message says what is wrong, and the next good request must succeed.
"""

from __future__ import annotations

import urllib.request

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests import images

pytestmark = pytest.mark.e2e

MODEL = "face_preprocess"
# libjpeg builds in Pillow and OpenCV may use different IDCT/upsampling code paths: allow small
# per-pixel differences for JPEG, exact equality for the lossless formats.
JPEG_MEAN_TOL = 1.0
JPEG_MAX_TOL = 12


@pytest.fixture(params=["grpc", "http"])
def client(request, triton_server):
    if request.param == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(triton_server.grpc_url)
    return httpclient, httpclient.InferenceServerClient(triton_server.http_url)


def decode(client, data: bytes):
    module, conn = client
    inp = module.InferInput("IMAGE", [1], "BYTES")
    inp.set_data_from_numpy(np.array([data], dtype=object))
    result = conn.infer(MODEL, [inp])
    return result.as_numpy("DECODED_IMAGE"), result.as_numpy("IMAGE_SIZE")


def opencv_rgb(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def assert_close_jpeg(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.mean() < JPEG_MEAN_TOL and diff.max() <= JPEG_MAX_TOL, (diff.mean(), diff.max())


def test_jpeg_matches_opencv(client):
    data = images.encode(images.astronaut(), "JPEG", quality=90)
    pixels, size = decode(client, data)
    assert pixels.dtype == np.uint8 and size.tolist() == [512, 512]
    assert_close_jpeg(pixels, opencv_rgb(data))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(client, orientation):
    src = images.astronaut()[:, :384]  # not square, so a rotation shows in the shape
    data = images.jpeg_with_orientation(src, orientation)
    pixels, size = decode(client, data)
    expected = opencv_rgb(data)  # OpenCV applies the EXIF orientation too
    assert tuple(size) == expected.shape[:2]
    assert expected.shape[:2] == ((512, 384) if orientation == 3 else (384, 512))
    assert_close_jpeg(pixels, expected)


def test_png_rgb_is_exact(client):
    data = images.encode(images.astronaut(), "PNG")
    pixels, _ = decode(client, data)
    np.testing.assert_array_equal(pixels, opencv_rgb(data))


def test_png_alpha_is_composited_over_white(client):
    rgb = images.astronaut()
    alpha = np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1))
    data = images.encode(np.dstack([rgb, alpha]), "PNG")
    pixels, _ = decode(client, data)
    bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    colour = bgra[:, :, 2::-1].astype(np.float64)
    a = bgra[:, :, 3:4].astype(np.float64) / 255.0
    expected = colour * a + 255.0 * (1.0 - a)
    assert np.abs(pixels - expected).max() <= 1.0


def test_png_16bit_grey(client):
    grey16 = (np.linspace(0, 65535, 256 * 200).reshape(200, 256)).astype(np.uint16)
    data = images.encode(grey16, "PNG")
    pixels, size = decode(client, data)
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    expected = np.round(raw.astype(np.float64) * 255 / 65535)
    assert size.tolist() == [200, 256]
    assert np.abs(pixels.astype(np.float64) - expected[:, :, None]).max() <= 1.0


def test_png_8bit_grey(client):
    grey = cv2.cvtColor(images.astronaut(), cv2.COLOR_RGB2GRAY)
    data = images.encode(grey, "PNG")
    pixels, _ = decode(client, data)
    np.testing.assert_array_equal(pixels, np.repeat(grey[:, :, None], 3, axis=2))


def test_webp_lossless_is_exact(client):
    data = images.encode(images.astronaut(), "WEBP", lossless=True)
    pixels, _ = decode(client, data)
    np.testing.assert_array_equal(pixels, opencv_rgb(data))


def _refusal(client, data: bytes) -> str:
    with pytest.raises(InferenceServerException) as info:
        decode(client, data)
    status = str(info.value.status())
    assert status in ("StatusCode.INVALID_ARGUMENT", "400"), status
    return info.value.message()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: b"this is not an image", ["not a JPEG, PNG or WebP"]),
        (lambda: b"", ["empty"]),
        (lambda: images.encode(images.astronaut(), "GIF"), ["not a JPEG, PNG or WebP"]),
        (lambda: images.encode(images.astronaut(), "JPEG")[:6000], ["truncated"]),
        (lambda: images.forged_png_header(100_000, 100_000), ["10000000000 pixels", "limit"]),
        (lambda: images.encode(np.zeros((6000, 7000), np.uint8), "PNG"), ["42000000", "limit"]),
    ],
    ids=["not-image", "empty", "gif", "truncated-jpeg", "forged-bomb", "oversized"],
)
def test_refusals_are_invalid_arg_and_server_goes_on(client, make, words):
    message = _refusal(client, make())
    for word in words:
        assert word in message, message
    pixels, _ = decode(client, images.encode(images.astronaut(), "PNG"))
    assert pixels.shape == (512, 512, 3)


def test_more_than_one_image_is_refused(client):
    module, conn = client
    inp = module.InferInput("IMAGE", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"a", b"b"], dtype=object))
    with pytest.raises(InferenceServerException) as info:
        conn.infer(MODEL, [inp])
    assert "IMAGE" in info.value.message()


def test_server_health_and_metrics(triton_server):
    conn = httpclient.InferenceServerClient(triton_server.http_url)
    assert conn.is_server_live() and conn.is_server_ready()
    assert conn.is_model_ready(MODEL)
    with urllib.request.urlopen(triton_server.metrics_url, timeout=5) as resp:
        body = resp.read().decode()
    assert "nv_inference_request_success" in body
