"""PyTorch BlazeFace (short and full range) + FaceMesh against MediaPipe's TFLite models; the
detect → landmarks path.

The assets are those ``make setup`` extracts from the mediapipe wheel and converts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from ai_edge_litert.interpreter import Interpreter

from reenact.landmarks import blazeface, facemesh, mediapipe_dir
from reenact.landmarks.blazeface import BlazeFace, BlazeFaceFullRange
from reenact.landmarks.detection import (
    FULL_RANGE,
    SHORT_RANGE,
    FaceDetection,
    FaceLandmarker,
    RotatedRect,
    detector_input,
    face_roi,
    landmark_input,
    postprocess_detections,
    postprocess_landmarks,
    select_face,
    ssd_anchors,
    weighted_nms,
)
from reenact.landmarks.facemesh import FaceMesh
from reenact.tflite import (
    SUPPORTED_OPS,
    UnsupportedModelError,
    read_tflite,
    state_dict_from_tflite,
)

# Tolerances, PyTorch vs the TFLite interpreter. Both run the very same float32 weights (the
# fp16 → fp32 dequantization of the stored weights is exact, and the converter copies them), so
# the outputs differ only by float32 rounding in a different accumulation order (XNNPACK vs
# oneDNN/MKL kernels, fused vs separate bias/activation) through ~35 layers. That error scales
# with the magnitude of the activations: measured worst case ~2e-6 x the tensor's largest value
# (0.017 on BlazeFace logits of magnitude 8.8e3 in a letterbox border), ~1e-4 on typical outputs.
# Allowed: 1e-5 x max|reference| + 1e-3, a 5x margin on the worst case. Full range (sparse
# weights densified exactly, ~90 layers) measured 8.4e-5 on regressors of magnitude 112, i.e.
# ~7.5e-7 x max: inside the same bound.
RAW_REL_TO_MAX = 1e-5
RAW_ATOL = 1e-3
# Boxes, keypoints and landmarks in image pixels agree to < 4e-4 px; allowed 1/100 pixel.
PIXEL_ATOL = 1e-2

# Astronaut (512x512) eye centres, read off a 8x zoom of the photo: the pupil of her right eye
# (image left) is at about (204, 101), the left one at about (247, 103); each eye is ~20 px wide.
RIGHT_EYE = np.array([204.0, 101.0])
LEFT_EYE = np.array([247.0, 103.0])
EYE_TOLERANCE_PX = 5.0  # a quarter of an eye's width
# FaceMesh eye-corner indices (MediaPipe canonical mesh): the eye centre is their midpoint.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)


@pytest.fixture(scope="session")
def mediapipe_assets() -> Path:
    """``build/assets/mediapipe`` with both ``.tflite`` and ``.pt`` files, as set-up makes it."""
    folder = mediapipe_dir()
    names = (
        blazeface.TFLITE_FILE,
        blazeface.FULL_RANGE_TFLITE_FILE,
        facemesh.TFLITE_FILE,
        blazeface.WEIGHTS_FILE,
        blazeface.FULL_RANGE_WEIGHTS_FILE,
        facemesh.WEIGHTS_FILE,
    )
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        pytest.fail(f"MediaPipe assets {missing} missing in {folder}: run `make setup`")
    return folder


@pytest.fixture(scope="session")
def landmarker(mediapipe_assets: Path) -> FaceLandmarker:
    return FaceLandmarker.from_assets(mediapipe_assets)


def _interpreter(path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    """A function running the TFLite model on an NCHW float32 batch of 1 (outputs as stored)."""
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    outputs = interpreter.get_output_details()

    def run(x: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(input_detail["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]).copy() for o in outputs]

    return run


@pytest.fixture(scope="session")
def tflite_detector(mediapipe_assets: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    return _interpreter(mediapipe_assets / blazeface.TFLITE_FILE)


@pytest.fixture(scope="session")
def tflite_full_range(mediapipe_assets: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    return _interpreter(mediapipe_assets / blazeface.FULL_RANGE_TFLITE_FILE)


@pytest.fixture(scope="session")
def tflite_mesh(mediapipe_assets: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    return _interpreter(mediapipe_assets / facemesh.TFLITE_FILE)


def _rotate(image: np.ndarray, degrees: float, scale: float = 1.0) -> np.ndarray:
    """``image`` rotated counter-clockwise on screen about its centre (reflected border)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def _astronaut_variants() -> dict[str, np.ndarray]:
    """The astronaut photo and crops, flips, rotations and scales of it (all with her face)."""
    a = skimage.data.astronaut()
    return {
        "original": a,
        "flipped": np.ascontiguousarray(a[:, ::-1]),
        "rotated_20": _rotate(a, 20),
        "rotated_-35": _rotate(a, -35),
        "face_crop": a[40:260, 110:340].copy(),
        "portrait": a[:, 100:400].copy(),
        "landscape": a[:300].copy(),
        "downscaled": cv2.resize(a, (200, 200), interpolation=cv2.INTER_AREA),
        "upscaled_rotated": cv2.resize(_rotate(a[30:250, 120:330], 15), (700, 733)),
        "darker": (a * 0.5).astype(np.uint8),
    }


