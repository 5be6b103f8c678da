"""A plain shaded picture of the ICT head, for tools and tests that need a face to look at.

Skin, sclera, iris, teeth and gums get flat material colours, lit by a light at the camera
(Lambert + ambient). Enough for MediaPipe's detector and FaceMesh to find the face (DESIGN.md §9)
— which is how the landmark ↔ ICT correspondence is measured (:mod:`reenact.correspondence`).
Coordinates: reenact's image convention, pixel centres at integers (``cv2``'s), x right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


IRIS = ("M_IrisLeft", "M_IrisRight")
IRIS_DEPTH_BIAS_CM = 0.1  # enough to show the iris through the sclera shell, not the lids


def to_raster(vertices: np.ndarray) -> np.ndarray:
    """reenact image coordinates → pnccrender's (pixel centres at +0.5). (..., 3) float32."""
    out = np.array(vertices, np.float32, copy=True)
    out[..., :2] += PIXEL_CENTRE
    return out


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals. vertices: (N, 3) float32; triangles: (T, 3) int32.

    Returns (N, 3) float32 (zero for vertices on no triangle).
    """
    v = vertices.astype(np.float64)
    face_normals = np.cross(
        v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]]
    )
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class HeadPicture:
    """A shaded render and what lies under each pixel."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    triangle_id: np.ndarray  # (H, W) int32 index into ``triangles``, -1 for background
    barycentrics: np.ndarray  # (H, W, 3) float32
    triangles: np.ndarray  # (T, 3) int32: the drawn triangles of the model


class HeadPainter:
    """Paints image-space vertex arrays of the ICT model as a shaded head."""

    def __init__(self, model: MorphableModel, ambient: float = 0.35, background: int = 128) -> None:
        drawn = [MATERIAL_NAMES.index(m) for m in MATERIAL_COLOURS]
        mask = np.isin(model.triangle_material, drawn)
        self.triangles = np.ascontiguousarray(model.triangles[mask], np.int32)
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

    def paint(self, vertices: np.ndarray, height: int, width: int) -> HeadPicture:
        """vertices: (N, 3) float32 image pixels (x right, y down, z larger = nearer)."""
        normals = vertex_normals(vertices, self.triangles)
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
