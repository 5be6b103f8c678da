"""face_preprocess through a real tritonserver, over gRPC and HTTP.

Every decoded image is compared with an independent decode by OpenCV; every refusal must be an
INVALID_ARG error whose message says what is wrong, and the next good request must succeed.
Every photo holds a face (the astronaut), since face_preprocess also detects one.
"""

from __future__ import annotations

import urllib.request

import cv2
import numpy as np
import pytest
import skimage.data
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests import images

pytestmark = pytest.mark.e2e

MODEL = "face_preprocess"
# libjpeg builds in Pillow and OpenCV may use different IDCT/upsampling code paths: allow small
# per-pixel differences for JPEG, exact equality for the lossless formats.
JPEG_MEAN_TOL = 1.0
JPEG_MAX_TOL = 12


def infer(client, data: bytes, face_index: int | None = None):
    module, conn = client
    inputs = [module.InferInput("IMAGE", [1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([data], dtype=object))
    if face_index is not None:
        inputs.append(module.InferInput("FACE_INDEX", [1], "INT32"))
        inputs[1].set_data_from_numpy(np.array([face_index], np.int32))
    return conn.infer(MODEL, inputs)


def decode(client, data: bytes):
    result = infer(client, data)
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
    upright = images.astronaut()[:, :384]  # not square, so a wrong turn shows in the shape
    data = images.jpeg_with_orientation(upright, orientation)
    pixels, size = decode(client, data)
    expected = opencv_rgb(data)  # OpenCV applies the EXIF orientation too
    assert tuple(size) == expected.shape[:2] == (512, 384)
    assert_close_jpeg(pixels, expected)
    # and it is the upright photo, up to JPEG loss (a wrong turn differs by tens of levels)
    assert np.abs(pixels.astype(np.int16) - upright.astype(np.int16)).mean() < 4


def test_png_rgb_is_exact(client):
    data = images.encode(images.astronaut(), "PNG")
    pixels, _ = decode(client, data)
    np.testing.assert_array_equal(pixels, opencv_rgb(data))


def test_png_alpha_is_composited_over_white(client):
    rgb = images.astronaut()
    alpha = np.full((512, 512), 255, np.uint8)
    alpha[:, :160] = np.linspace(0, 255, 160).astype(np.uint8)  # transparent to opaque, left
    data = images.encode(np.dstack([rgb, alpha]), "PNG")
    pixels, _ = decode(client, data)
    bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    colour = bgra[:, :, 2::-1].astype(np.float64)
    a = bgra[:, :, 3:4].astype(np.float64) / 255.0
    expected = colour * a + 255.0 * (1.0 - a)
    assert np.abs(pixels - expected).max() <= 1.0


def test_png_16bit_grey(client):
    grey = cv2.cvtColor(images.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.float64)
    grey16 = (grey * 257 + np.linspace(0, 200, 512)).astype(np.uint16)  # use the low bits too
    data = images.encode(grey16, "PNG")
    pixels, size = decode(client, data)
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    expected = np.round(raw.astype(np.float64) * 255 / 65535)
    assert size.tolist() == [512, 512]
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


def _refusal_of(call) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    status = str(info.value.status())
    assert status in ("StatusCode.INVALID_ARGUMENT", "400"), status
    return info.value.message()


def _refusal(client, data: bytes) -> str:
    return _refusal_of(lambda: decode(client, data))


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


def test_no_face_is_refused_with_a_clear_message(client):
    message = _refusal(client, images.encode(skimage.data.coffee(), "JPEG"))
    assert "no face found" in message
    assert decode(client, images.encode(images.astronaut(), "PNG"))[0].shape == (512, 512, 3)


def test_largest_face_by_default_and_face_index_picks_from_the_left(client):
    data = images.encode(images.two_faces(), "PNG")
    default_box = infer(client, data).as_numpy("FACE_BOX")
    left_box = infer(client, data, face_index=0).as_numpy("FACE_BOX")
    right_box = infer(client, data, face_index=1).as_numpy("FACE_BOX")
    assert left_box[2] < 320 < right_box[0]  # the left head ends where the right one starts
    np.testing.assert_allclose(default_box, right_box)  # the right head is the larger
    message = _refusal_of(lambda: infer(client, data, face_index=2))
    assert "FACE_INDEX 2 is out of range: 2 face(s) found" in message


def test_crop_and_canvas_hold_the_face(client):
    result = infer(client, images.encode(images.astronaut(), "PNG"))
    box = result.as_numpy("FACE_BOX")
    canvas = result.as_numpy("CANVAS")
    to_canvas = result.as_numpy("IMAGE_TO_CANVAS")
    to_image = result.as_numpy("CROP_TO_IMAGE")
    crop = result.as_numpy("LANDMARK_CROP")
    assert canvas.shape == (512, 384, 3) and crop.shape == (1, 192, 192, 3)
    # the face box centre lands at the canvas centre column, a little above the middle row
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0])
    cx, cy = to_canvas @ centre
    assert abs(cx - 192) < 1 and 0.4 * 512 < cy < 0.5 * 512
    # the canvas and crop show the photo's pixels where the transforms say
    photo = images.astronaut().astype(np.float64)
    for frame, affine in (
        (canvas, to_canvas),
        (crop[0], np.linalg.inv(np.vstack([to_image, [0, 0, 1]]))[:2]),
    ):
        ys, xs = np.mgrid[40 : frame.shape[0] - 40 : 37, 40 : frame.shape[1] - 40 : 37]
        back = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
        sx, sy = back @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
        inside = (sx > 1) & (sx < 510) & (sy > 1) & (sy < 510)
        sampled = photo[np.rint(sy[inside]).astype(int), np.rint(sx[inside]).astype(int)]
        got = frame[ys.ravel()[inside], xs.ravel()[inside]].astype(np.float64)
        assert np.median(np.abs(sampled - got)) < 12


def test_more_than_one_image_is_refused(client):
    module, conn = client
    inp = module.InferInput("IMAGE", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"a", b"b"], dtype=object))
    with pytest.raises(InferenceServerException) as info:
        conn.infer(MODEL, [inp])
    assert "IMAGE" in info.value.message()


def test_server_health_and_metrics(triton_server):
    with httpclient.InferenceServerClient(triton_server.http_url) as conn:
        assert conn.is_server_live() and conn.is_server_ready()
        assert conn.is_model_ready(MODEL)
    with urllib.request.urlopen(triton_server.metrics_url, timeout=5) as resp:
        body = resp.read().decode()
    assert "nv_inference_request_success" in body
