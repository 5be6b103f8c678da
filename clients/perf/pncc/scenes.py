"""Realistic ICT face poses for the benchmark and the preview (model: reenact.morphable)."""

from __future__ import annotations

import numpy as np

from reenact.morphable import (
    EXPR_SLICE,
    ID_SLICE,
    N_PARAMS,
    ROT_SLICE,
    SCALE_SLICE,
    TRANS_SLICE,
    MorphableModel,
)

FACE_FILL = 0.6  # fraction of the image height the face area spans


def face_params(
    model: MorphableModel, batch: int, height: int, width: int, seed: int = 0
) -> np.ndarray:
    """(batch, 162) float32 parameters: random identity, expression and head pose, the face
    area (vertices 0..9408) spanning ~FACE_FILL of the image height, centred. Row 0 is the
    neutral mean face seen from the front."""
    rng = np.random.default_rng(seed)
    face = model.neutral[:9409]
    face_height = float(face[:, 1].max() - face[:, 1].min())
    face_centre_y = float(face[:, 1].max() + face[:, 1].min()) / 2
    scale = FACE_FILL * height / face_height
    params = np.zeros((batch, N_PARAMS), np.float32)
    params[1:, ID_SLICE] = rng.normal(0.0, 0.7, (batch - 1, ID_SLICE.stop - ID_SLICE.start))
    params[1:, EXPR_SLICE] = rng.uniform(0.0, 1.0, (batch - 1, 55)) ** 3
    params[1:, ROT_SLICE] = rng.uniform(-1.0, 1.0, (batch - 1, 3)) * [0.3, 0.5, 0.2]
    params[:, TRANS_SLICE] = [width / 2, height / 2 + scale * face_centre_y, 0.0]
    params[:, SCALE_SLICE] = scale
    return params
