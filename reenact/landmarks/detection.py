"""MediaPipe's face detection → face crop → 468-landmark path, around the two PyTorch networks.

Reproduces the CPU graphs of ``mediapipe==0.10.14``:

* ``face_detection_short_range``: the image is letterboxed into 128x128 (aspect kept, zero
  border, values in [-1, 1]); BlazeFace's 896 outputs are decoded against fixed-size SSD anchors
  (strides 8, 16, 16, 16; offsets scaled by 128), scored by a sigmoid of the logit clipped to
  ±100, kept from score 0.5, merged by *weighted* non-maximum suppression (IoU > 0.3), and mapped
  back to image pixels.
* ``face_detection_front_detection_to_roi``: the face crop is the detection box's centre, a square
  of 1.5 x its longer side, rotated so that the right eye → left eye keypoints are horizontal.
* ``face_landmark_cpu``: that crop is resampled to 192x192 (bilinear, replicated border, values
  in [0, 1]); FaceMesh's 468 (x, y, z) are mapped back through the crop; z is scaled like x. The
  face-presence score is the sigmoid of the face-flag logit (MediaPipe drops the face below 0.5).

Coordinates are pixels of the original image, x right and y down, with MediaPipe's convention
that a crop of size S maps the ROI edge to crop coordinate 0 and the opposite edge to S (so crop
pixel index i samples the image at the ROI point i / S, as ``cv2.warpAffine`` does).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from reenact.landmarks import MIN_FACE_PRESENCE, blazeface, facemesh, mediapipe_dir
from reenact.landmarks.blazeface import BlazeFace, BlazeFaceFullRange
from reenact.landmarks.facemesh import FaceMesh

KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)
"""BlazeFace keypoints, in output order; right/left are the subject's (right eye = image left)."""


@dataclass(frozen=True)
class SsdConfig:
    """One BlazeFace's anchors and box decoding (MediaPipe ``face_detection_*_range.pbtxt``).

    All anchors are 1x1 (``fixed_anchor_size``); raw offsets are in units of 1/``coord_scale``
    of the tensor (MediaPipe's x/y/w/h_scale).
    """

    input_size: int
    strides: tuple[int, ...]
    """SSD layers; consecutive layers of equal stride share one feature map."""
    anchors_per_layer: int
    """Anchors per cell and layer: 2 with the interpolated-scale anchor, else 1."""
    coord_scale: float
    anchor_offset: float = 0.5
    num_keypoints: int = len(KEYPOINT_NAMES)
    score_clipping: float = 100.0


SHORT_RANGE = SsdConfig(
    input_size=blazeface.INPUT_SIZE, strides=(8, 16, 16, 16), anchors_per_layer=2, coord_scale=128.0
)
"""``face_detection_short_range``: 896 anchors (16x16 x 2, then 8x8 x 6)."""
FULL_RANGE = SsdConfig(
    input_size=blazeface.FULL_RANGE_INPUT_SIZE, strides=(4,), anchors_per_layer=1, coord_scale=192.0
)
"""``face_detection_full_range``: 2304 anchors (48x48 x 1)."""


@dataclass(frozen=True)
class DetectorConfig:
    """Which passes :class:`FaceDetector` runs and how it merges them.

    Short range on the 128x128 letterbox of the photo (MediaPipe's graph) finds faces from
    about a tenth of the photo's longer side up to filling it. Full range (a fully convolutional
    network) runs on a letterbox of the photo too, 192x192 for small photos (MediaPipe's
    ``face_detection_full_range`` graph) and larger for large ones, so that a face
    ``min_face_width`` pixels wide reaches the ``face_input_width`` pixels the network needs:
    the same as running it on tiles, without seams. ``max_input_side`` bounds that cost.
    """

    min_score: float = 0.5
    """Detection confidence from which a face counts (MediaPipe's default, both networks)."""
    min_suppression_iou: float = 0.3
    """Weighted NMS, within one pass, merges boxes whose IoU with the best one exceeds this."""
    full_range: bool = True
    """Run the full-range network; False: short range only (MediaPipe's short-range graph)."""
    merge_iou: float = 0.3
    """Across passes, a face whose box has a larger IoU with a face already kept is the same."""
    merge_containment: float = 0.6
    """...as is one whose box lies by more than this fraction of its area inside a kept box."""
    min_face_width: float = 40.0
    """Image pixels: the full-range input is made large enough for faces this wide."""
    face_input_width: float = 20.0
    """Network-input pixels from which full range finds faces reliably (measured: 20-24)."""
    max_input_side: int = 1024
    """Largest full-range input side (a multiple of 32): ~30x the work of 192x192."""
    enlarged_min_score: float = 0.6
    """Confidence from which a face counts when the full-range input is larger than 192: it
    looks at many more windows than MediaPipe's 192x192, so it is held to a higher score."""


