"""PNCC images of the ICT face model (Projected Normalized Coordinate Code, Zhu et al. 3DDFA).

The NCC of a vertex is its position on the neutral ICT mesh normalised to [0, 1] per axis
(x: right of the face, y: up, z: towards the camera), with the bounding box of the **face area**
(vertices 0..9408, the ``M_Face`` triangles) as the unit box, so the rendered face spans the
full colour range; the few vertices outside that box (back of the head, neck, inner mouth) are
clipped to [0, 1]. The PNCC of a posed mesh is that code used as vertex colours and rendered
with a z-buffer (``pnccrender``): each pixel shows which point of the mean face lands there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

import pnccrender
from reenact.morphable import MorphableModel

FACE_VERTEX_COUNT = 9409  # the ICT face area: vertices 0..9408

Region = Literal["face", "head"]


def ncc(model: MorphableModel) -> np.ndarray:
    """The normalised coordinate code of every model vertex: (N, 3) float32 in [0, 1]."""
    face = model.neutral[:FACE_VERTEX_COUNT].astype(np.float64)
    lo, hi = face.min(axis=0), face.max(axis=0)
    code = (model.neutral.astype(np.float64) - lo) / (hi - lo)
    return np.clip(code, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class PnccRenderer:
    """Renders PNCC images of vertex arrays of one model topology.

    colors: (N, 3) float32 NCC per vertex; triangles: (T, 3) int32 drawn.
    """

    colors: np.ndarray
    triangles: np.ndarray

    @classmethod
    def from_model(cls, model: MorphableModel, region: Region = "face") -> PnccRenderer:
        """``region``: "face" draws the ``M_Face`` triangles (18,460), "head" every triangle
        (eyes, teeth and mouth interior included)."""
        if region == "face":
            triangles = model.triangles_of("M_Face")
        elif region == "head":
            triangles = model.triangles
        else:
            raise ValueError(f"region must be 'face' or 'head', got {region!r}")
        return cls(colors=ncc(model), triangles=np.ascontiguousarray(triangles, np.int32))

    def render(
        self,
        vertices: np.ndarray,
        height: int,
        width: int,
        *,
        num_threads: int | None = None,
    ) -> pnccrender.RenderResult:
        """PNCC of image-space vertices (e.g. ``MorphableModel.decode``).

        vertices: (N, 3) or (B, N, 3) float32 pixels (x right, y down, pixel centres at
        integer + 0.5, z larger = nearer). Returns a :class:`pnccrender.RenderResult`: image
        (B, H, W, 3) float32 PNCC, 0 (black) where no face; depth (B, H, W) float32;
        triangle_id (B, H, W) int32, -1 where no face (``triangle_id >= 0`` is the face
        mask); no leading B for (N, 3) vertices.
        """
        return pnccrender.render(
            vertices, self.triangles, self.colors, height, width, num_threads=num_threads
        )
