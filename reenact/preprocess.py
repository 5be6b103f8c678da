"""face_preprocess's work: decode, detect, pick one face, cut the landmark crop and the canvas.

One photo in; out: the decoded image, the face box, the rotated 192x192 landmark crop for the mesh
predictor with its crop → image transform, and the 512x384 (H×W) reenactment canvas with its
image → canvas transform. Coordinates are image pixels, x right, y down, pixel
centres at integers (``cv2``'s convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reenact import face_geometry
from reenact.errors import RequestError
from reenact.face_geometry import CanvasConfig
from reenact.image_codec import DecodeLimits, decode_image
from reenact.landmarks.detection import (
    DetectorConfig,
    FaceDetector,
    LandmarkConfig,
    face_roi,
    select_face,
    warp_crop,
)

CANVAS_HEIGHT = CanvasConfig.height
CANVAS_WIDTH = CanvasConfig.width


@dataclass(frozen=True)
class PreprocessConfig:
    """Tunables of face_preprocess (``parameters`` in its config.pbtxt)."""

    max_pixels: int = DecodeLimits.max_pixels
    max_bytes: int = DecodeLimits.max_bytes
    alpha_background: int = DecodeLimits.alpha_background
    min_detection_score: float = DetectorConfig.min_score
    face_center_y: float = CanvasConfig.face_center_y
    face_width: float = CanvasConfig.face_width
    max_face_width: float = CanvasConfig.max_face_width
    face_margin: float = CanvasConfig.face_margin
    outside_fill: int = CanvasConfig.outside_fill
    assets_dir: str = ""  # converted MediaPipe weights; "" = build/assets/mediapipe
    torch_threads: int = 1

    def limits(self) -> DecodeLimits:
        return DecodeLimits(self.max_pixels, self.max_bytes, self.alpha_background)

    def canvas(self) -> CanvasConfig:
        return CanvasConfig(
            face_center_y=self.face_center_y,
            face_width=self.face_width,
            max_face_width=self.max_face_width,
            face_margin=self.face_margin,
            outside_fill=self.outside_fill,
        )


@dataclass(frozen=True)
class Preprocessed:
    """What face_preprocess returns for one photo."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, upright
    face_box: np.ndarray  # (4,) float32 x0, y0, x1, y1 in image pixels
    detection_score: float
    landmark_crop: np.ndarray  # (192, 192, 3) uint8 RGB
    crop_to_image: np.ndarray  # (2, 3) float32
    canvas: np.ndarray  # (512, 384, 3) uint8 RGB
    image_to_canvas: np.ndarray  # (2, 3) float32


def face_index_option(value: np.ndarray | None) -> int | None:
    """The optional FACE_INDEX input: None (the largest face) or one integer >= 0, counted from
    the left. value: any-shape integer array. Raises RequestError otherwise; whether the photo
    has that many faces is checked by :class:`FacePreprocessor`."""
    if value is None:
        return None
    if value.size != 1:
        raise RequestError(f"FACE_INDEX must hold one integer, got shape {value.shape}")
    index = int(value.reshape(-1)[0])
    if index < 0:
        raise RequestError(f"FACE_INDEX must be 0 or more (faces counted from the left): {index}")
    return index


class FacePreprocessor:
    def __init__(self, config: PreprocessConfig | None = None) -> None:
        self.config = config or PreprocessConfig()
        detector_config = DetectorConfig(min_score=self.config.min_detection_score)
        assets = Path(self.config.assets_dir) if self.config.assets_dir else None
        self.detector = FaceDetector.from_assets(assets, detector_config)
        self.landmark_config = LandmarkConfig()
        self.canvas_config = self.config.canvas()

    def __call__(self, data: bytes, face_index: int | None = None) -> Preprocessed:
        """Raises RequestError for a bad photo, no face, or a face index out of range."""
        image = decode_image(data, self.config.limits())
        # numbering faces needs them all; the default, the largest, is found by cheaper passes
        faces = self.detector(image, exhaustive=face_index is not None)
        if not faces:
            raise RequestError(
                f"no face found in IMAGE ({image.shape[1]}x{image.shape[0]} pixels): send a photo "
                "with a face seen from the front, at least about 40 pixels wide"
            )
        if face_index is not None and not 0 <= face_index < len(faces):
            raise RequestError(
                f"FACE_INDEX {face_index} is out of range: {len(faces)} face(s) found, "
                f"numbered 0..{len(faces) - 1} from left to right"
            )
        face = select_face(faces, face_index)
        roi = face_roi(face, self.landmark_config)
        size = self.landmark_config.input_size
        crop = warp_crop(image, roi, size, cv2.BORDER_REPLICATE)
        frame = self.canvas_config
        to_canvas = face_geometry.canvas_transform(face.box, frame, image.shape[:2])
        canvas = face_geometry.warp_to_frame(
            image, to_canvas, frame.height, frame.width, frame.outside_fill
        )
        return Preprocessed(
            image=image,
            face_box=np.asarray(face.box, np.float32),
            detection_score=float(face.score),
            landmark_crop=crop,
            crop_to_image=roi.crop_to_image(size).astype(np.float32),
            canvas=canvas,
            image_to_canvas=to_canvas.astype(np.float32),
        )
