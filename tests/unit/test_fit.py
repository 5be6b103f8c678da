"""The closed-form landmark fit on synthetic landmarks made by the model with known parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reenact.fit import FitConfig, FitResult, LandmarkFitter, landmark_bases
from reenact.morphable import (
    EXPR_SLICE,
    ID_SLICE,
    N_PARAMS,
    ROT_SLICE,
)

NARROW_FACE_END = 6706  # vertices 0..6705: the narrow face area (ICT README)
SECONDARY = ("cheekRaiser", "cheekSquint", "mouthDimple", "mouthStretch")


@pytest.fixture(scope="module")
def correspondence(model) -> tuple[np.ndarray, np.ndarray]:
    """468 model points like FaceMesh's: 400 random barycentric points on front-facing triangles
    of the face area and the 68 Multi-PIE landmark vertices (eyelids, lips, contour)."""
    rng = np.random.default_rng(0)
    tri = model.triangles_of("M_Face")
    tri = tri[(tri < NARROW_FACE_END).all(axis=1)]
    corners = model.neutral[tri]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    centre = corners.mean(axis=1)
    front = (normal[:, 2] > 0.3) & (np.abs(centre[:, 0]) < 7.4) & (np.abs(centre[:, 1] + 0.5) < 7.5)
    tri = tri[front][rng.choice(int(front.sum()), 400, replace=False)]
    bary = rng.dirichlet(np.ones(3), 400)
    lm68 = model.landmarks_68.astype(np.int64)
    tri_vertices = np.concatenate([tri, np.stack([lm68] * 3, axis=1)]).astype(np.int64)
    barycentric = np.concatenate([bary, np.tile([1.0, 0.0, 0.0], (68, 1))]).astype(np.float32)
    return tri_vertices, barycentric


@pytest.fixture(scope="module")
def fitter(model, correspondence) -> LandmarkFitter:
    return LandmarkFitter(model, *correspondence)


def make_params(identity, expression, angles_deg) -> np.ndarray:
    """(B, 162): a face ~150 px wide (10 px/cm) in a 192x192 crop."""
    batch = len(identity)
    params = np.zeros((batch, N_PARAMS), np.float32)
    params[:, ID_SLICE] = identity
    params[:, EXPR_SLICE] = expression
    params[:, ROT_SLICE] = np.radians(angles_deg)
    params[:, 158:161] = [96.0, 100.0, 0.0]
    params[:, 161] = 10.0
    return params


def synth_landmarks(model, correspondence, params, noise_px, seed=0) -> torch.Tensor:
    """(B, L, 3) float32 image-pixel landmarks of ``params`` plus Gaussian noise."""
    tri_vertices, barycentric = correspondence
    verts = model.decode(params, vertex_ids=np.unique(tri_vertices))
    index = np.searchsorted(np.unique(tri_vertices), tri_vertices)
    points = (verts[:, index] * barycentric[None, :, :, None]).sum(axis=2)
    noise = np.random.default_rng(seed).normal(0.0, noise_px, points.shape)
    return torch.from_numpy((points + noise).astype(np.float32))


def random_cases(model, n, seed):
    """n random faces: identity ~ N(0, 1), 5 observable blendshapes active, a moderate pose."""
    rng = np.random.default_rng(seed)
    observable = [i for i, n in enumerate(model.expression_names) if not n.startswith("eyeLook")]
    expression = np.zeros((n, 55), np.float32)
    for row in expression:
        row[rng.choice(observable, 5, replace=False)] = rng.uniform(0.2, 1.0, 5)
    identity = rng.normal(0.0, 1.0, (n, 100)).astype(np.float32)
    angles = rng.uniform([-15, -20, -8], [15, 20, 8], (n, 3))
    return make_params(identity, expression, angles)


def similarity_residual(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between point sets (L, 3) after the best similarity of ``a`` onto ``b``."""
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, s, vt = np.linalg.svd(b0.T @ a0)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / (a0**2).sum()
    return float(np.linalg.norm(scale * a0 @ rot.T - b0, axis=1).mean())