VARIANTS = _astronaut_variants()


def _two_faces() -> np.ndarray:
    """(364, 575, 3) uint8: the astronaut's head, then a mirrored copy 1.3x bigger, on grey."""
    left = skimage.data.astronaut()[20:300, 100:350]
    right = cv2.resize(left[:, ::-1], None, fx=1.3, fy=1.3, interpolation=cv2.INTER_AREA)
    canvas = np.full((right.shape[0], left.shape[1] + right.shape[1], 3), 128, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[:, left.shape[1] :] = right
    return canvas


def _assert_raw_close(actual: np.ndarray, reference: np.ndarray) -> None:
    tolerance = RAW_REL_TO_MAX * float(np.abs(reference).max()) + RAW_ATOL
    np.testing.assert_allclose(actual, reference, rtol=0, atol=tolerance)


def _detect_both(
    image: np.ndarray,
    landmarker: FaceLandmarker,
    tflite_detector: Callable[[np.ndarray], list[np.ndarray]],
) -> tuple[list[FaceDetection], list[FaceDetection]]:
    x, roi = detector_input(image)
    regressors, classificators = tflite_detector(x)
    with torch.inference_mode():
        torch_regressors, torch_classificators = landmarker.detector.short_range(
            torch.from_numpy(x)
        )
    _assert_raw_close(torch_regressors.numpy(), regressors)
    _assert_raw_close(torch_classificators.numpy(), classificators)
    return (
        postprocess_detections(torch_regressors[0].numpy(), torch_classificators[0].numpy(), roi),
        postprocess_detections(regressors[0], classificators[0], roi),
    )


def test_tflite_reader_sees_the_expected_ops(mediapipe_assets: Path) -> None:
    detector = read_tflite(mediapipe_assets / blazeface.TFLITE_FILE)
    mesh = read_tflite(mediapipe_assets / facemesh.TFLITE_FILE)
    assert detector.op_counts == {
        "ADD": 16,
        "CONCATENATION": 2,
        "CONV_2D": 21,
        "DEPTHWISE_CONV_2D": 16,
        "DEQUANTIZE": 74,
        "MAX_POOL_2D": 3,
        "PAD": 11,
        "RELU": 17,
        "RESHAPE": 4,
    }
    assert mesh.op_counts == {
        "ADD": 20,
        "CONV_2D": 25,
        "DEPTHWISE_CONV_2D": 20,
        "DEQUANTIZE": 113,
        "MAX_POOL_2D": 6,
        "PAD": 3,
        "PRELU": 23,
    }
    full_range = read_tflite(mediapipe_assets / blazeface.FULL_RANGE_TFLITE_FILE)
    assert full_range.op_counts == {
        "ADD": 19,
        "CONV_2D": 49,
        "DENSIFY": 46,
        "DEPTHWISE_CONV_2D": 42,
        "DEPTH_TO_SPACE": 2,
        "DEQUANTIZE": 182,
        "PAD": 43,
        "RESHAPE": 2,
        "RESIZE_BILINEAR": 3,
    }
    assert [t.shape for t in full_range.inputs] == [(1, 192, 192, 3)]
    assert [t.shape for t in full_range.outputs] == [(1, 2304, 16), (1, 2304, 1)]
    # The 46 sparse 1x1 kernels are densified: pruned weights become zeros, kept ones stay.
    densified = [op.constants["kernel"] for op in full_range.operators if op.opcode == "CONV_2D"]
    zero_fraction = np.mean([float((k == 0).mean()) for k in densified])
    assert 0.3 < zero_fraction < 0.9
    assert all(np.isfinite(k).all() and (k != 0).any() for k in densified)
    ops = set(detector.op_counts) | set(mesh.op_counts) | set(full_range.op_counts)
    assert ops <= set(SUPPORTED_OPS)
    assert [t.shape for t in detector.inputs] == [(1, 128, 128, 3)]
    assert [t.shape for t in detector.outputs] == [(1, 896, 16), (1, 896, 1)]
    assert [t.shape for t in mesh.inputs] == [(1, 192, 192, 3)]
    assert [t.shape for t in mesh.outputs] == [(1, 1, 1, 1404), (1, 1, 1, 1)]
    kernel = mesh.layer("conv2d_1").constants["kernel"]
    assert kernel.shape == (16, 3, 3, 3) and kernel.dtype == np.float32


def test_converter_rejects_an_incomplete_layer_map(mediapipe_assets: Path) -> None:
    model = read_tflite(mediapipe_assets / blazeface.TFLITE_FILE)
    layers = BlazeFace.tflite_layers()
    del layers["regressor_s16"]
    with pytest.raises(UnsupportedModelError, match="regressor_16"):
        state_dict_from_tflite(BlazeFace(), layers, model)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_detector_matches_tflite(
    name: str,
    landmarker: FaceLandmarker,
    tflite_detector: Callable[[np.ndarray], list[np.ndarray]],
) -> None:
    faces, reference = _detect_both(VARIANTS[name], landmarker, tflite_detector)
    assert len(faces) == len(reference) == 1
    for face, ref in zip(faces, reference, strict=True):
        np.testing.assert_allclose(face.box, ref.box, rtol=0, atol=PIXEL_ATOL)
        np.testing.assert_allclose(face.keypoints, ref.keypoints, rtol=0, atol=PIXEL_ATOL)
        assert face.score == pytest.approx(ref.score, abs=1e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_full_range_detector_matches_tflite(
    name: str,
    landmarker: FaceLandmarker,
    tflite_full_range: Callable[[np.ndarray], list[np.ndarray]],
) -> None:
    image = VARIANTS[name]
    x, roi = detector_input(image, FULL_RANGE.input_size)
    regressors, classificators = tflite_full_range(x)
    assert landmarker.detector.full_range is not None
    with torch.inference_mode():
        torch_regressors, torch_classificators = landmarker.detector.full_range(torch.from_numpy(x))
    _assert_raw_close(torch_regressors.numpy(), regressors)
    _assert_raw_close(torch_classificators.numpy(), classificators)
    faces = postprocess_detections(
        torch_regressors[0].numpy(), torch_classificators[0].numpy(), roi, FULL_RANGE
    )
    reference = postprocess_detections(regressors[0], classificators[0], roi, FULL_RANGE)
    assert len(faces) == len(reference)
    if name in ("original", "flipped", "downscaled"):  # a face of ~1/3 of the photo
        assert len(faces) == 1
    for face, ref in zip(faces, reference, strict=True):
        np.testing.assert_allclose(face.box, ref.box, rtol=0, atol=PIXEL_ATOL)
        np.testing.assert_allclose(face.keypoints, ref.keypoints, rtol=0, atol=PIXEL_ATOL)
        assert face.score == pytest.approx(ref.score, abs=1e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_facemesh_matches_tflite(
    name: str,
    landmarker: FaceLandmarker,
    tflite_detector: Callable[[np.ndarray], list[np.ndarray]],
    tflite_mesh: Callable[[np.ndarray], list[np.ndarray]],
) -> None:
    image = VARIANTS[name]
    _, reference_faces = _detect_both(image, landmarker, tflite_detector)
    roi = face_roi(select_face(reference_faces))
    x = landmark_input(image, roi)
    landmarks, face_flag = tflite_mesh(x)
    with torch.inference_mode():
        torch_landmarks, torch_face_flag = landmarker.mesh(torch.from_numpy(x))
    _assert_raw_close(torch_landmarks.numpy(), landmarks.reshape(1, 468, 3))
    _assert_raw_close(torch_face_flag.numpy(), face_flag.reshape(1, 1))

    points = postprocess_landmarks(torch_landmarks[0].numpy(), float(torch_face_flag), roi)
    reference = postprocess_landmarks(landmarks.reshape(468, 3), float(face_flag.item()), roi)
    np.testing.assert_allclose(points.points, reference.points, rtol=0, atol=PIXEL_ATOL)
    assert points.face_present and points.presence > 0.99


@pytest.mark.parametrize("network", [BlazeFace, BlazeFaceFullRange, FaceMesh])
def test_networks_trace_and_script(
    network: type[BlazeFace] | type[BlazeFaceFullRange] | type[FaceMesh], mediapipe_assets: Path
) -> None:
    image = VARIANTS["face_crop"]
    if network is BlazeFace:
        model = network.load(mediapipe_assets / blazeface.WEIGHTS_FILE)
        x = torch.from_numpy(detector_input(image)[0])
    elif network is BlazeFaceFullRange:
        model = network.load(mediapipe_assets / blazeface.FULL_RANGE_WEIGHTS_FILE)
        x = torch.from_numpy(detector_input(image, FULL_RANGE.input_size)[0])
    else:
        model = network.load(mediapipe_assets / facemesh.WEIGHTS_FILE)
        x = torch.from_numpy(landmark_input(image, RotatedRect(115, 110, 230, 230)))
    traced = torch.jit.trace(model, x)
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        eager = model(x)
        for compiled in (traced, scripted):
            for got, want in zip(compiled(x), eager, strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def _eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    right = points[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
    left = points[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
    return right, left


def test_astronaut_landmarks_on_her_eyes(landmarker: FaceLandmarker) -> None:
    image = skimage.data.astronaut()
    faces = landmarker.detect(image)
    assert len(faces) == 1 and faces[0].score > 0.9
    result = landmarker(image)
    assert result is not None and result.face_present
    assert result.points.shape == (468, 3) and result.points.dtype == np.float32
    right, left = _eye_centres(result.points)
    assert np.linalg.norm(right - RIGHT_EYE) < EYE_TOLERANCE_PX
    assert np.linalg.norm(left - LEFT_EYE) < EYE_TOLERANCE_PX
    # BlazeFace's own eye keypoints are coarser; they still fall on the eyes.
    assert np.linalg.norm(faces[0].keypoints[0] - RIGHT_EYE) < 2 * EYE_TOLERANCE_PX
    assert np.linalg.norm(faces[0].keypoints[1] - LEFT_EYE) < 2 * EYE_TOLERANCE_PX
    # The crop is levelled on the eyes: her head is tilted by a few degrees only.
    assert abs(math.degrees(result.roi.rotation)) < 10


def test_rotated_astronaut_landmarks_follow_the_rotation(landmarker: FaceLandmarker) -> None:
    degrees = 30.0
    matrix = cv2.getRotationMatrix2D((256, 256), degrees, 1.0)
    result = landmarker(cv2.warpAffine(skimage.data.astronaut(), matrix, (512, 512)))
    assert result is not None and result.face_present
    right, left = _eye_centres(result.points)
    expected = cv2.transform(np.array([[RIGHT_EYE, LEFT_EYE]]), matrix)[0]
    assert np.linalg.norm(right - expected[0]) < EYE_TOLERANCE_PX
    assert np.linalg.norm(left - expected[1]) < EYE_TOLERANCE_PX
    # getRotationMatrix2D turns counter-clockwise on screen, i.e. by -30 degrees in y-down image
    # coordinates: the eye line (2.8 degrees in the original) turns with it, and so does the crop
    # (less precisely: it follows BlazeFace's coarse eye keypoints).
    eye_line = math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))
    assert eye_line == pytest.approx(2.8 - degrees, abs=3)
    assert math.degrees(result.roi.rotation) == pytest.approx(2.8 - degrees, abs=10)


@pytest.mark.parametrize(
    "image",
    [
        skimage.data.coffee(),
        np.full((300, 400, 3), 128, np.uint8),
        np.repeat(skimage.data.brick()[..., None], 3, axis=2),
    ],
    ids=["coffee", "flat_grey", "brick_texture"],
)
def test_no_face_found(image: np.ndarray, landmarker: FaceLandmarker) -> None:
    assert landmarker.detect(image) == []
    assert landmarker(image) is None
    # FaceMesh run on a face-less crop says so through its presence score.
    roi = RotatedRect(image.shape[1] / 2, image.shape[0] / 2, 150, 150, 0.2)
    with torch.inference_mode():
        landmarks, face_flag = landmarker.mesh(torch.from_numpy(landmark_input(image, roi)))
    result = postprocess_landmarks(landmarks[0].numpy(), float(face_flag), roi)
    assert not result.face_present and result.presence < 0.01


def test_two_faces_select_by_index_or_largest(landmarker: FaceLandmarker) -> None:
    image = _two_faces()
    split = 250  # the left head's canvas width
    faces = landmarker.detect(image)
    assert len(faces) == 2
    assert faces[0].center[0] < split < faces[1].center[0]  # ordered left to right
    assert select_face(faces) is faces[1]  # the 1.3x copy is the largest
    assert select_face(faces, 0) is faces[0]
    assert select_face([]) is None
    with pytest.raises(IndexError):
        select_face(faces, 2)

    left, right, largest = landmarker(image, 0), landmarker(image, 1), landmarker(image)
    assert left is not None and right is not None and largest is not None
    assert left.points[:, 0].max() < split < right.points[:, 0].min()
    np.testing.assert_array_equal(largest.points, right.points)
    width_ratio = np.ptp(right.points[:, 0]) / np.ptp(left.points[:, 0])
    assert width_ratio == pytest.approx(1.3, abs=0.1)


def test_anchor_layout() -> None:
    anchors = ssd_anchors(SHORT_RANGE)
    assert anchors.shape == (896, 2) and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors[0], anchors[1])  # 2 anchors per 16x16 cell
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])  # row-major: x first
    np.testing.assert_allclose(anchors[512:518], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])
    full = ssd_anchors(FULL_RANGE)
    assert full.shape == (2304, 2)  # one anchor per cell of 48x48
    np.testing.assert_allclose(full[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(full[1], [1.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(full[48], [0.5 / 48, 1.5 / 48])


def test_weighted_nms_averages_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    keypoints = np.stack([boxes[:, :2], boxes[:, 2:]], axis=1)
    scores = np.array([0.6, 0.9, 0.8], np.float32)
    out_boxes, out_keypoints, out_scores = weighted_nms(boxes, keypoints, scores, 0.3)
    np.testing.assert_allclose(out_scores, [0.9, 0.8])
    np.testing.assert_allclose(out_boxes[0], [0.6, 0, 10.6, 10], atol=1e-6)  # weights .4 / .6
    np.testing.assert_allclose(out_boxes[1], boxes[2])
    np.testing.assert_allclose(out_keypoints[0], [[0.6, 0], [10.6, 10]], atol=1e-6)


def test_face_crop_levels_the_eyes() -> None:
    keypoints = np.zeros((6, 2), np.float32)
    keypoints[0], keypoints[1] = (100, 100), (140, 130)  # eyes tilted by atan(30 / 40)
    face = FaceDetection(np.array([80, 80, 160, 180], np.float32), keypoints, 0.9)
    roi = face_roi(face)
    assert roi.rotation == pytest.approx(math.atan2(30, 40))
    assert roi.width == roi.height == pytest.approx(150)  # 1.5 x the longer side
    to_crop = roi.image_to_crop(192)
    eyes = cv2.transform(keypoints[None, :2].astype(np.float64), to_crop)[0]
    assert eyes[0, 1] == pytest.approx(eyes[1, 1])  # level in the crop
    assert eyes[0, 0] < eyes[1, 0]
    np.testing.assert_allclose(cv2.transform(eyes[None], roi.crop_to_image(192))[0], keypoints[:2])
    centre = cv2.transform(np.array([[[120.0, 130.0]]]), to_crop)[0, 0]
    np.testing.assert_allclose(centre, [96, 96], atol=1e-9)
