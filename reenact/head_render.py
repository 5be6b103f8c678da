"""A plain shaded picture of the ICT head, for tools and tests that need a face to look at.

Skin, sclera, iris, teeth and gums get flat material colours, lit by a light at the camera
(Lambert + ambient). With ``features=True`` the brows and lips are painted on the skin as well
(bands along the ICT's 68 brow and outer-lip landmarks on the neutral face), so that a landmark
detector sees where they are, as it would on a photo. Enough for MediaPipe's detector and
FaceMesh to find the face — which is how the landmark ↔ ICT correspondence is
measured (:mod:`reenact.correspondence`).
Coordinates: reenact's image convention, pixel centres at integers (``cv2``'s), x right, y down.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch

import pnccrender
from reenact.morphable import MATERIAL_NAMES, MorphableModel

PIXEL_CENTRE = 0.5  # pnccrender samples pixel (i, j) at (j + 0.5, i + 0.5)

MATERIAL_COLOURS = {
    "M_Face": (205, 160, 135),
    "M_BackHead": (205, 160, 135),
    "M_GumsTongue": (150, 65, 70),
    "M_Teeth": (235, 230, 215),
    "M_ScleraLeft": (235, 235, 230),
    "M_ScleraRight": (235, 235, 230),
    "M_IrisLeft": (70, 50, 40),
    "M_IrisRight": (70, 50, 40),
}
"""Drawn materials; the thin layers (lacrimal fluid, eye blend, occlusion, lashes) are left out."""


BROW_RGB = (95, 70, 55)
LIP_RGB = (180, 90, 90)
BROW_HALF_WIDTH_CM = 0.3  # skin within this distance of a brow line is painted brow
FEATURE_DEPTH_CM = 1.0  # only skin in front of (the deepest 68 landmark - this) is painted
RIGHT_BROW, LEFT_BROW, OUTER_LIP = slice(17, 22), slice(22, 27), slice(48, 60)  # 68-point indices

IRIS = ("M_IrisLeft", "M_IrisRight")
IRIS_DEPTH_BIAS_CM = 0.1  # enough to show the iris through the sclera shell, not the lids


def to_raster(vertices: np.ndarray) -> np.ndarray:
    """reenact image coordinates → pnccrender's (pixel centres at +0.5). (..., 3) float32."""
    out = np.array(vertices, np.float32, copy=True)
    out[..., :2] += PIXEL_CENTRE
    return out


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of points (P, 2) to the polyline through line (L, 2). Returns (P,) float64."""
    best = np.full(len(points), np.inf)
    for a, b in itertools.pairwise(line):
        ab = b - a
        t = np.clip((points - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best


def vertex_normals_torch(
    v: torch.Tensor, corners: list[torch.Tensor], incidence: torch.Tensor | None = None
) -> torch.Tensor:
    """Area-weighted unit vertex normals (N, 3) float32 of vertices v: (N, 3) float32; corners:
    the three columns of the (T, 3) triangles as int64 tensors (zero on no triangle).
    incidence: their :func:`corner_incidence`, for meshes whose normals are computed often
    (one sparse product instead of three scatters; the sums differ by float round-off)."""
    v0 = v.index_select(0, corners[0])
    face = torch.linalg.cross(
        v.index_select(0, corners[1]) - v0, v.index_select(0, corners[2]) - v0
    )
    if incidence is not None:
        normals = incidence @ face
    else:
        normals = torch.zeros_like(v)
        for column in corners:
            normals.index_add_(0, column, face)
    return torch.nn.functional.normalize(normals, dim=1, eps=1e-12)


def corner_incidence(corners: list[torch.Tensor], n_vertices: int) -> torch.Tensor:
    """(n_vertices, T) float32 sparse CSR matrix of the triangles whose three corners are
    ``corners`` (int64 tensors (T,)): entry (i, t) counts how often vertex i is a corner of
    triangle t, so that its product with per-triangle values (T, D) sums them per vertex."""
    triangles = torch.arange(corners[0].shape[0]).repeat(len(corners))
    index = torch.stack([torch.cat(corners), triangles])
    ones = torch.ones(index.shape[1], dtype=torch.float32)
    size = (n_vertices, corners[0].shape[0])
    with warnings.catch_warnings():  # torch calls its sparse CSR support a beta
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(index, ones, size, check_invariants=True)
        return coo.coalesce().to_sparse_csr()


@dataclass(frozen=True)
class HeadPicture:
    """A shaded render and what lies under each pixel."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    triangle_id: np.ndarray  # (H, W) int32 index into ``triangles``, -1 for background
    barycentrics: np.ndarray  # (H, W, 3) float32
    triangles: np.ndarray  # (T, 3) int32: the drawn triangles of the model