@pytest.fixture(scope="module")
def random_fit(model, correspondence, fitter):
    params = random_cases(model, 8, seed=1)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=1.0)
    return params, fitter(landmarks)


def test_pose_within_one_degree(random_fit):
    truth, result = random_fit
    error = np.degrees(np.abs(result.params[:, ROT_SLICE].numpy() - truth[:, ROT_SLICE]))
    assert error.max() < 1.0, error
    # scale trades with the size component of identity: only roughly determined
    assert np.allclose(result.params[:, 161].numpy(), 10.0, rtol=0.1)
    assert np.allclose(result.params[:, 158:160].numpy(), truth[:, 158:160], atol=3.0)


def test_expression_mean_absolute_error(random_fit):
    truth, result = random_fit
    mae = np.abs(result.params[:, EXPR_SLICE].numpy() - truth[:, EXPR_SLICE]).mean(axis=1)
    assert mae.mean() <= 0.05, mae
    # the worst case has three "secondary" shapes active, which the priors discourage by design
    assert mae.max() <= 0.12, mae


def test_identity_recovered_where_observable(model, correspondence, random_fit):
    """The identity part of the landmark shape, up to a similarity (scale trades with identity)."""
    truth, result = random_fit
    mean, basis = landmark_bases(model, *correspondence)
    id_basis = basis[:, :, ID_SLICE]
    for true_id, fit_id in zip(truth[:, ID_SLICE], result.params[:, ID_SLICE].numpy(), strict=True):
        true_shape, fit_shape = mean + id_basis @ true_id, mean + id_basis @ fit_id
        error = similarity_residual(fit_shape, true_shape)
        signal = similarity_residual(mean, true_shape)
        # the identity signal on the landmarks is ~1.7 px against 1 px noise per axis
        assert error < 0.5 * signal, (error, signal)


def test_residual_is_fitted_minus_observed(model, correspondence, random_fit):
    _, result = random_fit
    refit = synth_landmarks(model, correspondence, result.params.numpy(), noise_px=0.0)
    observed = synth_landmarks(model, correspondence, random_fit[0], noise_px=1.0)
    assert torch.allclose(result.residual, refit - observed, atol=2e-3)
    rms = result.residual.norm(dim=2).pow(2).mean().sqrt()
    assert 1.0 < rms < 2.5  # noise of 1 px per axis: sqrt(3) px, a little more from the priors


def test_exact_recovery_without_noise_and_priors(model, correspondence):
    """The alternation converges in a few rounds (pose and identity are strongly correlated)."""
    weak = dict(identity_prior=1e-9, expression_prior=1e-9, expression_sparsity=0.0)
    params = random_cases(model, 3, seed=2)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=0.0)
    for z_weight in (1.0, 0.25):
        config = FitConfig(n_alternations=4, z_weight=z_weight, **weak)
        result = LandmarkFitter(model, *correspondence, config)(landmarks)
        fitted = result.params.numpy()
        error = np.abs(fitted - params)
        assert error[:, EXPR_SLICE].max() < 1e-2, z_weight
        assert error[:, ROT_SLICE].max() < 1e-4, z_weight
        assert error[:, 158:].max() < 1e-2, z_weight
        # identity coefficients are ill-conditioned in float32; their landmark shape is not
        assert np.abs(fitted[:, ID_SLICE] - params[:, ID_SLICE]).max() < 2e-2, z_weight
        assert result.residual.abs().max() < 1e-2


def test_z_weight_zero_ignores_depth_in_the_shape(model, correspondence):
    """Landmark depth that disagrees with the model (as detector z often does) corrupts the
    expression with z_weight=1 and much less with z_weight=0."""
    params = random_cases(model, 4, seed=8)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=0.5)
    landmarks[:, :, 2] += torch.from_numpy(np.random.default_rng(8).normal(0, 8.0, (4, 468)))
    mae = {}
    for z_weight in (1.0, 0.0):
        fitter = LandmarkFitter(model, *correspondence, FitConfig(z_weight=z_weight))
        fitted = fitter(landmarks).params[:, EXPR_SLICE].numpy()
        mae[z_weight] = np.abs(fitted - params[:, EXPR_SLICE]).mean()
    assert mae[0.0] < 0.6 * mae[1.0], mae


