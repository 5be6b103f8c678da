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
    """Where the face sits on the reenactment canvas, and how the canvas stays inside the photo.

    The preferred framing puts the face box ``face_width`` of the canvas wide, centred
    horizontally at ``face_center_y`` of its height. Where that canvas would reach past the photo
    (a close-up, a face near an edge) it zooms in, up to a face box ``max_face_width`` of the
    canvas wide, and shifts, keeping the face box ``face_margin`` (a fraction of the box's width)
    inside the canvas, so that as much of the canvas as possible lies on the photo. Canvas pixels
    that still fall outside the photo are ``outside_fill``, never the photo's border repeated.
    """

    height: int = 512
    width: int = 384
    face_center_y: float = 0.45  # face box centre, as a fraction of the canvas height
    face_width: float = 0.42  # face box width, as a fraction of the canvas width
    max_face_width: float = 0.8  # the most the canvas zooms in to stay inside the photo
    face_margin: float = 0.1  # least room around the face box when the canvas shifts
    outside_fill: int = 0  # grey level of canvas pixels outside the photo

    def __post_init__(self) -> None:
        if not 0.0 < self.face_width <= self.max_face_width <= 1.0:
            raise ValueError("need 0 < face_width <= max_face_width <= 1")
        if not 0 <= self.outside_fill <= 255:
            raise ValueError("outside_fill must be a grey level in 0..255")


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


def canvas_transform(
    box: np.ndarray, config: CanvasConfig | None = None, image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Image → canvas (2, 3) float64 similarity (no rotation) for a face box.

    box: (4,) x0, y0, x1, y1 in image pixels; image_size: (height, width) of the photo, or None
    for the preferred framing regardless of the photo's extent (see :class:`CanvasConfig`).
    """
    config = config or CanvasConfig()
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"face box must have positive size, got {box}")
    box_width = x1 - x0
    scale = config.face_width * config.width / box_width
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = cx - (config.width / 2) / scale  # canvas pixel 0's position in the photo, preferred
    top = cy - (config.face_center_y * config.height) / scale
    if image_size is not None:
        height, width = image_size
        fit = max((config.width - 1) / max(width - 1, 1), (config.height - 1) / max(height - 1, 1))
        scale = min(max(scale, fit), config.max_face_width * config.width / box_width)
        margin = config.face_margin * box_width
        left = _place_span(
            cx - (config.width / 2) / scale, (config.width - 1) / scale, width, (x0, x1), margin
        )
        top = _place_span(
            cy - (config.face_center_y * config.height) / scale,
            (config.height - 1) / scale,
            height,
            (y0, y1),
            margin,
        )
    return np.array([[scale, 0.0, -scale * left], [0.0, scale, -scale * top]])


def _place_span(
    preferred: float, span: float, extent: int, face: tuple[float, float], margin: float
) -> float:
    """Start of a canvas span of length ``span`` (photo pixels, first to last pixel centre) along
    one axis of a photo with ``extent`` pixels: as near ``preferred`` as keeps it on the photo
    (or covering all of it, when longer), and never leaving the face interval, grown by
    ``margin`` and cut to the photo, outside the span (the face wins)."""
    inside_low, inside_high = sorted((0.0, extent - 1.0 - span))
    start = min(max(preferred, inside_low), inside_high)
    # room around the face counts only where there is photo to show
    face_low = min(face[1] + margin, extent - 1.0) - span
    face_high = max(face[0] - margin, 0.0)
    if face_low <= face_high:
        start = min(max(start, face_low), face_high)
    return start


def outside_mask(
    image_size: tuple[int, int], affine: np.ndarray, height: int, width: int, reach: float = 0.0
) -> np.ndarray:
    """(height, width) bool: frame pixels whose position in the photo lies more than ``reach``
    photo pixels beyond its outermost pixel centres.

    image_size: (H, W) of the photo; affine: (2, 3) photo → frame. With ``reach`` 0 the rest
    are the pixels that bilinear sampling reads from the photo alone; with ``reach`` 1 the mask
    holds the pixels that :func:`warp_to_frame` fills without any photo pixel.
    """
    inverse = invert_affine(affine)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    px = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    py = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    low = -reach - 1e-6  # a millionth of a pixel of slack for rounding
    photo_height, photo_width = image_size
    return (px < low) | (px > photo_width - 1 - low) | (py < low) | (py > photo_height - 1 - low)


def warp_to_frame(
    image: np.ndarray, affine: np.ndarray, height: int, width: int, fill: int = 0
) -> np.ndarray:
    """Resample ``image`` (H, W, C) uint8 into a (height, width, C) frame.

    Frame pixels outside the photo are ``fill`` (a grey level): the photo's border is never
    repeated into them (bilinear sampling blends the last photo pixel with the fill over at most
    one pixel).
    """
    channels = image.shape[2] if image.ndim == 3 else 1
    return cv2.warpAffine(
        image,
        np.asarray(affine, np.float64),
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill,) * min(channels, 4),
    )
