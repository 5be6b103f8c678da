"""Expression shading: the EXPRESSION_SHADE channel of the renders and its use by the reenactor."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from reenact.geometric import (
    EXPRESSION_SHADE,
    WARP_WEIGHT,
    ReenactorRenderer,
    RendererConfig,
    ring_mean_matrix,
)
from reenact.morphable import (
    EXPR_SLICE,
    ID_SLICE,
    MATERIAL_NAMES,
    N_PARAMS,
    ROT_SLICE,
    SCALE_SLICE,
    TRANS_SLICE,
)
from reenact.reenactor import DEFAULTS, GeometricReenactor

H, W = 512, 384
SCALE = 16.0  # canvas pixels per cm: the face fills the canvas, the render samples it finely


def params(model, **weights: float) -> np.ndarray:
    """(162,) the mean face seen from the front, nose near the canvas centre."""
    p = np.zeros(N_PARAMS, np.float32)
    p[TRANS_SLICE] = (W / 2, H / 2 - 40.0, 0.0)
    p[SCALE_SLICE] = SCALE
    for name, weight in weights.items():
        p[EXPR_SLICE.start + model.expression_names.index(name)] = weight
    return p


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) area-weighted unit normals, in float64 numpy (not the renderer's routine)."""
    v = vertices.astype(np.float64)
    face = np.cross(
        v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]]
    )
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def test_a_change_that_leaves_the_normals_alone_leaves_the_shading_alone(model, renderer):
    """Moving, turning or scaling the head changes no normal relative to the light of the
    source's view: the ratio is exactly 1 (the channel 0) everywhere."""
    source = params(model, jawOpen=0.3)
    moved = source.copy()
    moved[TRANS_SLICE.start] += 9.0
    moved[ROT_SLICE.start + 1] = np.deg2rad(20.0)
    moved[SCALE_SLICE] *= 1.1
    _, target_render = renderer.render(source, moved[None], H, W)
    assert not target_render[0, ..., EXPRESSION_SHADE].any()