def test_smile_goes_into_mouth_smile_not_secondary_shapes(model, correspondence, fitter):
    """Landmarks of mouthSmile_L/R = 0.8 and noise; an unregularised solve hands
    much of the smile to cheekRaiser/mouthDimple/..., the default priors keep it in mouthSmile."""
    names = model.expression_names
    smile = [names.index("mouthSmile_L"), names.index("mouthSmile_R")]
    secondary = [i for i, n in enumerate(names) if n.startswith(SECONDARY)]
    rng = np.random.default_rng(3)
    expression = np.zeros((8, 55), np.float32)
    expression[:, smile] = 0.8
    angles = rng.uniform(-15, 15, (8, 3))
    params = make_params(rng.normal(0, 1, (8, 100)).astype(np.float32), expression, angles)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=3.0, seed=3)

    fitted = fitter(landmarks).params[:, EXPR_SLICE].numpy()
    assert fitted[:, smile].mean() > 0.6, fitted[:, smile]
    assert fitted[:, secondary].sum(axis=1).max() < 0.1, fitted[:, secondary]

    plain = FitConfig(
        identity_prior=1e-5, expression_prior=1e-6, expression_sparsity=0.0, secondary_multiplier=1
    )
    unregularised = LandmarkFitter(model, *correspondence, plain)(landmarks).params[:, EXPR_SLICE]
    assert unregularised[:, secondary].sum(dim=1).mean() > 0.3  # the failure the priors prevent


def test_expression_kept_in_unit_box(model, correspondence, fitter):
    names = model.expression_names
    expression = np.zeros((2, 55), np.float32)
    expression[0, names.index("jawOpen")] = 1.6
    expression[1, names.index("mouthSmile_L")] = -0.7
    expression[1, names.index("browInnerUp_L")] = 0.5
    params = make_params(np.zeros((2, 100), np.float32), expression, np.zeros((2, 3)))
    fitted = fitter(synth_landmarks(model, correspondence, params, 0.5)).params[:, EXPR_SLICE]
    assert fitted.min() >= 0.0 and fitted.max() <= 1.0
    assert fitted[0, names.index("jawOpen")] == 1.0
    assert fitted[1, names.index("mouthSmile_L")] == 0.0
    assert abs(float(fitted[1, names.index("browInnerUp_L")]) - 0.5) < 0.15


def test_batch_equals_singles(model, correspondence, fitter):
    params = random_cases(model, 3, seed=4)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=1.0)
    weights = torch.linspace(0.5, 1.5, landmarks.shape[1])
    batch = fitter(landmarks, weights)
    for i in range(3):
        single = fitter(landmarks[i : i + 1], weights)
        assert torch.allclose(single.params, batch.params[i : i + 1], atol=1e-3)
        assert torch.allclose(single.residual, batch.residual[i : i + 1], atol=1e-3)


def test_weights_matter(model, correspondence, fitter):
    """A landmark displaced far away is ignored when its weight is zero."""
    params = random_cases(model, 1, seed=5)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=0.0)
    landmarks[0, :20] += 40.0
    weights = torch.ones(landmarks.shape[1])
    weights[:20] = 0.0
    clean = fitter(landmarks, weights).params
    dirty = fitter(landmarks).params
    error = lambda p: np.abs(p[0, EXPR_SLICE].numpy() - params[0, EXPR_SLICE]).mean()  # noqa: E731
    assert error(clean) < 0.03 < error(dirty)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_equals_eager(model, correspondence, fitter):
    scripted = torch.jit.script(fitter)
    landmarks = synth_landmarks(model, correspondence, random_cases(model, 2, seed=6), 1.0)
    eager, script = fitter(landmarks), scripted(landmarks)
    assert torch.allclose(eager.params, script[0], atol=1e-5)
    assert torch.allclose(eager.residual, script[1], atol=1e-4)
    weights = torch.rand(landmarks.shape[1])
    assert torch.allclose(
        fitter(landmarks, weights).params, scripted(landmarks, weights)[0], atol=1e-5
    )


