"""face_postprocess's work: parameters from the landmark crop's frame to the canvas and photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reenact import face_geometry
from reenact.errors import RequestError
from reenact.landmarks.detection import LandmarkConfig


@dataclass(frozen=True)
class PostprocessConfig:
    """Tunables of face_postprocess (``parameters`` in its config.pbtxt)."""

    min_presence: float = LandmarkConfig.min_presence


@dataclass(frozen=True)
class FaceMeshResult:
    source_params: np.ndarray  # (162,) float32 in canvas pixels
    image_params: np.ndarray  # (162,) float32 in original-photo pixels
    image_landmarks: np.ndarray  # (468, 3) float32 photo pixels, z larger = nearer
    confidence: float


def postprocess(
    crop_params: np.ndarray,
    crop_landmarks: np.ndarray,
    presence: float,
    crop_to_image: np.ndarray,
    image_to_canvas: np.ndarray,
    config: PostprocessConfig | None = None,
) -> FaceMeshResult:
    """crop_params: (162,); crop_landmarks: (468, 3); the transforms: (2, 3).

    Raises RequestError when FaceMesh does not see a face in the crop.
    """
    config = config or PostprocessConfig()
    if not presence >= config.min_presence:
        raise RequestError(
            f"no face found in IMAGE: the face detector fired but the landmark network sees no "
            f"face (presence {presence:.2f} < {config.min_presence}); send a clearer photo"
        )
    params = np.asarray(crop_params, np.float32).reshape(1, -1)
    crop_to_canvas = face_geometry.compose(image_to_canvas, crop_to_image)
    return FaceMeshResult(
        source_params=face_geometry.transform_params(params, crop_to_canvas)[0],
        image_params=face_geometry.transform_params(params, crop_to_image)[0],
        image_landmarks=face_geometry.apply_affine(crop_to_image, crop_landmarks).astype(
            np.float32
        ),
        confidence=float(presence),
    )
