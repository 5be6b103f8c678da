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
cheekRaiser + mouthDimple, and replacing the expression would never remove the smile.

Numerics. Every landmark input gives finite parameters; nothing raises from linear algebra:

- a non-finite landmark (NaN, inf) is a zero-weight point, and so are non-finite or negative
  weights; a row without a usable point, or whose usable points are all equal to float32
  resolution, gets the mean face, unrotated, one pixel per centimetre, at their centroid;
- the fit runs in float64 on the landmarks centred and divided by their weighted RMS spread, so
  that pixel scales from 1e-30 to 1e30 behave alike (the fit is equivariant to a translation and a
  uniform scale of the landmarks, so this changes nothing but rounding);
- the normal matrix of the shape step is assembled in float64, symmetrised and given a ridge
  relative to its diagonal; the Cholesky factorisation checks its status and, where it fails,
  retries with a stronger ridge and finally falls back to the diagonal alone.

In float32 the assembly is not positive definite to rounding: with ``z_weight = 0`` the depth
translation is unobserved (exact eigenvalue ``_POSE_RIDGE = 1e-8``), while subtracting the depth
part from the full 3D Gram matrix, whose entries reach 100 cm^2, leaves float32 rounding of about
1e-6 in every entry, so that the sign of the last Cholesky pivot depended on the BLAS kernel.
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
# Ridge on every unknown, relative to the mean diagonal of the float64 normal matrix. Rounding in
# its assembly (sums of 3 * 468 products) perturbs its eigenvalues by about 1e-13 of that mean;
# 1e-9 dominates this by four orders and is 1e-5 of the default priors. Where a factorisation
# still fails (non-finite or absurd input), the ridge grows by 1e3 per retry.
_RELATIVE_RIDGE = 1e-9
_RIDGE_GROWTH = 1e3
_RIDGE_RETRIES = 3
# Usable landmarks whose RMS spread is below this fraction of their magnitude are all equal up to
# float32 resolution (about 6e-8 of the magnitude, ten units of which are allowed for).
_MIN_RELATIVE_SPREAD = 1e-6
# Floor of the similarity scale in units of the normalised landmarks (RMS spread 1, where a face
# gives 1 / (its RMS radius in cm) ~ 0.15), and of the model points' variance (cm^2): the scale
# of a similarity onto a target that is uncorrelated with the model can be 0.
_MIN_SCALE = 1e-6
_MIN_VARIANCE = 1e-12


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
    params: Tensor  # (B, 162) dtype of the landmarks, layout of reenact.morphable
    # (B, L, 3) pixels: fitted model landmarks minus observed ones (0 at non-finite landmarks)
    residual: Tensor


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
    landmark. The landmark bases are computed once here and held as float64 buffers.
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
        # TorchScript reads module attributes, not module-level globals
        self.relative_ridge = _RELATIVE_RIDGE
        self.min_relative_spread = _MIN_RELATIVE_SPREAD
        self.min_scale = _MIN_SCALE
        self.min_variance = _MIN_VARIANCE
        self.ridge_growth = _RIDGE_GROWTH
        self.ridge_retries = _RIDGE_RETRIES
        f64 = torch.float64
        mult = torch.from_numpy(config.expression_multipliers(model.expression_names)).to(f64)
        identity_l2 = torch.full((N_IDENTITY,), config.identity_prior, dtype=f64)
        pose_l2 = torch.full((7,), _POSE_RIDGE, dtype=f64)
        l2 = torch.cat([identity_l2, config.expression_prior * mult, pose_l2])
        no_l1 = torch.zeros(N_IDENTITY + 7, dtype=f64)
        l1 = torch.cat([no_l1[:N_IDENTITY], config.expression_sparsity * mult, no_l1[N_IDENTITY:]])
        basis_t = torch.from_numpy(basis).double().reshape(-1, basis.shape[2]).t().contiguous()
        self.register_buffer("mean", torch.from_numpy(mean).double())  # (L, 3)
        self.register_buffer("basis_t", basis_t)  # (K, 3L): A^T, columns landmark-major
        uniform = torch.full((1, self.n_landmarks), 1.0 / self.n_landmarks, dtype=torch.float64)
        self.register_buffer("uniform_gram", self._data_gram(uniform)[0])  # (K, K)
        self.register_buffer("l2_prior", l2)  # (K + 7,)
        self.register_buffer("l1_prior", l1)  # (K + 7,)
        # image y down <-> model y up
        self.register_buffer("flip", torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
        # unknowns of the shape step: identity, expression, then 7 pose increments
        bounded = torch.zeros(N_IDENTITY + N_EXPRESSION + 7, dtype=torch.bool)
        bounded[N_IDENTITY : N_IDENTITY + N_EXPRESSION] = True
        self.register_buffer("bounded", bounded)

    def model_landmarks(self, coeffs: Tensor) -> Tensor:
        """coeffs: (B, 155) float64 identity then expression. Returns (B, L, 3) model cm."""
        offsets = torch.matmul(coeffs, self.basis_t).reshape(-1, self.n_landmarks, 3)
        return self.mean + offsets

    def forward(self, landmarks: Tensor, weights: Tensor | None = None) -> FitResult:
        """landmarks: (B, L, 3) float image pixels; weights: optional (L,) or (B, L) >= 0.

        Returns params (B, 162) and residual (B, L, 3) in the dtype of ``landmarks``, always
        finite; see the module docstring for non-finite and degenerate input.
        """
        torch._assert(landmarks.dim() == 3, "landmarks must be (B, L, 3)")
        torch._assert(
            landmarks.shape[1] == self.n_landmarks and landmarks.shape[2] == 3,
            "landmarks must be (B, L, 3)",
        )
        observed = torch.isfinite(landmarks).all(dim=2)  # (B, L)
        # right-handed: x right, y up, z towards the camera
        image = torch.where(observed[:, :, None], landmarks.double(), 0.0) * self.flip
        w, usable = self._clean_weights(observed, weights)
        taking_part = ((w > 0) & usable[:, None])[:, :, None]  # (B, L, 1)
        target = torch.where(taking_part, image, 0.0)
        centre, unit, degenerate = _normalisation(target, w, self.min_relative_spread)
        target = torch.where(taking_part, (target - centre[:, None, :]) / unit[:, None, None], 0.0)
        if weights is None and bool(observed.all()):
            gram = self.uniform_gram.expand(landmarks.shape[0], -1, -1)
        else:
            gram = self._data_gram(w)
        coeffs, points, rotation, translation, scale = self._alternate(target, w, gram)
        params, fitted = self._in_pixels(
            coeffs, points, rotation, translation * unit[:, None] + centre, scale * unit
        )
        fallback = degenerate | ~torch.isfinite(params).all(dim=1)
        fallback = fallback | ~torch.isfinite(fitted).all(dim=2).all(dim=1)
        params = torch.where(fallback[:, None], self._neutral_params(centre), params)
        neutral = self.mean + centre[:, None, :]  # the mean face, unrotated, one pixel per cm
        fitted = torch.where(fallback[:, None, None], neutral, fitted)
        residual = torch.where(observed[:, :, None], (fitted - image) * self.flip, 0.0)
        return FitResult(_to_finite(params, landmarks.dtype), _to_finite(residual, landmarks.dtype))

    def _in_pixels(
        self, coeffs: Tensor, points: Tensor, rotation: Tensor, translation: Tensor, scale: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Params (B, 162) and fitted landmarks (B, L, 3) right-handed pixels, from coeffs (B, 155),
        model landmarks ``points`` (B, L, 3) and the pose in right-handed pixels."""
        fitted = scale[:, None, None] * torch.matmul(points, rotation.transpose(1, 2))
        fitted = fitted + translation[:, None, :]
        params = torch.cat(
            [coeffs, rotation_angles(rotation), translation * self.flip, scale[:, None]], dim=1
        )
        torch._assert(params.shape[1] == self.n_params, "params must follow reenact.morphable")
        return params, fitted

    def _clean_weights(self, observed: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor]:
        """Weights (B, L) float64 summing to 1 and usable (B,) bool.

        A weight is 0 at a non-finite landmark and where the given weight is not a finite
        positive number; a row without a positive weight is not usable and gets uniform weights.
        """
        raw = observed.to(torch.float64)
        if weights is not None:
            given = weights.to(torch.float64).expand(observed.shape[0], self.n_landmarks)
            raw = torch.where(torch.isfinite(given) & (given > 0), given, 0.0) * raw
        peak = raw.amax(dim=1, keepdim=True)  # divided out first: huge weights cannot overflow
        usable = peak > 0
        raw = torch.where(usable, raw / torch.where(usable, peak, 1.0), 1.0)
        return raw / raw.sum(dim=1, keepdim=True), usable[:, 0]

    def _neutral_params(self, centre: Tensor) -> Tensor:
        """(B, 162) float64: the mean face, unrotated, one pixel per cm, at ``centre`` (B, 3)."""
        zeros = torch.zeros(centre.shape[0], self.n_params - 4, dtype=centre.dtype)
        ones = torch.ones(centre.shape[0], 1, dtype=centre.dtype)
        return torch.cat([zeros, centre * self.flip, ones], 1).to(centre.device)

    def _alternate(
        self, target: Tensor, w: Tensor, gram: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The pose <-> shape rounds on normalised landmarks ``target`` (B, L, 3) float64.

        Returns coeffs (B, 155), model landmarks (B, L, 3), rotation (B, 3, 3), translation (B, 3)
        and scale (B,), the pose in the normalised frame.
        """
        batch = target.shape[0]
        points = self.mean.expand(batch, self.n_landmarks, 3)
        coeffs = torch.zeros(batch, self.basis_t.shape[0], dtype=target.dtype, device=target.device)
        rotation, translation, scale = self._similarity(points, target, w)
        for _ in range(self.n_alternations):
            coeffs = self._solve_shape(target, w, gram, points, rotation, translation, scale)
            points = self.model_landmarks(coeffs)
            rotation, translation, scale = self._similarity(points, target, w)
        return coeffs, points, rotation, translation, scale

    def _data_gram(self, w: Tensor) -> Tensor:
        """sum_l w_l A_l^T A_l for weights w (B, L) float64: (B, K, K) float64."""
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
        return self._box_solve(normal, rhs)[:, :k]

    def _similarity(
        self, source: Tensor, target: Tensor, w: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Weighted Umeyama: ``target ~ scale * rotation @ source + translation``.

        source, target: (B, L, 3) float64, target normalised (RMS spread 1 or less); w: (B, L)
        summing to 1. Returns rotation (B, 3, 3), translation (B, 3), scale (B,) >= ``min_scale``.
        """
        wk = w[:, :, None]
        mu_s = (wk * source).sum(1)
        mu_t = (wk * target).sum(1)
        src = source - mu_s[:, None, :]
        tgt = target - mu_t[:, None, :]
        cov = torch.matmul((wk * tgt).transpose(1, 2), src)  # (B, 3, 3)
        u, sing, vh = torch.linalg.svd(cov)
        det = torch.linalg.det(torch.matmul(u, vh))
        sign = torch.where(det < 0, -torch.ones_like(det), torch.ones_like(det))
        fix = torch.cat([torch.ones_like(sing[:, :2]), sign[:, None]], dim=1)  # no reflection
        rotation = torch.matmul(u * fix[:, None, :], vh)
        var_s = (wk * src * src).sum(dim=(1, 2)).clamp(min=self.min_variance)
        scale = ((sing * fix).sum(1) / var_s).clamp(min=self.min_scale)
        translation = mu_t - scale[:, None] * torch.matmul(rotation, mu_s[:, :, None])[:, :, 0]
        return rotation, translation, scale

    def _box_solve(self, normal: Tensor, rhs: Tensor) -> Tensor:
        """Minimise ``c^T normal c - 2 rhs^T c`` with ``c[:, bounded]`` in [0, 1].

        normal: (B, K, K) float64, symmetric positive semi-definite up to rounding; rhs: (B, K)
        float64; ``self.bounded`` (K,) bool marks the boxed unknowns. The normal matrix is
        symmetrised and gets the ridge ``relative_ridge`` times its mean diagonal. A fixed number
        of active-set steps (the fixed set starts empty), each an equality-constrained Cholesky
        solve; the result is clamped. Returns (B, K) float64.
        """
        normal = 0.5 * (normal + normal.transpose(1, 2))
        level = _diagonal_level(normal)
        eye = torch.eye(rhs.shape[1], dtype=normal.dtype, device=normal.device)
        normal = normal + eye * (self.relative_ridge * level)[:, None, None]
        at_lower = torch.zeros(rhs.shape, dtype=torch.bool, device=rhs.device)
        at_upper = torch.zeros_like(at_lower)
        coeffs = rhs
        n_steps = self.n_active_set_steps
        for step in range(n_steps):
            free = (~(at_lower | at_upper)).to(normal.dtype)  # (B, K)
            fixed_value = at_upper.to(normal.dtype)  # 1 at the upper bound, 0 elsewhere
            system = normal * free[:, :, None] * free[:, None, :] + eye * (1.0 - free)[:, None, :]
            moved = rhs - torch.matmul(normal, fixed_value[:, :, None])[:, :, 0]
            # Cholesky, not torch.linalg.solve: batched LU gives wrong pivots with more than one
            # thread in the torch 2.13 CPU build (MKL "DLASWP" errors)
            factor = self._spd_cholesky(system, level)
            coeffs = torch.cholesky_solve((free * moved + fixed_value)[:, :, None], factor)[:, :, 0]
            if step + 1 < n_steps:
                grad = torch.matmul(normal, coeffs[:, :, None])[:, :, 0] - rhs
                at_lower = self.bounded & (((free > 0) & (coeffs < 0)) | (at_lower & (grad >= 0)))
                at_upper = self.bounded & (((free > 0) & (coeffs > 1)) | (at_upper & (grad <= 0)))
        return torch.where(self.bounded, coeffs.clamp(0.0, 1.0), coeffs)

    def _spd_cholesky(self, system: Tensor, level: Tensor) -> Tensor:
        """Lower Cholesky factor (B, K, K) of symmetric ``system`` (B, K, K) float64; never raises.

        Where the factorisation fails, a ridge of ``level`` (B,) times a growing factor is added and
        it is retried; after ``ridge_retries`` failures the positive diagonal alone is used.
        """
        factor, info = torch.linalg.cholesky_ex(system)
        ridge = self.relative_ridge
        for _ in range(self.ridge_retries):
            failed = info != 0
            if not bool(failed.any()):
                break
            ridge = ridge * self.ridge_growth
            eye = torch.eye(system.shape[1], dtype=system.dtype, device=system.device)
            retry, retry_info = torch.linalg.cholesky_ex(
                system + eye * (ridge * level)[:, None, None]
            )
            factor = torch.where(failed[:, None, None], retry, factor)
            info = torch.where(failed, retry_info, info)
        # an infinite entry passes with info 0 but leaves an infinite or NaN pivot
        failed = (info != 0) | ~torch.isfinite(factor.diagonal(dim1=1, dim2=2)).all(dim=1)
        if bool(failed.any()):
            diagonal = system.diagonal(dim1=1, dim2=2).abs()
            diagonal = torch.where(torch.isfinite(diagonal), diagonal, torch.zeros_like(diagonal))
            jacobi = torch.diag_embed((diagonal + level[:, None]).sqrt())
            factor = torch.where(failed[:, None, None], jacobi, factor)
        return factor


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


def _normalisation(
    target: Tensor, w: Tensor, min_relative_spread: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted centroid (B, 3), RMS spread (B,) and degenerate (B,) bool of ``target``.

    target: (B, L, 3) float64, zero where ``w`` (B, L), summing to 1, is zero. A row is degenerate
    where its spread is below ``min_relative_spread`` of its magnitude (no shape at float32
    resolution) or it has none; its spread is then 1.
    """
    centre = (w[:, :, None] * target).sum(1)
    variance = (w * (target - centre[:, None, :]).square().sum(2)).sum(1)
    spread = variance.clamp(min=1e-200).sqrt()  # the clamp keeps the gradient finite at 0
    magnitude = target.abs().amax(dim=2).amax(dim=1)
    degenerate = ~((spread > min_relative_spread * magnitude) & (magnitude > 0))
    return centre, torch.where(degenerate, torch.ones_like(spread), spread), degenerate


def _diagonal_level(matrix: Tensor) -> Tensor:
    """Mean absolute finite diagonal entry of (B, K, K), at least 1e-300: (B,)."""
    diagonal = matrix.diagonal(dim1=1, dim2=2).abs()
    finite = torch.where(torch.isfinite(diagonal), diagonal, torch.zeros_like(diagonal))
    return finite.mean(dim=1).clamp(min=1e-300)


def _to_finite(values: Tensor, dtype: torch.dtype) -> Tensor:
    """``values`` in ``dtype``, clamped to float32's finite range (a no-op for fitted faces)."""
    float32_max = 3.4028234663852886e38
    return values.clamp(-float32_max, float32_max).to(dtype)
