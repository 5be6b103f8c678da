"""Where each of FaceMesh's 468 landmarks lies on the ICT surface (triangle + barycentrics).

Measured, not guessed (:func:`measure`): the ICT mean head is painted as a plain shaded face in
several head poses (:mod:`reenact.head_render`), MediaPipe's detector and FaceMesh run on each
picture, and the surface point under each landmark is read back from the rasterizer's triangle
ids. The per-view points (in the mean face's 3D frame) are combined by their median and snapped
to the nearest point of the face surface. ``export/build_correspondence.py`` writes the result to
``data/facemesh_ict_correspondence.json``, which is committed (small data the project computes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from reenact.head_render import HeadPainter
from reenact.landmarks.detection import FaceLandmarker
from reenact.morphable import N_PARAMS, MorphableModel

DATA_FILE = "data/facemesh_ict_correspondence.json"
N_LANDMARKS = 468
RIGHT_EYE_CORNERS = (33, 133)  # the subject's right eye (image left)
LEFT_EYE_CORNERS = (362, 263)


@dataclass(frozen=True)
class Correspondence:
    """Surface points on the ICT mesh, one per landmark.

    tri_vertices: (L, 3) int64 vertex ids; barycentric: (L, 3) float32 weights summing to 1.
    """

    tri_vertices: np.ndarray
    barycentric: np.ndarray

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """The landmark points of meshes. vertices: (..., N, 3) → (..., L, 3) float32."""
        corners = vertices[..., self.tri_vertices, :]  # (..., L, 3, 3)
        return np.einsum("...lkc,lk->...lc", corners, self.barycentric).astype(np.float32)

    def save(self, path: Path, meta: dict) -> None:
        payload = {
            "meta": meta,
            "tri_vertices": self.tri_vertices.tolist(),
            "barycentric": np.round(self.barycentric.astype(np.float64), 6).tolist(),
        }
        path.write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: Path | None = None) -> Correspondence:
        """The committed table (default) or one at ``path``."""
        if path is None:
            text = resources.files("reenact").joinpath(DATA_FILE).read_text()
        else:
            text = Path(path).read_text()
        raw = json.loads(text)
        return cls(
            np.asarray(raw["tri_vertices"], np.int64), np.asarray(raw["barycentric"], np.float32)
        )


def inter_ocular(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (midpoints of the eye corners), in the points' units.

    points: (..., 468, 2 or 3). Returns (...,).
    """
    right = points[..., RIGHT_EYE_CORNERS, :2].mean(axis=-2)
    left = points[..., LEFT_EYE_CORNERS, :2].mean(axis=-2)
    return np.linalg.norm(left - right, axis=-1)


def view_params(yaw_deg: float, pitch_deg: float, size: int, scale: float) -> np.ndarray:
    """(1, 162) parameters of the mean face turned by yaw/pitch, centred in a size² picture."""
    params = np.zeros((1, N_PARAMS), np.float32)
    params[0, 155:158] = np.radians([pitch_deg, yaw_deg, 0.0])
    params[0, 158:161] = [size / 2, size * 0.55, 0.0]
    params[0, 161] = scale
    return params


def _barycentric_2d(p: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentrics of 2D points p: (L, 2) in triangles corners: (L, 3, 2); clamped into them."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    bary = np.clip(np.stack([1 - wb - wc, wb, wc], axis=1), 0.0, None)
    return bary / np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)


def surface_points_under(
    model: MorphableModel,
    painter: HeadPainter,
    landmarker: FaceLandmarker,
    params: np.ndarray,
    size: int,
) -> np.ndarray:
    """Mean-face 3D points (L, 3) under FaceMesh's landmarks in one painted view; NaN if missed.

    params: (1, 162) with identity and expression at zero (the mean face).
    """
    vertices = model.decode(params)[0]
    picture = painter.paint(vertices, size, size)
    found = landmarker(picture.image)
    out = np.full((N_LANDMARKS, 3), np.nan, np.float32)
    if found is None or not found.face_present:
        return out
    xy = found.points[:, :2]
    rows = np.clip(np.rint(xy[:, 1]).astype(int), 0, size - 1)
    cols = np.clip(np.rint(xy[:, 0]).astype(int), 0, size - 1)
    tri_id = picture.triangle_id[rows, cols]
    hit = tri_id >= 0
    tris = picture.triangles[tri_id[hit]]
    bary = _barycentric_2d(xy[hit].astype(np.float64), vertices[tris][:, :, :2].astype(np.float64))
    out[hit] = np.einsum("lkc,lk->lc", model.neutral[tris], bary)
    return out