class HeadPainter:
    """Paints image-space vertex arrays of the ICT model as a shaded head."""

    def __init__(
        self,
        model: MorphableModel,
        ambient: float = 0.35,
        background: int = 128,
        features: bool = False,
    ) -> None:
        drawn = [MATERIAL_NAMES.index(m) for m in MATERIAL_COLOURS]
        mask = np.isin(model.triangle_material, drawn)
        self.triangles = np.ascontiguousarray(model.triangles[mask], np.int32)
        self._corners = [torch.from_numpy(c.astype(np.int64)) for c in self.triangles.T]
        colours = np.zeros((len(MATERIAL_NAMES), 3), np.float32)
        for name, rgb in MATERIAL_COLOURS.items():
            colours[MATERIAL_NAMES.index(name)] = rgb
        # Each vertex takes the colour of a drawn triangle it belongs to (materials don't share
        # vertices in ICT, except along seams where either colour is fine).
        self.vertex_colour = np.zeros((model.n_vertices, 3), np.float32)
        for k in range(3):
            self.vertex_colour[self.triangles[:, k]] = colours[model.triangle_material[mask]]
        # The ICT sclera is a closed shell around the iris: draw the iris in front of it.
        iris = np.isin(model.triangle_material, [MATERIAL_NAMES.index(m) for m in IRIS])
        self.iris_vertices = np.unique(model.triangles[iris])
        self.neutral_span = float(np.linalg.norm(np.ptp(model.neutral, axis=0)))
        self.ambient = ambient
        self.background = background
        if features:
            self._paint_features(model)

    def _paint_features(self, model: MorphableModel) -> None:
        """Colour the brow and lip vertices of the skin (neutral face, seen from the front)."""
        neutral = model.neutral.astype(np.float64)
        marks = neutral[model.landmarks_68]
        skin = np.unique(model.triangles_of("M_Face"))
        skin = skin[neutral[skin, 2] > marks[:, 2].min() - FEATURE_DEPTH_CM]
        xy = neutral[skin, :2]
        for brow in (RIGHT_BROW, LEFT_BROW):
            near = _distance_to_polyline(xy, marks[brow, :2]) < BROW_HALF_WIDTH_CM
            self.vertex_colour[skin[near]] = BROW_RGB
        outline = marks[OUTER_LIP, :2].astype(np.float32)
        lips = [cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0 for x, y in xy]
        self.vertex_colour[skin[np.array(lips)]] = LIP_RGB

    def paint(self, vertices: np.ndarray, height: int, width: int) -> HeadPicture:
        """vertices: (N, 3) float32 image pixels (x right, y down, z larger = nearer)."""
        points = torch.from_numpy(np.ascontiguousarray(vertices, np.float32))
        normals = vertex_normals_torch(points, self._corners).numpy()
        vertices = np.array(vertices, np.float32, copy=True)
        pixels_per_cm = float(np.linalg.norm(np.ptp(vertices, axis=0))) / self.neutral_span
        vertices[self.iris_vertices, 2] += IRIS_DEPTH_BIAS_CM * pixels_per_cm
        light = np.abs(normals[:, 2:3])  # light at the camera, either winding
        shade = self.ambient + (1.0 - self.ambient) * light
        result = pnccrender.render(
            to_raster(vertices),
            self.triangles,
            self.vertex_colour * shade,
            height,
            width,
            background=float(self.background),
            return_barycentrics=True,
        )
        image = np.clip(np.rint(result.image), 0, 255).astype(np.uint8)
        return HeadPicture(image, result.triangle_id, result.barycentrics, self.triangles)