def test_gradients_flow_to_landmarks(model, correspondence, fitter):
    landmarks = synth_landmarks(model, correspondence, random_cases(model, 2, seed=7), 1.0)
    landmarks.requires_grad_(True)
    result: FitResult = fitter(landmarks)
    (result.params[:, :155].square().sum() + result.params[:, 155:].sum()).backward()
    assert torch.isfinite(landmarks.grad).all()
    assert landmarks.grad.abs().sum() > 0


def test_landmark_bases_are_barycentric_combinations(model):
    tri = np.array([[0, 1, 2], [10, 11, 12]], np.int64)
    bary = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], np.float32)
    mean, basis = landmark_bases(model, tri, bary)
    assert np.allclose(mean[1], model.neutral[10])
    expected = 0.2 * model.neutral[0] + 0.3 * model.neutral[1] + 0.5 * model.neutral[2]
    assert np.allclose(mean[0], expected, atol=1e-5)
    assert np.allclose(basis[1, :, 100 + 7], model.expression_basis[7, 10])
    assert np.allclose(basis[0, :, 3], bary[0] @ model.identity_basis[3, [0, 1, 2]], atol=1e-6)


def test_config_expression_multipliers(model):
    config = FitConfig(
        secondary_multiplier=5.0, expression_multiplier_overrides=(("jawOpen", 0.5),)
    )
    mult = config.expression_multipliers(model.expression_names)
    names = model.expression_names
    assert mult[names.index("cheekRaiser_L")] == 5.0
    assert mult[names.index("mouthDimple_R")] == 5.0
    assert mult[names.index("mouthSmile_L")] == 1.0
    assert mult[names.index("jawOpen")] == 0.5
    with pytest.raises(ValueError, match="notAShape"):
        FitConfig(expression_multiplier_overrides=(("notAShape", 1.0),)).expression_multipliers(
            names
        )