def closest_surface_points(
    points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, candidates: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest points of a triangle mesh. points: (L, 3); vertices: (N, 3); triangles: (T, 3).

    Returns (triangle row (L,) int64, barycentric (L, 3) float64). Exact among the
    ``candidates`` triangles whose centroids are nearest to each point.
    """
    corners = vertices[triangles].astype(np.float64)  # (T, 3, 3)
    centroids = corners.mean(axis=1)
    best_tri = np.zeros(len(points), np.int64)
    best_bary = np.zeros((len(points), 3))
    for i, p in enumerate(points.astype(np.float64)):
        near = np.argsort(np.linalg.norm(centroids - p, axis=1))[:candidates]
        bary = np.array([_closest_on_triangle(p, corners[t]) for t in near])
        dist = np.linalg.norm(np.einsum("kjc,kj->kc", corners[near], bary) - p, axis=1)
        k = int(np.argmin(dist))
        best_tri[i], best_bary[i] = near[k], bary[k]
    return best_tri, best_bary


def _closest_on_triangle(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentrics of the point of tri: (3, 3) nearest to p: (3,) (Ericson, RTCD 5.1.5)."""
    a, b, c = tri
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return np.array([1.0, 0.0, 0.0])
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return np.array([0.0, 1.0, 0.0])
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        v = d1 / (d1 - d3)
        return np.array([1 - v, v, 0.0])
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return np.array([0.0, 0.0, 1.0])
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        w = d2 / (d2 - d6)
        return np.array([1 - w, 0.0, w])
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return np.array([0.0, 1 - w, w])
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return np.array([1 - v - w, v, w])


def measure(
    model: MorphableModel,
    landmarker: FaceLandmarker,
    views: Sequence[tuple[float, float]],
    size: int = 512,
    scale: float = 14.0,
) -> tuple[Correspondence, dict]:
    """Measure the correspondence over ``views`` (yaw, pitch degrees); also return statistics."""
    painter = HeadPainter(model)
    per_view = np.stack(
        [
            surface_points_under(model, painter, landmarker, view_params(y, p, size, scale), size)
            for y, p in views
        ]
    )  # (V, L, 3)
    seen = np.isfinite(per_view[..., 0])
    if not seen.any(axis=0).all():
        missing = np.flatnonzero(~seen.any(axis=0))
        raise RuntimeError(f"landmarks never seen on the face in any view: {missing.tolist()}")
    median = np.nanmedian(per_view, axis=0)
    spread = np.nanmedian(np.linalg.norm(per_view - median, axis=-1), axis=0)  # cm, per landmark
    face = model.triangles_of("M_Face")
    rows, bary = closest_surface_points(median, model.neutral, face)
    table = Correspondence(face[rows].astype(np.int64), bary.astype(np.float32))
    stats = {
        "views_yaw_pitch_deg": [list(v) for v in views],
        "views_seen_per_landmark_min": int(seen.sum(axis=0).min()),
        "view_spread_cm_median": float(np.median(spread)),
        "view_spread_cm_max": float(spread.max()),
    }
    return table, stats


def reprojection_error(
    model: MorphableModel,
    landmarker: FaceLandmarker,
    table: Correspondence,
    params: np.ndarray,
    size: int = 512,
    painter: HeadPainter | None = None,
) -> float:
    """Mean distance between the table's points and FaceMesh's landmarks on a painted head,
    as a fraction of the inter-ocular distance. params: (1, 162), any identity/expression;
    painter: reuse one across calls (made here when None)."""
    vertices = model.decode(params)[0]
    painter = painter or HeadPainter(model)
    found = landmarker(painter.paint(vertices, size, size).image)
    if found is None:
        raise RuntimeError("no face found on the painted head")
    projected = table.points(vertices)
    errors = np.linalg.norm(projected[:, :2] - found.points[:, :2], axis=1)
    return float(errors.mean() / inter_ocular(found.points))
