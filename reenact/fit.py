"""Closed-form, differentiable fit of the morphable model to 3D landmarks (PyTorch, TorchScript).

The fit alternates a fixed number of times between

1. pose: a weighted similarity Procrustes (Umeyama) of the current model landmarks onto the
   observed ones (rotation, translation, scale; closed form by one 3x3 SVD), and
2. shape: a regularised linear least-squares solve for identity and expression with the pose
   fixed. Expression weights are kept in [0, 1] by a FIXED number of active-set steps (solve, fix
   the weights outside the box at their bound, release fixed weights whose gradient points into
   the box, re-solve), then clamped.

Landmarks are image pixels (x right, y down, z larger = nearer the camera) as in
:mod:`reenact.morphable`; the model-side points are barycentric points on the ICT mesh.

Objective of the shape step, in model centimetres (``y_l`` the landmark taken back into the model
frame by the current pose, ``x_l(c)`` the model landmark, ``w_l`` weights normalised to sum 1)::

    sum_l w_l |D (y_l - x_l(c))|^2 + identity_prior |id|^2
        + sum_j expression_prior * p_j ex_j^2 + sum_j expression_sparsity * p_j ex_j

``D`` weighs the camera depth axis by ``z_weight``; ``p_j`` is the per-blendshape prior multiplier
of :meth:`FitConfig.expression_multipliers`. The linear term is an L1 penalty (the weights are
non-negative), which favours explaining a deformation with few blendshapes. The multipliers make
the "secondary" blendshapes (cheekRaiser, cheekSquint, mouthDimple, ...) more expensive than the
primary ones they are correlated with, so that a smile goes into mouthSmile and not into
cheekRaiser + mouthDimple (DESIGN.md §9 f).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from reenact.morphable import N_EXPRESSION, N_IDENTITY, N_PARAMS, MorphableModel
from reenact.morphable_torch import rotation_angles

# Blendshapes that are correlated with a primary shape and should only take over what the primary
# one cannot explain (matched by name prefix, both sides).
SECONDARY_EXPRESSIONS = (
    "cheekRaiser",
    "cheekSquint",
    "mouthDimple",
    "mouthStretch",
    "mouthPress",
    "mouthShrugUpper",
    "mouthRollLower",
    "mouthRollUpper",
)
# A tiny ridge (cm^2) on the linearised pose increments of the shape step, so that the solve stays
# defined when the weighting leaves one of them unobserved (z_weight = 0 and the depth translation).
_POSE_RIDGE = 1e-8


@dataclass(frozen=True)
class FitConfig:
    """Settings of :class:`LandmarkFitter`; the defaults here are the project's defaults."""

    n_alternations: int = 4  # pose <-> shape rounds
    n_active_set_steps: int = 4  # solves per shape step that keep expression in [0, 1]
    identity_prior: float = 2e-4  # L2 weight on identity (cm^2 of mean squared residual)
    expression_prior: float = 2e-4  # L2 weight on each expression weight, times its multiplier
    expression_sparsity: float = 1e-3  # L1 weight on each expression weight, times its multiplier
    secondary_expressions: tuple[str, ...] = SECONDARY_EXPRESSIONS
    secondary_multiplier: float = 8.0  # prior multiplier of the secondary blendshapes
    # (name, multiplier) pairs that replace the multiplier of single blendshapes
    expression_multiplier_overrides: tuple[tuple[str, float], ...] = ()
    z_weight: float = 1.0  # weight of the landmark depth in the shape step (0: ignore depth)

    def __post_init__(self) -> None:
        if self.n_alternations < 1 or self.n_active_set_steps < 1:
            raise ValueError("n_alternations and n_active_set_steps must be at least 1")
        priors = (self.identity_prior, self.expression_prior, self.expression_sparsity)
        if min(priors) < 0 or self.secondary_multiplier < 0 or self.z_weight < 0:
            raise ValueError("priors, secondary_multiplier and z_weight must be non-negative")

    def expression_multipliers(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Per-blendshape prior multipliers (len(names),) float32, in the order of ``names``."""
        overrides = dict(self.expression_multiplier_overrides)
        unknown = set(overrides) - set(names)
        if unknown:
            raise ValueError(f"unknown blendshapes in expression_multiplier_overrides: {unknown}")
        mult = np.ones(len(names), np.float32)
        for j, name in enumerate(names):
            if name.startswith(self.secondary_expressions):
                mult[j] = self.secondary_multiplier
            mult[j] = overrides.get(name, mult[j])
        return mult


class FitResult(NamedTuple):
    params: Tensor  # (B, 162) float32, layout of reenact.morphable
    residual: Tensor  # (B, L, 3) float32 pixels: fitted model landmarks minus observed ones


def landmark_bases(
    model: MorphableModel, tri_vertices: np.ndarray, barycentric: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Model landmarks as barycentric combinations of mesh vertices.

    tri_vertices: (L, 3) int; barycentric: (L, 3) float.
    Returns mean (L, 3) float32 centimetres and basis (L, 3, 155) float32: identity columns first,
    then expression, so that ``landmarks = mean + basis @ concat(identity, expression)``.
    """
    tri = np.asarray(tri_vertices, np.int64)
    bary = np.asarray(barycentric, np.float64)[:, :, None]
    if tri.ndim != 2 or tri.shape[1] != 3 or bary.shape[:2] != tri.shape:
        raise ValueError(
            f"tri_vertices and barycentric must both be (L, 3): {tri.shape}, {bary.shape}"
        )
    mean = (model.neutral[tri] * bary).sum(1)
    ident = (model.identity_basis[:, tri] * bary).sum(2)  # (100, L, 3)
    expr = (model.expression_basis[:, tri] * bary).sum(2)  # (55, L, 3)
    basis = np.concatenate([ident, expr], axis=0).transpose(1, 2, 0)
    return mean.astype(np.float32), np.ascontiguousarray(basis, np.float32)


class LandmarkFitter(nn.Module):
    """Fits parameters (B, 162) to landmarks (B, L, 3) in closed form; see the module docstring.

    tri_vertices: (L, 3) int64 and barycentric: (L, 3) float32 name the model point of each
    landmark. The landmark bases are computed once here and held as buffers.
    """

    def __init__(
        self,
        model: MorphableModel,
        tri_vertices: np.ndarray,
        barycentric: np.ndarray,
        config: FitConfig | None = None,
    ) -> None:
        super().__init__()
        config = config or FitConfig()
        if model.n_identity != N_IDENTITY or model.n_expression != N_EXPRESSION:
            raise ValueError("the fit needs the 100 identity + 55 expression layout")
        mean, basis = landmark_bases(model, tri_vertices, barycentric)
        self.n_landmarks = int(mean.shape[0])
        self.n_params = N_PARAMS
        self.n_alternations = int(config.n_alternations)
        self.n_active_set_steps = int(config.n_active_set_steps)
        self.z_weight = float(config.z_weight)
        mult = torch.from_numpy(config.expression_multipliers(model.expression_names))
        l2 = torch.cat(
            [torch.full((N_IDENTITY,), config.identity_prior), config.expression_prior * mult]
        )
        l2 = torch.cat([l2, torch.full((7,), _POSE_RIDGE)])
        l1 = torch.cat([torch.zeros(N_IDENTITY), config.expression_sparsity * mult, torch.zeros(7)])
        basis_t = torch.from_numpy(basis).reshape(-1, basis.shape[2]).t().contiguous()
        self.register_buffer("mean", torch.from_numpy(mean))  # (L, 3)
        self.register_buffer("basis_t", basis_t)  # (K, 3L): A^T, columns landmark-major
        uniform = torch.full((1, self.n_landmarks), 1.0 / self.n_landmarks)
        self.register_buffer("uniform_gram", self._data_gram(uniform)[0])  # (K, K)
        self.register_buffer("l2_prior", l2.to(torch.float32))  # (K + 7,)
        self.register_buffer("l1_prior", l1.to(torch.float32))  # (K + 7,)
        self.register_buffer("flip", torch.tensor([1.0, -1.0, 1.0]))  # image y down <-> model y up
        # unknowns of the shape step: identity, expression, then 7 pose increments
        bounded = torch.zeros(N_IDENTITY + N_EXPRESSION + 7, dtype=torch.bool)
        bounded[N_IDENTITY : N_IDENTITY + N_EXPRESSION] = True
        self.register_buffer("bounded", bounded)

    def model_landmarks(self, coeffs: Tensor) -> Tensor:
        """coeffs: (B, 155) identity then expression. Returns (B, L, 3) model centimetres."""
        offsets = torch.matmul(coeffs, self.basis_t).reshape(-1, self.n_landmarks, 3)
        return self.mean + offsets

    def forward(self, landmarks: Tensor, weights: Tensor | None = None) -> FitResult:
        """landmarks: (B, L, 3) float32 image pixels; weights: optional (L,) or (B, L) >= 0."""
        batch = landmarks.shape[0]
        torch._assert(landmarks.shape[1] == self.n_landmarks, "landmarks must be (B, L, 3)")
        target = landmarks * self.flip  # right-handed: x right, y up, z towards the camera
        if weights is None:
            w = torch.full(
                (batch, self.n_landmarks),
                1.0 / self.n_landmarks,
                dtype=target.dtype,
                device=target.device,
            )
            gram = self.uniform_gram.expand(batch, -1, -1)
        else:
            w = weights.to(target.dtype).expand(batch, self.n_landmarks)
            w = w / w.sum(dim=1, keepdim=True)
            gram = self._data_gram(w)
        points = self.mean.expand(batch, self.n_landmarks, 3)
        coeffs = torch.zeros(batch, self.basis_t.shape[0], dtype=target.dtype, device=target.device)
        rotation, translation, scale = _similarity(points, target, w)
        for _ in range(self.n_alternations):
            coeffs = self._solve_shape(target, w, gram, points, rotation, translation, scale)
            points = self.model_landmarks(coeffs)
            rotation, translation, scale = _similarity(points, target, w)
        fitted = scale[:, None, None] * torch.matmul(points, rotation.transpose(1, 2))
        fitted = fitted + translation[:, None, :]
        params = torch.cat(
            [coeffs, rotation_angles(rotation), translation * self.flip, scale[:, None]], dim=1
        )
        torch._assert(params.shape[1] == self.n_params, "params must follow reenact.morphable")
        return FitResult(params, (fitted - target) * self.flip)

    def _data_gram(self, w: Tensor) -> Tensor:
        """sum_l w_l A_l^T A_l for weights w (B, L): (B, K, K)."""
        w3 = w.repeat_interleave(3, dim=1)  # (B, 3L), the order of basis_t's columns
        return torch.matmul(self.basis_t * w3[:, None, :], self.basis_t.t())

    def _solve_shape(
        self,
        target: Tensor,
        w: Tensor,
        gram: Tensor,
        points: Tensor,
        rotation: Tensor,
        translation: Tensor,
        scale: Tensor,
    ) -> Tensor:
        """Identity and expression (B, K) for the current pose; expression kept in [0, 1].

        gram: (B, K, K) from :meth:`_data_gram`. The solve also carries a linearised pose update
        (scale, rotation, translation increments about the current model landmarks ``points``
        (B, L, 3)) as unregularised unknowns, which are then dropped: the shape takes only what
        the pose cannot explain, and the alternation converges in a few rounds even where identity
        and pose are correlated.
        """
        batch = target.shape[0]
        k = self.basis_t.shape[0]
        local = torch.matmul(target - translation[:, None, :], rotation) / scale[:, None, None]
        resid = (local - self.mean).reshape(batch, -1, 1)  # (B, 3L, 1) model frame, centimetres
        pose_cols = _pose_jacobian(points).reshape(batch, -1, 7)  # (B, 3L, 7)
        w3 = w.repeat_interleave(3, dim=1)[:, :, None]  # (B, 3L, 1)
        wp = pose_cols * w3
        cross = torch.matmul(self.basis_t, wp)  # (B, K, 7)
        normal = torch.cat(
            [
                torch.cat([gram, cross], dim=2),
                torch.cat([cross.transpose(1, 2), torch.matmul(wp.transpose(1, 2), pose_cols)], 2),
            ],
            dim=1,
        ) + torch.diag_embed(self.l2_prior.expand(batch, k + 7))
        rhs = (
            torch.cat(
                [
                    torch.matmul(self.basis_t, w3 * resid)[:, :, 0],
                    torch.matmul(wp.transpose(1, 2), resid)[:, :, 0],
                ],
                dim=1,
            )
            - 0.5 * self.l1_prior
        )
        if self.z_weight != 1.0:
            # D^2 = I + (z_weight - 1) r r^T, r the camera depth axis in the model frame
            jacobian = torch.cat([self.basis_t.t().expand(batch, -1, -1), pose_cols], dim=2)
            depth_axis = rotation[:, None, 2:3, :]  # (B, 1, 1, 3)
            along = torch.matmul(depth_axis, jacobian.reshape(batch, -1, 3, k + 7))[:, :, 0]
            depth_resid = torch.matmul(depth_axis, resid.reshape(batch, -1, 3, 1))[:, :, 0]
            weighted = along * w[:, :, None] * (self.z_weight - 1.0)  # (B, L, K + 7)
            normal = normal + torch.matmul(weighted.transpose(1, 2), along)
            rhs = rhs + torch.matmul(weighted.transpose(1, 2), depth_resid)[:, :, 0]
        return _box_solve(normal, rhs, self.bounded, self.n_active_set_steps)[:, :k]


def _pose_jacobian(points: Tensor) -> Tensor:
    """d(points) / d(scale, rotation, translation increments): (B, L, 3) -> (B, L, 3, 7).

    ``(1 + ds) (I + [omega]_x) x + dt ~ x + ds x - [x]_x omega + dt`` to first order.
    """
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    rows = [
        torch.stack([x, zero, z, -y, one, zero, zero], dim=-1),
        torch.stack([y, -z, zero, x, zero, one, zero], dim=-1),
        torch.stack([z, y, -x, zero, zero, zero, one], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def _similarity(source: Tensor, target: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted Umeyama: ``target ~ scale * rotation @ source + translation``.

    source, target: (B, L, 3); w: (B, L) summing to 1.
    Returns rotation (B, 3, 3), translation (B, 3), scale (B,).
    """
    wk = w[:, :, None]
    mu_s = (wk * source).sum(1)
    mu_t = (wk * target).sum(1)
    src = source - mu_s[:, None, :]
    tgt = target - mu_t[:, None, :]
    cov = torch.matmul((wk * tgt).transpose(1, 2), src)  # (B, 3, 3)
    u, sing, vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(torch.matmul(u, vh)))
    fix = torch.cat([torch.ones_like(sing[:, :2]), sign[:, None]], dim=1)  # no reflection
    rotation = torch.matmul(u * fix[:, None, :], vh)
    var_s = (wk * src * src).sum(dim=(1, 2))
    scale = (sing * fix).sum(1) / var_s
    translation = mu_t - scale[:, None] * torch.matmul(rotation, mu_s[:, :, None])[:, :, 0]
    return rotation, translation, scale


def _box_solve(normal: Tensor, rhs: Tensor, bounded: Tensor, n_steps: int) -> Tensor:
    """Minimise ``c^T normal c - 2 rhs^T c`` with ``c[:, bounded]`` in [0, 1].

    normal: (B, K, K) symmetric positive definite; rhs: (B, K); bounded: (K,) bool. A fixed number
    of active-set steps (the fixed set starts empty), each an equality-constrained Cholesky solve
    in float64; the result is clamped. Returns (B, K), same dtype as ``rhs``.
    """
    dtype = rhs.dtype
    normal, rhs = normal.double(), rhs.double()
    at_lower = torch.zeros(rhs.shape, dtype=torch.bool, device=rhs.device)
    at_upper = torch.zeros_like(at_lower)
    eye = torch.eye(rhs.shape[1], dtype=normal.dtype, device=normal.device)
    coeffs = rhs
    for step in range(n_steps):
        free = (~(at_lower | at_upper)).to(normal.dtype)  # (B, K)
        fixed_value = at_upper.to(normal.dtype)  # 1 at the upper bound, 0 elsewhere
        system = normal * free[:, :, None] * free[:, None, :] + eye * (1.0 - free)[:, None, :]
        moved = rhs - torch.matmul(normal, fixed_value[:, :, None])[:, :, 0]
        # Cholesky, not torch.linalg.solve: batched LU gives wrong pivots with more than one
        # thread in the torch 2.13 CPU build (MKL "DLASWP" errors)
        factor = torch.linalg.cholesky(system)
        coeffs = torch.cholesky_solve((free * moved + fixed_value)[:, :, None], factor)[:, :, 0]
        if step + 1 < n_steps:
            grad = torch.matmul(normal, coeffs[:, :, None])[:, :, 0] - rhs
            at_lower = bounded & (((free > 0) & (coeffs < 0)) | (at_lower & (grad >= 0)))
            at_upper = bounded & (((free > 0) & (coeffs > 1)) | (at_upper & (grad <= 0)))
    clamped = torch.where(bounded, coeffs.clamp(0.0, 1.0), coeffs)
    return clamped.to(dtype)