@dataclass(frozen=True)
class LandmarkConfig:
    """FaceMesh crop options (MediaPipe ``face_detection_front_detection_to_roi.pbtxt``)."""

    input_size: int = facemesh.INPUT_SIZE
    roi_scale: float = 1.5
    """The crop's side is this times the longer side of the detection box."""
    rotation_keypoints: tuple[int, int] = (0, 1)
    """Keypoints whose vector (right eye → left eye) becomes the crop's x axis."""
    target_angle: float = 0.0
    """Radians; the angle that vector should have in the crop."""
    min_presence: float = MIN_FACE_PRESENCE
    """Face-presence score (sigmoid of FaceMesh's face flag) from which a face counts as found."""


@dataclass(frozen=True)
class RotatedRect:
    """A rotated rectangle in image pixels: centre, size, and rotation (radians, clockwise on
    screen since y points down) of the rectangle's x axis relative to the image's x axis."""

    center_x: float
    center_y: float
    width: float
    height: float
    rotation: float = 0.0

    def image_to_crop(self, size: int) -> np.ndarray:
        """``(2, 3)`` float64 affine: image pixels → pixels of a ``size`` x ``size`` crop."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        sx, sy = size / self.width, size / self.height
        linear = np.array([[cos * sx, sin * sx], [-sin * sy, cos * sy]])
        offset = np.array([size / 2, size / 2]) - linear @ [self.center_x, self.center_y]
        return np.hstack([linear, offset[:, None]])

    def crop_to_image(self, size: int) -> np.ndarray:
        """``(2, 3)`` float64 affine: crop pixels → image pixels (inverse of image_to_crop)."""
        return cv2.invertAffineTransform(self.image_to_crop(size))


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous: compare by identity
class FaceDetection:
    """One face found by BlazeFace, in original-image pixels.

    ``box``: (4,) float32 ``[xmin, ymin, xmax, ymax]``; ``keypoints``: (6, 2) float32 (x, y) in
    :data:`KEYPOINT_NAMES` order; ``score``: detection confidence in [0.5, 1].
    """

    box: np.ndarray = field(repr=False)
    keypoints: np.ndarray = field(repr=False)
    score: float

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    @property
    def center(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """FaceMesh's result for one face crop.

    ``points``: (468, 3) float32 (x, y, z) in original-image pixels; z is depth in the same pixel
    scale as x (MediaPipe's convention: origin near the head centre, negative towards the camera).
    ``presence``: face-presence score in [0, 1]; ``face_present``: ``presence >= min_presence``.
    ``roi``: the crop the network saw; ``crop_to_image``: (2, 3) float64 affine of that crop.
    """

    points: np.ndarray = field(repr=False)
    presence: float
    face_present: bool
    roi: RotatedRect
    crop_to_image: np.ndarray = field(repr=False)


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")


def ssd_anchors(config: SsdConfig = SHORT_RANGE) -> np.ndarray:
    """Anchor centres ``(A, 2)`` float32 (x, y) in [0, 1] tensor units, in network output order
    (A = 896 for short range, 2304 for full range).

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size``: per feature map, cells row by
    row, each repeated ``anchors_per_layer`` x (number of layers sharing the stride) times.
    """
    centers = []
    layer = 0
    while layer < len(config.strides):
        stride = config.strides[layer]
        shared = 1
        while layer + shared < len(config.strides) and config.strides[layer + shared] == stride:
            shared += 1
        cells = math.ceil(config.input_size / stride)
        grid = (np.arange(cells, dtype=np.float32) + config.anchor_offset) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centers = np.stack([xs, ys], axis=-1).reshape(-1, 1, 2)
        centers.append(np.repeat(cell_centers, config.anchors_per_layer * shared, axis=1))
        layer += shared
    return np.concatenate([c.reshape(-1, 2) for c in centers]).astype(np.float32)


def letterbox_roi(height: int, width: int) -> RotatedRect:
    """The square ROI that letterboxes a ``width`` x ``height`` image (centred, zero border)."""
    side = float(max(height, width))
    return RotatedRect(width / 2, height / 2, side, side)


def warp_crop(image: np.ndarray, roi: RotatedRect, size: int, border: int) -> np.ndarray:
    """``(size, size, 3)`` uint8: the ROI of ``image: (H, W, 3) uint8``, bilinear resampled.

    ``border`` is an OpenCV border mode (``cv2.BORDER_CONSTANT`` pads with black).
    """
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        roi.image_to_crop(size),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=(0, 0, 0),
    )


def _to_nchw(crop: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(S, S, 3)`` uint8 → ``(1, 3, S, S)`` float32 with 0 → low and 255 → high."""
    scale = np.float32((high - low) / 255.0)
    tensor = crop.astype(np.float32) * scale + np.float32(low)
    return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])