def test_z_weight_zero_normal_matrix_is_positive_definite(model, correspondence):
    """With z_weight=0 the depth translation is unobserved: the exact smallest eigenvalue of the
    shape step's normal matrix is the pose ridge 1e-8. Assembled in float32 by subtracting the
    depth part from the 3D Gram matrix (entries up to ~100), rounding of ~1e-6 made it negative
    on some BLAS kernels and the Cholesky factorisation raised."""
    params = random_cases(model, 4, seed=8)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=0.5)
    landmarks[:, :, 2] += torch.from_numpy(np.random.default_rng(8).normal(0, 8.0, (4, 468)))
    fitter = LandmarkFitter(model, *correspondence, FitConfig(z_weight=0.0))
    normals = []
    solve = fitter._box_solve

    def spy(normal: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        normals.append(normal.detach().clone())
        return solve(normal, rhs)

    fitter._box_solve = spy
    fitter(landmarks)
    assert len(normals) == FitConfig().n_alternations
    for normal in normals:
        assert normal.dtype == torch.float64
        smallest = torch.linalg.eigvalsh(0.5 * (normal + normal.transpose(1, 2)))[:, 0]
        # float64 rounding of the assembly moves eigenvalues by ~1e-13 (4 orders below 1e-8)
        assert (smallest > 0.5e-8).all(), smallest


def test_z_weight_zero_fit_does_not_depend_on_thread_count(model, correspondence):
    params = random_cases(model, 2, seed=9)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=0.5)
    fitter = LandmarkFitter(model, *correspondence, FitConfig(z_weight=0.0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = fitter(landmarks).params
        torch.set_num_threads(2)
        double = fitter(landmarks).params
    finally:
        torch.set_num_threads(threads)
    # BLAS summation order differs between thread counts: float64 rounding (~1e-13) amplified by
    # the conditioning of identity (~1e6) stays far below 1e-4; the output is float32 (~1e-6)
    assert torch.allclose(single, double, rtol=1e-4, atol=1e-4)


def test_cholesky_recovers_from_an_indefinite_system(fitter):
    """A rounding-size negative pivot (what float32 assembly produced) gets a ridge, and a
    non-finite system falls back to its diagonal, instead of raising."""
    k = 162
    good = torch.eye(k, dtype=torch.float64) * 2.0
    good[0, 1] = good[1, 0] = 0.5
    indefinite = torch.eye(k, dtype=torch.float64)
    indefinite[-1, -1] = -2e-6
    broken = torch.eye(k, dtype=torch.float64)
    broken[3, 5] = broken[5, 3] = float("nan")
    systems = torch.stack([good, indefinite, broken])
    level = systems.diagonal(dim1=1, dim2=2).nan_to_num().abs().mean(1)
    factor = fitter._spd_cholesky(systems, level)
    assert torch.isfinite(factor).all()
    assert torch.equal(factor[0], torch.linalg.cholesky(good))  # untouched where it succeeds
    # the retried system is the indefinite one plus the first ridge large enough: 1e-6 of the mean
    # diagonal (~1) does not lift -2e-6, 1e-3 does
    rebuilt = factor[1] @ factor[1].T
    assert torch.allclose(rebuilt, indefinite + 1e-3 * level[1] * torch.eye(k), atol=1e-12)
    solution = torch.cholesky_solve(torch.ones(3, k, 1, dtype=torch.float64), factor)
    assert torch.isfinite(solution).all()


def test_non_finite_landmarks_count_as_zero_weight(model, correspondence, fitter):
    params = random_cases(model, 2, seed=10)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=1.0)
    broken = landmarks.clone()
    broken[0, :30, 1] = float("nan")
    broken[1, 100:110] = float("inf")
    weights = torch.isfinite(broken).all(dim=2).float()
    with_nan = fitter(broken)
    zero_weight = fitter(landmarks, weights)
    # the same arithmetic on the same usable points; only the residual of the bad ones differs
    assert torch.allclose(with_nan.params, zero_weight.params, atol=1e-5)
    assert torch.isfinite(with_nan.residual).all()
    assert (with_nan.residual[weights == 0] == 0).all()
    good = weights > 0
    assert torch.allclose(with_nan.residual[good], zero_weight.residual[good], atol=1e-4)


def test_no_usable_landmark_gives_the_mean_face(fitter):
    landmarks = torch.full((3, 468, 3), float("nan"))
    landmarks[1] = torch.tensor([40.0, 50.0, -3.0])  # all equal: a point, no shape
    landmarks[2] = torch.rand(468, 3) * 100.0
    weights = torch.ones(3, 468)
    weights[2] = 0.0  # real points but no weight
    params = fitter(landmarks, weights).params
    assert torch.isfinite(params).all()
    assert (params[:, :158] == 0).all()  # mean face, unrotated
    assert torch.equal(params[:, 161], torch.ones(3))  # one pixel per centimetre
    assert torch.equal(params[0, 158:161], torch.zeros(3))
    assert torch.allclose(params[1, 158:161], torch.tensor([40.0, 50.0, -3.0]))
    assert torch.equal(params[2, 158:161], torch.zeros(3))


@pytest.mark.parametrize("exponent", [-20, -7, 7, 20])
def test_fit_is_equivariant_to_the_pixel_scale(model, correspondence, fitter, exponent):
    """A power-of-two scale is exact in float32 and the fit works on the landmarks normalised by
    their spread, so the shape is the same and the pose scales with them (1e-6 .. 1e6)."""
    params = random_cases(model, 2, seed=11)
    landmarks = synth_landmarks(model, correspondence, params, noise_px=1.0)
    factor = 2.0**exponent
    base, scaled = fitter(landmarks).params, fitter(landmarks * factor).params
    # identical normalised arithmetic; the float32 output rounds to ~1e-7 relative
    assert torch.allclose(scaled[:, :158], base[:, :158], rtol=1e-5, atol=1e-5)
    assert torch.allclose(scaled[:, 158:] / factor, base[:, 158:], rtol=1e-5, atol=1e-5)
