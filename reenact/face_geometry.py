"""Frames of one request: the original photo, the landmark crop and the reenactment canvas.

Every frame change is a 2D similarity ``p' = A @ [x, y, 1]`` (A: (2, 3) float, uniform scale,
rotation, translation; no reflection). :func:`transform_params` carries 3DMM parameters from one
frame to another so that the decoded mesh lands on the same pixels; :func:`canvas_transform` picks
the 512×384 (H×W) canvas around a face box with the head slightly above centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reenact.morphable import (
    ROT_SLICE,
    SCALE_SLICE,
    TRANS_SLICE,
    rotation_angles,
    rotation_matrix,
)


@dataclass(frozen=True)
class CanvasConfig:
    """Where the face sits on the reenactment canvas."""

    height: int = 512
    width: int = 384
    face_center_y: float = 0.45  # face box centre, as a fraction of the canvas height
    face_width: float = 0.42  # face box width, as a fraction of the canvas width


def as_affine3(affine: np.ndarray) -> np.ndarray:
    """(2, 3) → (3, 3) float64 homogeneous matrix."""
    out = np.eye(3)
    out[:2] = np.asarray(affine, np.float64)
    return out


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine, as (2, 3) float64."""
    return np.linalg.inv(as_affine3(affine))[:2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine applying ``inner`` first, then ``outer``."""
    return (as_affine3(outer) @ as_affine3(inner))[:2]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """points: (..., 2) or (..., 3) with z scaled by the affine's scale. Same shape out."""
    a = np.asarray(affine, np.float64)
    pts = np.asarray(points, np.float64)
    xy = pts[..., :2] @ a[:, :2].T + a[:, 2]
    if pts.shape[-1] == 2:
        return xy
    scale = np.sqrt(abs(np.linalg.det(a[:, :2])))
    return np.concatenate([xy, pts[..., 2:] * scale], axis=-1)


def similarity_parts(affine: np.ndarray) -> tuple[float, float]:
    """(scale, angle in radians) of a similarity; ValueError for shear or reflection."""
    a = np.asarray(affine, np.float64)[:, :2]
    det = np.linalg.det(a)
    if det <= 0:
        raise ValueError("frame change must keep orientation (positive determinant)")
    scale = float(np.sqrt(det))
    rotation_like = np.array([[a[0, 0], -a[1, 0]], [a[1, 0], a[0, 0]]])
    if not np.allclose(a / scale, rotation_like / scale, atol=1e-4):
        raise ValueError("frame change must be a similarity (uniform scale, no shear)")
    return scale, float(np.arctan2(a[1, 0], a[0, 0]))


def transform_params(params: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """3DMM parameters moved to another image frame.

    params: (B, 162) float32 in the source frame; affine: (2, 3) similarity source → target.
    Returns (B, 162) float32 whose decoded vertices are ``apply_affine(affine, decoded)``:
    the in-plane rotation of the frame change becomes a roll about the model's z axis
    (``R' = Rz(-angle) @ R``, the sign from the image's downward y), scale and translation follow.
    """
    params = np.asarray(params, np.float32)
    scale, angle = similarity_parts(affine)
    out = params.copy()
    rot = params[:, ROT_SLICE]
    rotation = rotation_matrix(rot[:, 0], rot[:, 1], rot[:, 2]).astype(np.float64)
    out[:, ROT_SLICE] = rotation_angles(rotation_matrix(0.0, 0.0, -angle) @ rotation)
    trans = params[:, TRANS_SLICE].astype(np.float64)
    out[:, TRANS_SLICE] = apply_affine(affine, trans)
    out[:, SCALE_SLICE] = params[:, SCALE_SLICE] * scale
    return out


def canvas_transform(box: np.ndarray, config: CanvasConfig | None = None) -> np.ndarray:
    """Image → canvas (2, 3) float64 similarity (no rotation) for a face box.

    box: (4,) x0, y0, x1, y1 in image pixels.
    """
    config = config or CanvasConfig()
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"face box must have positive size, got {box}")
    scale = config.face_width * config.width / (x1 - x0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array(
        [
            [scale, 0.0, config.width / 2 - scale * cx],
            [0.0, scale, config.face_center_y * config.height - scale * cy],
        ]
    )


def warp_to_frame(image: np.ndarray, affine: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample ``image`` (H, W, C) uint8 into a (height, width, C) frame; edges replicated."""
    return cv2.warpAffine(
        image,
        np.asarray(affine, np.float64),
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
