"""The ICT-FaceKit linear morphable model (format: docs/assets.md).

Parameter vector layout (P = 162, float32), shared by every part of the project:

=========  ===========  ================================================================
slice      size         meaning
=========  ===========  ================================================================
0:100      identity     identity weights, units of standard deviations
100:155    expression   ARKit-style blendshape weights in [0, 1], order ``expression_names``
155:158    rotation     pitch (x), yaw (y), roll (z) in radians
158:161    translation  tx, ty, tz in image pixels
161:162    scale        pixels per centimetre
=========  ===========  ================================================================

Pose convention (one source: :func:`rotation_matrix` and :func:`project`):

- ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``, each a right-handed rotation about the model axis
  (+x towards the subject's left, +y up, +z out of the face). Positive pitch turns the nose down,
  positive yaw turns it towards the subject's left (image right), positive roll turns +x towards +y.
- image pixels: ``x_img = s * (R v)_x + tx`` (x right), ``y_img = -s * (R v)_y + ty`` (y DOWN),
  ``z_img = s * (R v)_z + tz`` (larger z = nearer the camera), ``v`` in centimetres.
  Written as a matrix: ``p_img = s * F @ R @ v + t`` with ``F = diag(1, -1, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reenact.assets import ict_model_path

FLIP_Y = np.array([1.0, -1.0, 1.0], np.float32)  # F: model (+y up) to image (+y down) axes

N_IDENTITY = 100
N_EXPRESSION = 55
ID_SLICE = slice(0, 100)
EXPR_SLICE = slice(100, 155)
ROT_SLICE = slice(155, 158)
TRANS_SLICE = slice(158, 161)
SCALE_SLICE = slice(161, 162)
N_PARAMS = 162

# The OBJ ``usemtl`` groups of the ICT model, in ``triangle_material`` order
# (docs/assets.md). Older converted copies store the expression names under ``material_names``
# by mistake, so the documented list is the one source for these names.
MATERIAL_NAMES = (
    "M_Face",
    "M_BackHead",
    "M_GumsTongue",
    "M_Teeth",
    "M_ScleraLeft",
    "M_IrisLeft",
    "M_ScleraRight",
    "M_IrisRight",
    "M_LacrimalFluid",
    "M_EyeBlend",
    "M_EyeOcclusion",
    "M_EyeLashes",
)


@dataclass(frozen=True)
class MorphableModel:
    """The arrays of the light ICT face model (shapes as in the npz)."""

    neutral: np.ndarray  # (N, 3) float32, centimetres, +y up, +z towards the camera
    identity_basis: np.ndarray  # (100, N, 3) float32
    expression_basis: np.ndarray  # (55, N, 3) float32
    expression_names: tuple[str, ...]
    triangles: np.ndarray  # (T, 3) int32
    triangle_material: np.ndarray  # (T,) int8, index into MATERIAL_NAMES
    landmarks_68: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # (68,) int32
    fitting_vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    rigid_vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @classmethod
    def load(cls, path: str | Path | None = None) -> MorphableModel:
        """Load ``ict_facekit.npz`` (default: :func:`reenact.assets.ict_model_path`)."""
        with np.load(path or ict_model_path(), allow_pickle=False) as z:
            return cls(
                neutral=z["neutral"].astype(np.float32),
                identity_basis=z["identity_basis"].astype(np.float32),
                expression_basis=z["expression_basis"].astype(np.float32),
                expression_names=tuple(str(n) for n in z["expression_names"]),
                triangles=z["triangles"].astype(np.int32),
                triangle_material=z["triangle_material"].astype(np.int8),
                landmarks_68=z["landmarks_68"].astype(np.int32),
                fitting_vertices=z["fitting_vertices"].astype(np.int32),
                rigid_vertices=z["rigid_vertices"].astype(np.int32),
            )

    def triangles_of(self, *materials: str) -> np.ndarray:
        """The triangles (T', 3) int32 whose material is one of ``materials`` (MATERIAL_NAMES)."""
        ids = [MATERIAL_NAMES.index(m) for m in materials]
        return self.triangles[np.isin(self.triangle_material, ids)]

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[0])

    def shape(
        self,
        identity: np.ndarray,
        expression: np.ndarray,
        vertex_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Model-space vertices.

        identity: (B, 100) or (100,) float32; expression: (B, 55) or (55,) float32;
        vertex_ids: optional (M,) integer ids to evaluate only those vertices.
        Returns (B, N, 3) or (N, 3) float32 in centimetres (N = M when vertex_ids is given).
        """
        ident = np.asarray(identity, np.float32)
        expr = np.asarray(expression, np.float32)
        single = ident.ndim == 1
        ident, expr = np.atleast_2d(ident), np.atleast_2d(expr)
        neutral, id_basis, ex_basis = self.neutral, self.identity_basis, self.expression_basis
        if vertex_ids is not None:
            ids = np.asarray(vertex_ids)
            neutral, id_basis, ex_basis = neutral[ids], id_basis[:, ids], ex_basis[:, ids]
        n = neutral.shape[0]
        verts = (
            neutral.reshape(1, -1)
            + ident @ id_basis.reshape(id_basis.shape[0], -1)
            + expr @ ex_basis.reshape(ex_basis.shape[0], -1)
        ).reshape(-1, n, 3)
        return verts[0] if single else verts

    def decode(self, params: np.ndarray, vertex_ids: np.ndarray | None = None) -> np.ndarray:
        """Image-space vertices of parameter vectors (layout in the module docstring).

        params: (B, 162) float32; vertex_ids: optional (M,) integer ids to decode only those.
        Returns (B, N, 3) float32 image pixels (x right, y down, z larger = nearer).
        """
        params = np.asarray(params, np.float32)
        if params.ndim != 2 or params.shape[1] != N_PARAMS:
            raise ValueError(f"params must be (B, {N_PARAMS}), got {params.shape}")
        verts = self.shape(params[:, ID_SLICE], params[:, EXPR_SLICE], vertex_ids)
        rot = params[:, ROT_SLICE]
        rotation = rotation_matrix(rot[:, 0], rot[:, 1], rot[:, 2])
        return project(verts, rotation, params[:, TRANS_SLICE], params[:, SCALE_SLICE][:, 0])


def rotation_matrix(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``.

    pitch, yaw, roll: radians, scalars or arrays of one broadcast shape S.
    Returns S + (3, 3) float32.
    """
    pitch, yaw, roll = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (pitch, yaw, roll)))
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cz, sz = np.cos(roll), np.sin(roll)
    rows = (
        (cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx),
        (sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx),
        (-sy, cy * sx, cy * cx),
    )
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2).astype(np.float32)


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_matrix` (yaw in [-pi/2, pi/2]).

    rotation: (..., 3, 3). Returns (..., 3) float32 pitch, yaw, roll in radians.
    """
    r = np.asarray(rotation, np.float64)
    pitch = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    yaw = np.arctan2(-r[..., 2, 0], np.hypot(r[..., 2, 1], r[..., 2, 2]))
    roll = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    return np.stack([pitch, yaw, roll], axis=-1).astype(np.float32)


def project(
    vertices: np.ndarray, rotation: np.ndarray, translation: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Model-space centimetres to image pixels: ``p = scale * F @ rotation @ v + translation``.

    vertices: (B, N, 3) or (N, 3) float32; rotation: (B, 3, 3) or (3, 3);
    translation: (B, 3) or (3,) pixels; scale: (B,) or scalar pixels per centimetre.
    Returns (B, N, 3) float32, or (N, 3) when every input is unbatched.
    """
    verts = np.asarray(vertices, np.float32)
    rot = np.asarray(rotation, np.float32)
    trans = np.asarray(translation, np.float32)
    scale = np.asarray(scale, np.float32)
    single = verts.ndim == 2 and rot.ndim == 2 and trans.ndim == 1 and scale.ndim == 0
    verts = verts if verts.ndim == 3 else verts[None]
    rot = rot if rot.ndim == 3 else rot[None]
    trans = trans if trans.ndim == 2 else trans[None]
    scale = scale.reshape(-1, 1, 1)
    out = scale * np.einsum("bij,bnj->bni", rot, verts) * FLIP_Y + trans[:, None, :]
    return out[0] if single else out
