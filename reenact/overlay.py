"""Pictures for people: the fitted model drawn over the photo."""

from __future__ import annotations

import numpy as np

from reenact.head_render import to_raster
from reenact.morphable import MorphableModel
from reenact.pncc import PnccRenderer


def pncc_overlay(
    photo: np.ndarray,
    params: np.ndarray,
    model: MorphableModel,
    alpha: float = 0.5,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """The PNCC of ``params`` blended over ``photo``.

    photo: (H, W, 3) uint8 RGB; params: (162,) float32 in the photo's pixels;
    landmarks: optional (L, 2+) photo pixels drawn as small dots. Returns (H, W, 3) uint8.
    """
    height, width = photo.shape[:2]
    vertices = model.decode(np.asarray(params, np.float32)[None])[0]
    rendered = PnccRenderer.from_model(model).render(to_raster(vertices), height, width)
    covered = (rendered.triangle_id >= 0)[..., None]
    pncc = rendered.image * 255.0
    out = np.where(covered, (1 - alpha) * photo + alpha * pncc, photo).astype(np.uint8)
    if landmarks is not None:
        pts = np.rint(np.asarray(landmarks)[:, :2]).astype(int)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
        out[pts[inside, 1], pts[inside, 0]] = (255, 255, 0)
    return out
