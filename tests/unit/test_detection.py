"""FaceDetector's two passes (short range + full range, enlarged for large photos) and their
merge: group photos, small faces in large photos, close-ups."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from clients import sample_photos
from reenact.landmarks.detection import (
    DetectorConfig,
    FaceDetection,
    FaceDetector,
    full_range_input_size,
    merge_detections,
    select_face,
)

# Where the six faces of insightface's t1.jpg (1280x886) are, read off the photo: the centre of
# each face, left to right, to within a quarter of a face width (faces are ~100-130 px wide).
T1_FACE_CENTRES = np.array(
    [[112, 340], [315, 220], [515, 348], [785, 418], [940, 140], [1175, 343]], np.float64
)
T1_TOLERANCE_PX = 30.0


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector.from_assets()


def _face(box: list[float], score: float) -> FaceDetection:
    box_array = np.array(box, np.float32)
    keypoints = np.tile(box_array[:2], (6, 1)).astype(np.float32)
    return FaceDetection(box=box_array, keypoints=keypoints, score=score)


def _paste(face: np.ndarray, width: int, photo: tuple[int, int], at: tuple[int, int]):
    """``face`` resized to ``width`` px wide, pasted at ``at`` (x, y) into a grey ``photo``."""
    scale = width / face.shape[1]
    small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((*photo, 3), 128, np.uint8)
    canvas[at[1] : at[1] + small.shape[0], at[0] : at[0] + small.shape[1]] = small
    return canvas, small.shape


def test_group_photo_six_faces_left_to_right(detector: FaceDetector) -> None:
    image = sample_photos.group()
    faces = detector(image)
    assert len(faces) == 6
    centres = np.array([face.center for face in faces])
    assert np.all(np.diff(centres[:, 0]) > 0)  # numbered from the left
    np.testing.assert_allclose(centres, T1_FACE_CENTRES, atol=T1_TOLERANCE_PX)
    # Short range alone (MediaPipe's short-range graph) finds none of them: too small for it.
    short_only = DetectorConfig(full_range=False)
    assert FaceDetector(detector.short_range, detector.full_range, short_only)(image) == []


def test_40px_face_in_a_2000px_photo(detector: FaceDetector) -> None:
    # The astronaut's head, 240 px around a face box ~95 px wide: pasted 100 px wide, a ~40 px face.
    head = skimage.data.astronaut()[30:270, 120:360]
    image, shape = _paste(head, 100, (1500, 2000), (1200, 900))
    faces = detector(image)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 1200 <= x0 < x1 <= 1200 + shape[1] and 900 <= y0 < y1 <= 900 + shape[0]
    assert 30 < x1 - x0 < 55
    # MediaPipe's 192x192 full-range input alone makes that face 6 px wide: not found.
    config = DetectorConfig(max_input_side=0)
    assert FaceDetector(detector.short_range, detector.full_range, config)(image) == []


@pytest.mark.parametrize("tightness", [0.9, 1.1])
def test_close_up_filling_the_frame(detector: FaceDetector, tightness: float) -> None:
    # The astronaut's face box is ~95 px wide around (226, 130) (test_mediapipe checks her
    # eyes): a square crop 95 / tightness wide (> 1: it cuts into the face), enlarged to 512 px.
    side = int(95 / tightness)
    x0, y0 = 226 - side // 2, 130 - side // 2
    crop = cv2.resize(skimage.data.astronaut()[y0 : y0 + side, x0 : x0 + side], (512, 512))
    face = select_face(detector(crop))
    assert face is not None
    assert face.box[2] - face.box[0] > 0.7 * 512 * tightness


def test_full_range_input_size_grows_with_the_photo() -> None:
    config = DetectorConfig()
    assert full_range_input_size(300, 200, config) == 192  # MediaPipe's size for small photos
    assert full_range_input_size(886, 1280, config) == 640  # 40 px faces → 20 px
    assert full_range_input_size(1500, 2000, config) == 1024  # 1000, rounded up to 32
    assert full_range_input_size(6000, 8000, config) == config.max_input_side
    assert full_range_input_size(6000, 8000, DetectorConfig(max_input_side=0)) == 192


def test_merge_keeps_the_earlier_pass_for_a_face_found_twice() -> None:
    short = [_face([100, 100, 200, 200], 0.7)]
    full = [
        _face([105, 95, 205, 198], 0.95),  # the same face (IoU ~0.87): dropped
        _face([400, 100, 440, 140], 0.8),  # another face: kept
        _face([120, 110, 170, 160], 0.9),  # IoU 0.25 but 100 % inside the short-range box
    ]
    merged = merge_detections([short, full])
    assert [f.score for f in merged] == [0.7, 0.8]
    assert merged[0] is short[0]  # the short-range box, unchanged
    # A neighbour overlapping a kept box a little (IoU 0.18, 30 % inside it) is another face.
    side_by_side = [_face([170, 100, 270, 200], 0.9)]
    assert len(merge_detections([short, side_by_side])) == 2


def test_merge_orders_left_to_right_and_keeps_one_pass_as_is() -> None:
    right, left = _face([300, 0, 350, 50], 0.9), _face([0, 0, 50, 50], 0.6)
    nested = _face([10, 10, 40, 40], 0.55)  # inside ``left`` but from the same pass: kept
    merged = merge_detections([[right, left, nested]])
    assert merged == [left, nested, right]
    assert merge_detections([[], []]) == []
    # Thresholds are honoured: with merge_iou 0.9 the two overlapping boxes stay apart.
    a, b = _face([0, 0, 100, 100], 0.9), _face([10, 0, 110, 100], 0.8)  # IoU 0.82
    assert merge_detections([[a], [b]]) == [a]
    assert len(merge_detections([[a], [b]], merge_iou=0.9, merge_containment=1.0)) == 2


def test_the_largest_face_is_found_without_the_exhaustive_pass(detector: FaceDetector) -> None:
    """Without a face to number, the enlarged pass runs only when nothing else finds a face:
    the largest face must be the same either way."""
    group = sample_photos.group()
    every = detector(group)
    cheap = detector(group, exhaustive=False)
    assert 1 <= len(cheap) <= len(every)
    largest = max(every, key=lambda face: face.area)
    found = max(cheap, key=lambda face: face.area)
    np.testing.assert_allclose(found.box, largest.box, atol=T1_TOLERANCE_PX)
    head = skimage.data.astronaut()[30:270, 120:360]  # a ~40 px face, as above
    small, _ = _paste(head, 100, (1500, 2000), (1200, 900))
    assert len(detector(small, exhaustive=False)) == 1  # found by the enlarged pass only