def detector_input(
    image: np.ndarray, input_size: int = SHORT_RANGE.input_size, roi: RotatedRect | None = None
) -> tuple[np.ndarray, RotatedRect]:
    """``image: (H, W, 3) uint8 RGB`` → ``((1, 3, S, S) float32 in [-1, 1], roi)``: the unrotated
    square ``roi`` (default: the letterbox of the whole image) resampled to ``input_size``, with
    black (-1) where it leaves the image."""
    _check_image(image)
    roi = roi or letterbox_roi(image.shape[0], image.shape[1])
    crop = warp_crop(image, roi, input_size, cv2.BORDER_CONSTANT)
    return _to_nchw(crop, -1.0, 1.0), roi


def decode_boxes(
    regressors: np.ndarray,
    classificators: np.ndarray,
    config: SsdConfig = SHORT_RANGE,
    min_score: float = DetectorConfig.min_score,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs ``(A, 16)``, ``(A, 1)`` → boxes kept by score, in [0, 1] tensor units.

    Returns ``boxes (N, 4)`` float32 ``[xmin, ymin, xmax, ymax]``, ``keypoints (N, 6, 2)``
    float32 and ``scores (N,)`` float32 (sigmoid of the clipped logit, >= ``min_score``).
    """
    anchors = ssd_anchors(config)
    raw = regressors.reshape(len(anchors), -1).astype(np.float32) / np.float32(config.coord_scale)
    logits = classificators.reshape(-1).astype(np.float64)  # exp(100) overflows float32
    logits = np.clip(logits, -config.score_clipping, config.score_clipping)
    scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    centers = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centers - half, centers + half], axis=1)
    keypoints = raw[:, 4 : 4 + 2 * config.num_keypoints].reshape(-1, config.num_keypoints, 2)
    keypoints = keypoints + anchors[:, None, :]
    keep = scores >= min_score
    return boxes[keep], keypoints[keep], scores[keep]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of ``box (4,)`` with each of ``boxes (N, 4)`` (xyxy); 0 where they do not overlap."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    intersection = width * height
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, min_suppression_iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Repeatedly takes the best remaining box, gathers every remaining box overlapping it with
    IoU > ``min_suppression_iou`` (itself included), and outputs their score-weighted mean box
    and keypoints with the best box's score. Shapes as :func:`decode_boxes`; output by
    decreasing score (a stable sort, so ties keep anchor order).
    """
    remaining = np.argsort(-scores, kind="stable")
    out_boxes, out_keypoints, out_scores = [], [], []
    while len(remaining) > 0:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining]) > min_suppression_iou
        members = remaining[overlap]
        weights = scores[members] / scores[members].sum()
        out_boxes.append(np.tensordot(weights, boxes[members], axes=1))
        out_keypoints.append(np.tensordot(weights, keypoints[members], axes=1))
        out_scores.append(scores[best])
        remaining = remaining[~overlap]
    if not out_scores:
        return boxes[:0], keypoints[:0], scores[:0]
    return (
        np.stack(out_boxes).astype(np.float32),
        np.stack(out_keypoints).astype(np.float32),
        np.asarray(out_scores, dtype=np.float32),
    )


