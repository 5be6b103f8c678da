"""Only human faces: refuse a photo whose "face" is an animal's, a toy's or an object's.

Two scores of what face_postprocess already has, each with a threshold set from measured
distributions on human and non-human pictures (``export/measure_face_gate.py``,
``docs/face_gate.md``):

- **human-face score**: the log-odds of FaceMesh's face-presence probability. On every human
  photo and framing measured it is at least 9.15; on a golden retriever puppy's face, the most
  human-looking animal measured, at most 7.87 (at the detector's own crop: 5.13). This is the
  score that separates animals; the threshold lies between the two.
- **layout distance**: how far the 468 landmarks are from a canonical human layout (the ICT mean
  face at the FaceMesh correspondences, ``reenact/data/face_template.json``): the RMS residual
  of a 3D similarity Procrustes fit, as a fraction of the face's RMS radius. FaceMesh draws a
  human-shaped mesh on animal faces too, so this does not separate the animals measured; it
  refuses landmark sets no human face has (stretched, scrambled, collapsed, non-finite).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reenact.errors import RequestError

TEMPLATE_FILE = Path(__file__).parent / "data" / "face_template.json"
N_LANDMARKS = 468
ACCEPTED = "send a photo of a person's face (photos, drawings and paintings of people are accepted)"
# Landmarks whose RMS radius is below this (pixels) are one point to float32 resolution.
_MIN_RADIUS = 1e-6


@dataclass(frozen=True)
class GateScores:
    """What the gate measured on one face."""

    presence: float  # FaceMesh's face-presence probability in [0, 1]
    layout_distance: float  # fraction of the face radius; inf for unusable landmarks

    @property
    def presence_log_odds(self) -> float:
        """log(p / (1 - p)): the human-face score; inf for p = 1 (float32's sigmoid is 1
        above log-odds 16.6), -inf for p = 0 or NaN."""
        return log_odds(self.presence)


def log_odds(probability: float) -> float:
    """log(p / (1 - p)) of a probability; inf for 1, -inf for 0 or NaN."""
    if not probability > 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability) - math.log1p(-probability)


@functools.lru_cache(maxsize=1)
def load_template(path: Path = TEMPLATE_FILE) -> np.ndarray:
    """The canonical human layout: (468, 3) float64, centred, RMS radius 1, image axes
    (x right, y down, z larger = nearer), a frontal face."""
    with open(path, encoding="utf-8") as file:
        points = np.asarray(json.load(file)["points"], np.float64)
    if points.shape != (N_LANDMARKS, 3):
        raise ValueError(f"{path}: points must be ({N_LANDMARKS}, 3), got {points.shape}")
    return normalise(points)


def normalise(points: np.ndarray) -> np.ndarray:
    """points: (L, 3) → (L, 3) float64 centred, RMS radius 1 (unchanged if all equal)."""
    centred = np.asarray(points, np.float64) - np.mean(points, axis=0)
    radius = math.sqrt(float(np.mean(np.sum(centred**2, axis=1))))
    return centred / radius if radius > _MIN_RADIUS else centred


def layout_distance(landmarks: np.ndarray, template: np.ndarray | None = None) -> float:
    """RMS distance of ``landmarks`` (468, 3) to ``template`` (468, 3) after the best 3D
    similarity (rotation without reflection, translation, scale), as a fraction of the
    template's RMS radius. 0 for the template itself; inf for non-finite or collapsed landmarks.
    """
    points = np.asarray(landmarks, np.float64)
    if points.shape != (N_LANDMARKS, 3) or not np.isfinite(points).all():
        return math.inf
    target = load_template() if template is None else normalise(template)
    source = normalise(points)
    if not np.any(source):
        return math.inf
    u, singular, vt = np.linalg.svd(source.T @ target)
    signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = float(np.sum(singular * signs)) / len(source)  # source has mean squared norm 1
    residual = scale * source @ rotation - target
    return math.sqrt(float(np.mean(np.sum(residual**2, axis=1))))


def scores(landmarks: np.ndarray, presence: float) -> GateScores:
    """landmarks: (468, 3) float32 FaceMesh points (any pixel frame); presence in [0, 1]."""
    return GateScores(float(presence), layout_distance(landmarks))


def check_human_face(
    landmarks: np.ndarray,
    presence: float,
    min_presence_log_odds: float,
    max_layout_distance: float,
) -> GateScores:
    """The scores of one face; raises RequestError "no human face found ..." when a score is
    outside the human range. landmarks: (468, 3) float32."""
    measured = scores(landmarks, presence)
    if not math.isfinite(measured.layout_distance):
        reason = "the landmark network returned no usable landmarks"
    elif not measured.presence_log_odds >= min_presence_log_odds:
        reason = (
            f"the face found does not look like a human face (human-face score "
            f"{measured.presence_log_odds:.2f} < {min_presence_log_odds})"
        )
    elif not measured.layout_distance <= max_layout_distance:
        reason = (
            f"the face found does not have human proportions "
            f"(layout distance {measured.layout_distance:.3f} > {max_layout_distance})"
        )
    else:
        return measured
    raise RequestError(f"no human face found in IMAGE: {reason}; {ACCEPTED}")
