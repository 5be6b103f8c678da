"""The morphable model decoder in PyTorch (TorchScript-scriptable).

Same parameter layout and pose convention as :mod:`reenact.morphable` (its module docstring is the
reference): ``p_img = s * F @ R @ v + t``, ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``,
``F = diag(1, -1, 1)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from reenact.morphable import (
    EXPR_SLICE,
    ID_SLICE,
    N_EXPRESSION,
    N_IDENTITY,
    N_PARAMS,
    ROT_SLICE,
    SCALE_SLICE,
    TRANS_SLICE,
    MorphableModel,
)


def rotation_matrix(angles: Tensor) -> Tensor:
    """``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``.

    angles: (B, 3) pitch, yaw, roll in radians. Returns (B, 3, 3), same dtype.
    """
    cx, sx = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
    cy, sy = torch.cos(angles[:, 1]), torch.sin(angles[:, 1])
    cz, sz = torch.cos(angles[:, 2]), torch.sin(angles[:, 2])
    rows = [
        torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], dim=-1),
        torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], dim=-1),
        torch.stack([-sy, cy * sx, cy * cx], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def rotation_angles(rotation: Tensor) -> Tensor:
    """Inverse of :func:`rotation_matrix` (yaw in [-pi/2, pi/2]).

    rotation: (B, 3, 3). Returns (B, 3) pitch, yaw, roll in radians.
    """
    r21, r22 = rotation[:, 2, 1], rotation[:, 2, 2]
    pitch = torch.atan2(r21, r22)
    yaw = torch.atan2(-rotation[:, 2, 0], torch.sqrt(r21 * r21 + r22 * r22))
    roll = torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0])
    return torch.stack([pitch, yaw, roll], dim=-1)


def project(vertices: Tensor, rotation: Tensor, translation: Tensor, scale: Tensor) -> Tensor:
    """Model-space centimetres to image pixels: ``p = scale * F @ rotation @ v + translation``.

    vertices: (B, N, 3); rotation: (B, 3, 3); translation: (B, 3) pixels; scale: (B,) pixels per
    centimetre. Returns (B, N, 3) image pixels (x right, y down, z larger = nearer).
    """
    flip = torch.tensor([1.0, -1.0, 1.0], dtype=vertices.dtype, device=vertices.device)
    rotated = torch.matmul(vertices, rotation.transpose(1, 2))
    return scale[:, None, None] * rotated * flip + translation[:, None, :]


class MorphableDecoder(nn.Module):
    """Parameters (B, 162) to image-space vertices (B, N, 3), the bases held as float32 buffers.

    ``vertex_ids`` (M,) restricts the decoder to those vertices (N = M), e.g. landmark or face
    vertices only, which makes it proportionally smaller and faster.
    """

    def __init__(self, model: MorphableModel, vertex_ids: np.ndarray | None = None) -> None:
        super().__init__()
        if model.n_identity != N_IDENTITY or model.n_expression != N_EXPRESSION:
            raise ValueError(
                f"the parameter layout needs {N_IDENTITY} identity and {N_EXPRESSION} expression "
                f"shapes, the model has {model.n_identity} and {model.n_expression}"
            )
        neutral, id_basis, ex_basis = model.neutral, model.identity_basis, model.expression_basis
        if vertex_ids is not None:
            ids = np.asarray(vertex_ids, np.int64)
            neutral, id_basis, ex_basis = neutral[ids], id_basis[:, ids], ex_basis[:, ids]
        self.n_vertices = int(neutral.shape[0])
        # the parameter layout as plain ints (TorchScript knows neither slices nor module globals)
        self.n_params = N_PARAMS
        self.id_range = (ID_SLICE.start, ID_SLICE.stop)
        self.expr_range = (EXPR_SLICE.start, EXPR_SLICE.stop)
        self.rot_range = (ROT_SLICE.start, ROT_SLICE.stop)
        self.trans_range = (TRANS_SLICE.start, TRANS_SLICE.stop)
        self.scale_index = SCALE_SLICE.start
        self.register_buffer("neutral", torch.from_numpy(np.ascontiguousarray(neutral)))
        self.register_buffer(
            "identity_basis",
            torch.from_numpy(np.ascontiguousarray(id_basis.reshape(N_IDENTITY, -1))),
        )
        self.register_buffer(
            "expression_basis",
            torch.from_numpy(np.ascontiguousarray(ex_basis.reshape(N_EXPRESSION, -1))),
        )

    def shape(self, identity: Tensor, expression: Tensor) -> Tensor:
        """identity: (B, 100), expression: (B, 55). Returns (B, N, 3) model-space centimetres."""
        offsets = torch.matmul(identity, self.identity_basis) + torch.matmul(
            expression, self.expression_basis
        )
        return self.neutral + offsets.reshape(-1, self.n_vertices, 3)

    def forward(self, params: Tensor) -> Tensor:
        """params: (B, 162) float32. Returns (B, N, 3) float32 image pixels."""
        torch._assert(params.shape[1] == self.n_params, "params must be (B, 162)")
        identity = params[:, self.id_range[0] : self.id_range[1]]
        expression = params[:, self.expr_range[0] : self.expr_range[1]]
        rotation = rotation_matrix(params[:, self.rot_range[0] : self.rot_range[1]])
        translation = params[:, self.trans_range[0] : self.trans_range[1]]
        verts = self.shape(identity, expression)
        return project(verts, rotation, translation, params[:, self.scale_index])