def test_a_fold_darkens_where_the_normal_turns_from_the_light(model):
    """browDown bends the skin between and above the brows: where a vertex's normal turns away
    from the light (computed here with numpy) the render's shading change is negative, where it
    turns towards it positive, on the visible front face (lightening not limited to the
    source's own folds)."""
    # a light from higher above than the default: browDown's turns are mostly up and down
    config = RendererConfig(lighten_beyond_neutral=1.0, light=(0.0, 0.6, 1.0))
    renderer = ReenactorRenderer(model, config)
    source, target = params(model), params(model, browDown_L=1.0, browDown_R=1.0)
    _, target_render = renderer.render(source, target[None], H, W)
    face_tris = model.triangles[model.triangle_material == MATERIAL_NAMES.index("M_Face")]
    ids = np.unique(face_tris)
    both = np.stack([source, target])
    shapes = model.shape(both[:, ID_SLICE], both[:, EXPR_SLICE])  # (2, N, 3) model space, cm
    before = vertex_normals(shapes[0], face_tris)[ids]
    after = vertex_normals(shapes[1], face_tris)[ids]
    light = np.asarray(config.light, np.float64)
    light /= np.linalg.norm(light)
    turn = after @ light - before @ light  # > 0: towards the light
    canvas = model.decode(target[None])[0, ids]  # (n, 3) canvas pixels of the target
    d = RendererConfig().downscale
    rows = np.clip(np.round((canvas[:, 1] - (d - 1) / 2) / d).astype(int), 0, H // d - 1)
    cols = np.clip(np.round((canvas[:, 0] - (d - 1) / 2) / d).astype(int), 0, W // d - 1)
    change = target_render[0, rows, cols, EXPRESSION_SHADE]
    front = (after[:, 2] > 0.7) & (target_render[0, rows, cols, WARP_WEIGHT] > 0.99)
    darker = front & (turn < -0.05)
    lighter = front & (turn > 0.05)
    assert darker.sum() > 20 and lighter.sum() > 20
    # smoothing over the mesh and across render pixels blurs the edges of a fold: most, not all
    assert np.mean(change[darker] < 0.0) > 0.85
    assert np.mean(change[lighter] > 0.0) > 0.85
    assert change.min() >= config.shade_ratio_min - 1.0 - 1e-6
    assert change.max() <= config.shade_ratio_max - 1.0 + 1e-6
    unmoved = front & (np.linalg.norm(shapes[1, ids] - shapes[0, ids], axis=1) == 0.0)
    assert unmoved.sum() > 100 and np.abs(change[unmoved]).max() < 0.02


def test_the_reenactor_multiplies_the_face_by_the_shading_ratio(model, renderer):
    """Same renders, shading on and off: the outputs differ by the factor 1 + tint x change
    (upsampled from the render), darker where the change is negative."""
    source, target = params(model), params(model, browDown_L=1.0, browDown_R=1.0)
    source_render, target_render = renderer.render(source, target[None], H, W)
    rng = np.random.default_rng(0)
    canvas = rng.integers(100, 200, (H, W, 3), dtype=np.uint8)
    tensors = [torch.from_numpy(a) for a in (canvas, source_render, target_render, target[None])]
    with torch.inference_mode():
        on = GeometricReenactor().eval()(*tensors)[0].numpy().astype(np.float64)
        unshaded = GeometricReenactor(replace(DEFAULTS, expression_shading=False)).eval()
        off = unshaded(*tensors)[0].numpy()
    off = off.astype(np.float64)
    change = target_render[0, ..., EXPRESSION_SHADE]
    d = RendererConfig().downscale
    strong = np.argwhere(change < -0.08)
    assert strong.size
    rows, cols = strong[:, 0] * d + d // 2, strong[:, 1] * d + d // 2
    tint = np.array(DEFAULTS.shading_rgb)
    ratio = on[rows, cols] / off[rows, cols]
    expected = 1.0 + tint * change[strong[:, 0], strong[:, 1], None]
    # rounding to uint8 (half a level of ~150) and bilinear upsampling between render pixels
    np.testing.assert_allclose(np.median(ratio / expected, axis=0), 1.0, atol=0.02)
    assert (on[rows, cols].sum(-1) < off[rows, cols].sum(-1)).mean() > 0.95
    nothing = change == 0.0
    nothing[1:-1, 1:-1] &= nothing[:-2, 1:-1] & nothing[2:, 1:-1]
    nothing[1:-1, 1:-1] &= nothing[1:-1, :-2] & nothing[1:-1, 2:]
    ys, xs = np.nonzero(nothing)
    np.testing.assert_array_equal(on[ys * d, xs * d], off[ys * d, xs * d])


def test_only_the_sources_own_folds_lighten(model, renderer):
    """By default a target is lit at most lighten_beyond_neutral brighter than the source with
    a neutral expression: from a neutral source a frown lightens by no more than that (without
    the limit, more); from a frowning source the neutral face lightens where the frown's folds
    were, as much as without the limit; a stronger frown is never lighter than without the
    limit and still darkens where it darkened."""
    limit = RendererConfig().lighten_beyond_neutral
    neutral = params(model)
    frown = params(model, browDown_L=1.0, browDown_R=1.0)
    unlimited = ReenactorRenderer(model, RendererConfig(lighten_beyond_neutral=1.0))
    _, from_neutral = renderer.render(neutral, frown[None], H, W)
    _, from_neutral_unlimited = unlimited.render(neutral, frown[None], H, W)
    assert from_neutral[0, ..., EXPRESSION_SHADE].max() <= limit + 1e-6
    assert from_neutral_unlimited[0, ..., EXPRESSION_SHADE].max() > limit + 0.02
    assert from_neutral[0, ..., EXPRESSION_SHADE].min() < -0.05
    _, back = renderer.render(frown, neutral[None], H, W)
    _, back_unlimited = unlimited.render(frown, neutral[None], H, W)
    assert back[0, ..., EXPRESSION_SHADE].max() > limit + 0.02
    # back to neutral: the limit is the change itself. Tolerance: the limited render's normal
    # matmul has one row more, and BLAS may sum it in another order (float32 rounding, 1e-6)
    np.testing.assert_allclose(
        back[0, ..., EXPRESSION_SHADE], back_unlimited[0, ..., EXPRESSION_SHADE], atol=1e-5
    )
    half = params(model, browDown_L=0.5, browDown_R=0.5)
    _, deeper = renderer.render(half, frown[None], H, W)
    _, deeper_unlimited = unlimited.render(half, frown[None], H, W)
    limited, free = deeper[0, ..., EXPRESSION_SHADE], deeper_unlimited[0, ..., EXPRESSION_SHADE]
    assert (limited <= free + 1e-5).all()  # never lighter than without the limit (as above)
    darker = free < -0.05
    assert darker.sum() > 50 and (limited[darker] < -0.02).all()


def test_the_ring_mean_is_each_vertex_averaged_with_its_neighbours():
    # a square 0-1-2-3 with its diagonal 0-2, and a vertex 4 on no edge
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 3], [0, 2]])
    values = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [8.0, 80.0], [16.0, 160.0]])
    expected = np.array(
        [
            (values[0] + values[1] + values[2] + values[3]) / 4,
            (values[1] + values[0] + values[2]) / 3,
            (values[2] + values[0] + values[1] + values[3]) / 4,
            (values[3] + values[0] + values[2]) / 3,
            values[4],
        ]
    )
    mean = ring_mean_matrix(edges, 5) @ torch.from_numpy(values.astype(np.float32))
    # float32 sums of four values under 200: well within 1e-5 relative
    np.testing.assert_allclose(mean.numpy(), expected, rtol=1e-5)
