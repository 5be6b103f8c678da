"""face_postprocess's work: parameters from the landmark crop's frame to the canvas and photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reenact import face_gate, face_geometry
from reenact.errors import RequestError
from reenact.landmarks import MIN_FACE_PRESENCE


@dataclass(frozen=True)
class PostprocessConfig:
    """Tunables of face_postprocess (``parameters`` in its config.pbtxt)."""

    min_presence: float = MIN_FACE_PRESENCE
    # The human-face gate (reenact.face_gate; thresholds and their measurements:
    # docs/face_gate.md): the log-odds of FaceMesh's presence a human face reaches (human photos
    # >= 9.15, the most human-looking dog <= 7.87), and how far its landmarks may lie from the
    # canonical human layout (fraction of the face radius; human faces <= 0.158).
    min_presence_log_odds: float = 8.5
    max_layout_distance: float = 0.3


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

    Raises RequestError when FaceMesh does not see a face in the crop, or sees one that is not
    human (an animal's: :mod:`reenact.face_gate`).
    """
    config = config or PostprocessConfig()
    if not presence >= config.min_presence:
        raise RequestError(
            f"no face found in IMAGE: the face detector fired but the landmark network sees no "
            f"face (presence {presence:.2f} < {config.min_presence}); send a clearer photo"
        )
    face_gate.check_human_face(
        crop_landmarks, presence, config.min_presence_log_odds, config.max_layout_distance
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