def _apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``affine (2, 3)`` applied to ``points (..., 2)`` → ``(..., 2)`` float32."""
    return (points @ affine[:, :2].T + affine[:, 2]).astype(np.float32)


def postprocess_detections(
    regressors: np.ndarray,
    classificators: np.ndarray,
    roi: RotatedRect,
    config: SsdConfig = SHORT_RANGE,
    min_score: float = DetectorConfig.min_score,
    min_suppression_iou: float = DetectorConfig.min_suppression_iou,
) -> list[FaceDetection]:
    """BlazeFace outputs ``(A, 16)``, ``(A, 1)`` for the crop ``roi`` → faces in image pixels.

    ``roi`` is the unrotated square of :func:`detector_input`. Faces are ordered left to right
    (box centre x, then y), so an index selects a stable face.
    """
    if roi.rotation != 0:
        raise ValueError("detections can only be mapped back from an unrotated crop")
    boxes, keypoints, scores = decode_boxes(regressors, classificators, config, min_score)
    boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores, min_suppression_iou)
    to_image = roi.crop_to_image(config.input_size)
    size = config.input_size
    corners = _apply_affine(to_image, boxes.reshape(-1, 2, 2) * size).reshape(-1, 4)
    image_keypoints = _apply_affine(to_image, keypoints * size)
    faces = [
        FaceDetection(box=corners[i], keypoints=image_keypoints[i], score=float(scores[i]))
        for i in range(len(scores))
    ]
    return sort_left_to_right(faces)


def sort_left_to_right(faces: Sequence[FaceDetection]) -> list[FaceDetection]:
    """``faces`` ordered by box centre x, then y: the order ``select_face`` indexes."""
    return sorted(faces, key=lambda face: (face.center[0], face.center[1]))


def merge_detections(
    passes: Sequence[Sequence[FaceDetection]],
    merge_iou: float = DetectorConfig.merge_iou,
    merge_containment: float = DetectorConfig.merge_containment,
) -> list[FaceDetection]:
    """One face per face found by several passes, left to right.

    ``passes`` are in order of preference (short range, then full range). A face is dropped
    when its box overlaps a face kept from an earlier pass with IoU > ``merge_iou``, or lies
    inside such a box by more than ``merge_containment`` of its own area; kept faces are
    returned unchanged (box, keypoints and score). Faces of one pass are all kept: weighted NMS
    has already merged them.
    """
    kept: list[FaceDetection] = []
    for faces in passes:
        earlier = list(kept)
        kept += [f for f in faces if not _same_face(f, earlier, merge_iou, merge_containment)]
    return sort_left_to_right(kept)


def _same_face(
    face: FaceDetection, kept: Sequence[FaceDetection], merge_iou: float, containment: float
) -> bool:
    if not kept:
        return False
    boxes = np.stack([k.box for k in kept]).astype(np.float64)
    box = face.box.astype(np.float64)
    if (_iou(box, boxes) > merge_iou).any():
        return True
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    return bool((width * height > containment * max(face.area, 1e-12)).any())


def select_face(faces: Sequence[FaceDetection], index: int | None = None) -> FaceDetection | None:
    """The largest face (``index=None``), or ``faces[index]`` (left-to-right order); None if none.

    Raises IndexError for an index out of range.
    """
    if not faces:
        return None
    if index is None:
        return max(faces, key=lambda face: face.area)
    return faces[index]


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped into [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def face_roi(face: FaceDetection, config: LandmarkConfig = LandmarkConfig()) -> RotatedRect:
    """The FaceMesh crop for a detection: a square of ``roi_scale`` x the box's longer side,
    centred on the box, rotated so that the eye-to-eye vector is at ``target_angle``."""
    start, end = config.rotation_keypoints
    dx, dy = face.keypoints[end] - face.keypoints[start]
    rotation = normalize_radians(config.target_angle - math.atan2(-float(dy), float(dx)))
    xmin, ymin, xmax, ymax = (float(v) for v in face.box)
    side = max(xmax - xmin, ymax - ymin) * config.roi_scale
    return RotatedRect((xmin + xmax) / 2, (ymin + ymax) / 2, side, side, rotation)


def landmark_input(
    image: np.ndarray, roi: RotatedRect, config: LandmarkConfig = LandmarkConfig()
) -> np.ndarray:
    """``image: (H, W, 3) uint8 RGB`` → FaceMesh input ``(1, 3, 192, 192)`` float32 in [0, 1]."""
    _check_image(image)
    crop = warp_crop(image, roi, config.input_size, cv2.BORDER_REPLICATE)
    return _to_nchw(crop, 0.0, 1.0)


def postprocess_landmarks(
    landmarks: np.ndarray,
    face_flag: float,
    roi: RotatedRect,
    config: LandmarkConfig = LandmarkConfig(),
) -> FaceLandmarks:
    """FaceMesh outputs (``(468, 3)`` crop pixels, face-flag logit) → :class:`FaceLandmarks`."""
    to_image = roi.crop_to_image(config.input_size)
    points = np.empty((len(landmarks), 3), dtype=np.float32)
    points[:, :2] = _apply_affine(to_image, landmarks[:, :2])
    points[:, 2] = landmarks[:, 2] * (roi.width / config.input_size)
    presence = 1.0 / (1.0 + math.exp(-float(face_flag)))
    return FaceLandmarks(
        points=points,
        presence=presence,
        face_present=presence >= config.min_presence,
        roi=roi,
        crop_to_image=to_image,
    )


INPUT_MULTIPLE = 32
"""The full-range input side must be a multiple of this (its deepest map is 1/32 of it)."""


def full_range_input_size(
    height: int, width: int, config: DetectorConfig = DetectorConfig()
) -> int:
    """Side of the square full-range input for a ``width`` x ``height`` photo: 192, or enough
    for ``min_face_width`` faces to be ``face_input_width`` wide, up to ``max_input_side``."""
    wanted = max(height, width) * config.face_input_width / config.min_face_width
    side = INPUT_MULTIPLE * math.ceil(wanted / INPUT_MULTIPLE)
    return int(
        min(max(side, FULL_RANGE.input_size), max(config.max_input_side, FULL_RANGE.input_size))
    )


def full_range_ssd(input_size: int) -> SsdConfig:
    """:data:`FULL_RANGE` for a larger square input: ``(input_size / 4)²`` anchors; raw offsets
    are input pixels, so ``coord_scale`` is the input size as at 192."""
    return dataclasses.replace(FULL_RANGE, input_size=input_size, coord_scale=float(input_size))


class FaceDetector:
    """Image → faces, with the PyTorch BlazeFace short range and full range.

    Two passes, merged by :func:`merge_detections` in this order of preference: short range on
    the letterboxed photo (MediaPipe's ``face_detection_short_range``), then full range on the
    same letterbox, 192x192 or larger (:func:`full_range_input_size`).
    """

    def __init__(
        self,
        short_range: BlazeFace,
        full_range: BlazeFaceFullRange | None = None,
        config: DetectorConfig = DetectorConfig(),
    ) -> None:
        if config.full_range and full_range is None:
            raise ValueError("config.full_range is set but no full-range network was given")
        self.short_range = short_range.eval()
        # config.full_range=False leaves a given full-range network unused.
        self.full_range = (
            full_range.eval() if full_range is not None and config.full_range else None
        )
        self.config = config

    @classmethod
    def from_assets(
        cls, folder: str | Path | None = None, config: DetectorConfig = DetectorConfig()
    ) -> FaceDetector:
        """Load the converted weights from ``folder`` (default ``build/assets/mediapipe``)."""
        folder = Path(folder) if folder else mediapipe_dir()
        full_range = None
        if config.full_range:
            full_range = BlazeFaceFullRange.load(folder / blazeface.FULL_RANGE_WEIGHTS_FILE)
        return cls(BlazeFace.load(folder / blazeface.WEIGHTS_FILE), full_range, config)

    def __call__(self, image: np.ndarray, exhaustive: bool = True) -> list[FaceDetection]:
        """Faces in ``image: (H, W, 3) uint8 RGB``, left to right.

        ``exhaustive``: every face, small ones included (full range on the enlarged letterbox),
        as numbering faces needs. Otherwise the enlarged pass, which costs up to 30 times the
        others on a large photo, runs only when MediaPipe's input sizes find no face: enough to
        find the largest face.
        """
        _check_image(image)
        letterbox = letterbox_roi(image.shape[0], image.shape[1])
        passes = self.detect(
            self.short_range, SHORT_RANGE, image, [letterbox], self.config.min_score
        )
        if self.full_range is None:
            return merge_detections(passes, self.config.merge_iou, self.config.merge_containment)
        size = full_range_input_size(image.shape[0], image.shape[1], self.config)
        if not exhaustive and size > FULL_RANGE.input_size:
            cheap = passes + self._full_range_pass(image, letterbox, FULL_RANGE.input_size)
            faces = merge_detections(cheap, self.config.merge_iou, self.config.merge_containment)
            if faces:
                return faces
        passes += self._full_range_pass(image, letterbox, size)
        return merge_detections(passes, self.config.merge_iou, self.config.merge_containment)

    def _full_range_pass(
        self, image: np.ndarray, letterbox: RotatedRect, size: int
    ) -> list[list[FaceDetection]]:
        """The full-range network on the letterbox at ``size`` x ``size`` pixels."""
        assert self.full_range is not None
        min_score = self.config.min_score
        if size > FULL_RANGE.input_size:
            min_score = max(min_score, self.config.enlarged_min_score)
        return self.detect(self.full_range, full_range_ssd(size), image, [letterbox], min_score)

    def detect(
        self,
        network: BlazeFace | BlazeFaceFullRange,
        config: SsdConfig,
        image: np.ndarray,
        rois: Sequence[RotatedRect],
        min_score: float,
    ) -> list[list[FaceDetection]]:
        """``network`` on the square ``rois`` of ``image`` (one batch); the faces of each ROI."""
        batch = np.concatenate([detector_input(image, config.input_size, roi)[0] for roi in rois])
        with torch.inference_mode():
            regressors, classificators = network(torch.from_numpy(batch))
        iou = self.config.min_suppression_iou
        return [
            postprocess_detections(
                regressors[i].numpy(), classificators[i].numpy(), roi, config, min_score, iou
            )
            for i, roi in enumerate(rois)
        ]


class FaceLandmarker:
    """Image → faces → 468 landmarks of one face, with :class:`FaceDetector` and FaceMesh."""

    def __init__(
        self,
        detector: FaceDetector,
        mesh: FaceMesh,
        landmark_config: LandmarkConfig = LandmarkConfig(),
    ) -> None:
        self.detector = detector
        self.mesh = mesh.eval()
        self.landmark_config = landmark_config

    @classmethod
    def from_assets(
        cls, folder: str | Path | None = None, detector_config: DetectorConfig = DetectorConfig()
    ) -> FaceLandmarker:
        """Load the converted weights from ``folder`` (default ``build/assets/mediapipe``)."""
        folder = Path(folder) if folder else mediapipe_dir()
        return cls(
            FaceDetector.from_assets(folder, detector_config),
            FaceMesh.load(folder / facemesh.WEIGHTS_FILE),
        )

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces in ``image: (H, W, 3) uint8 RGB``, left to right."""
        return self.detector(image)

    def landmarks(self, image: np.ndarray, face: FaceDetection) -> FaceLandmarks:
        """FaceMesh on the crop of ``face`` in ``image: (H, W, 3) uint8 RGB``."""
        roi = face_roi(face, self.landmark_config)
        tensor = landmark_input(image, roi, self.landmark_config)
        with torch.inference_mode():
            landmarks, face_flag = self.mesh(torch.from_numpy(tensor))
        return postprocess_landmarks(
            landmarks[0].numpy(), float(face_flag[0, 0]), roi, self.landmark_config
        )

    def __call__(self, image: np.ndarray, face_index: int | None = None) -> FaceLandmarks | None:
        """Landmarks of the largest face (or of ``face_index`` in left-to-right order).

        None when no face is detected; check ``face_present`` for FaceMesh's own verdict.
        """
        face = select_face(self.detect(image), face_index)
        return None if face is None else self.landmarks(image, face)
