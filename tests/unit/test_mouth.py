"""The painted mouth interior: separate teeth with gaps, shading, and the lips' shadow."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from reenact.geometric import (
    MOUTH_ALPHA,
    TEETH_SHADE,
    ReenactorRenderer,
    RendererConfig,
    tooth_labels,
)
from reenact.morphable import EXPR_SLICE, N_PARAMS, SCALE_SLICE, TRANS_SLICE
from reenact.reenactor import DEFAULTS, GeometricReenactor

H, W = 512, 384
SCALE = 40.0  # canvas pixels per cm: a close-up of the mouth, a front tooth ~30 px wide
MOUTH_Y_CM = -3.0  # model height of the mouth, placed at the canvas centre


def open_mouth(model) -> np.ndarray:
    """(162,) the mean face from the front, mouth open with the upper teeth bared."""
    p = np.zeros(N_PARAMS, np.float32)
    p[TRANS_SLICE] = (W / 2, H / 2 + SCALE * MOUTH_Y_CM, 0.0)
    p[SCALE_SLICE] = SCALE
    for name, weight in {"jawOpen": 0.6, "mouthUpperUp_L": 1.0, "mouthUpperUp_R": 1.0}.items():
        p[EXPR_SLICE.start + model.expression_names.index(name)] = weight
    return p


def test_ict_teeth_are_32_separate_meshes(model):
    teeth = model.triangles_of("M_Teeth")
    labels = tooth_labels(teeth, model.n_vertices)[np.unique(teeth)]
    assert np.unique(labels).size == 32


def test_the_gap_between_the_front_teeth_is_dark(model, renderer):
    """ICT is left-right symmetric: the two upper central incisors meet at x = 0. Along a row
    of the render through them, the teeth shade dips at the midline and is high at each
    incisor's middle."""
    source = open_mouth(model)
    source_render, _ = renderer.render(source, source[None], H, W)
    d = RendererConfig().downscale
    teeth = model.neutral[np.unique(model.triangles_of("M_Teeth"))]
    front = teeth[(teeth[:, 2] > teeth[:, 2].max() - 0.6) & (teeth[:, 1] > -3.2)]
    incisor_x = front[front[:, 0] > 0.0, 0].mean()  # the right central incisor's middle, cm
    middle_col = (W / 2 - (d - 1) / 2) / d
    offset = SCALE * incisor_x / d  # render pixels from the midline to an incisor's middle
    shade = source_render[..., TEETH_SHADE]
    alpha = source_render[..., MOUTH_ALPHA]
    cols = np.round(middle_col + np.array([-offset, 0.0, offset])).astype(int)
    rows = [i for i in range(shade.shape[0]) if (shade[i, cols] > 0.0).all()]
    assert len(rows) >= 3, "the upper incisors must show"
    assert (alpha[rows][:, cols] == 1.0).all()
    gap = shade[rows, int(np.floor(middle_col)) : int(np.ceil(middle_col)) + 1].min(axis=1)
    middles = shade[rows][:, cols[[0, 2]]].min(axis=1)
    # a quarter darker at least: the shade is interpolated between the sparse side vertices
    assert np.median(gap / middles) < 0.75


def test_teeth_are_lit_at_the_front_and_darker_at_the_sides_and_back(renderer):
    factor = renderer._teeth_shade[0]  # (M,) the mouth vertices' factor on the teeth shade
    teeth = renderer.is_teeth[renderer._mouth_start :]
    config = RendererConfig()
    assert factor[~teeth].tolist() == [1.0] * int((~teeth).sum())
    assert factor[teeth].max() == pytest.approx(1.0)
    low = (1.0 - config.teeth_gap_dark) * (1.0 - config.teeth_back_dark)
    assert factor[teeth].min() == pytest.approx(low, abs=0.02)


def test_the_lips_shadow_is_deepest_under_the_upper_lip():
    """A rectangular mouth opening: the painted interior darkens towards its edges, more at
    the top edge (the upper lip's shadow, light from above) than at the bottom, not at all in
    the middle, and never by more than lip_shadow."""
    reenactor = GeometricReenactor(replace(DEFAULTS, lip_shadow=0.5, lip_shadow_px=4)).eval()
    alpha = torch.zeros(1, 1, 60, 80)
    alpha[:, :, 10:50, 10:70] = 1.0
    factor = reenactor._lip_shadow(alpha)[0, 0]
    assert float(factor[30, 40]) == pytest.approx(1.0)
    top, bottom = float(factor[10, 40]), float(factor[49, 40])
    assert 0.5 <= top < bottom < 1.0
    assert float(factor[12, 40]) < float(factor[47, 40])  # two pixels in, still darker on top


SMALL_SCALE = 10.0  # canvas pixels per cm: a central incisor about 8 px wide, 4 render pixels


def small_mouth(model, jaw_open: bool) -> np.ndarray:
    """(162,) the mean face from the front at SMALL_SCALE, its mouth at the canvas centre; open
    with the upper teeth bared, or closed."""
    p = np.zeros(N_PARAMS, np.float32)
    p[TRANS_SLICE] = (W / 2, H / 2 + SMALL_SCALE * MOUTH_Y_CM, 0.0)
    p[SCALE_SLICE] = SMALL_SCALE
    if jaw_open:
        p[EXPR_SLICE] = open_mouth(model)[EXPR_SLICE]
    return p


def test_the_mouth_detail_is_the_full_resolution_render(model, renderer):
    """The renderer packs, after the target renders, the mouth shades rendered at canvas
    resolution in a window round the interior: wherever a full-resolution render (downscale 1)
    shows the interior they equal its shades, and the reduced render upsampled (where the
    reenactor takes the detail) shows the interior there too."""
    source, target = small_mouth(model, False), small_mouth(model, True)
    _, target_render = renderer.render(source, target[None], H, W)
    assert target_render.shape[0] == 2  # one target, one slice of mouth detail
    detail, box = GeometricReenactor()._mouth_detail(torch.from_numpy(target_render), 1, H, W)
    y0, y1, x0, x1 = box
    assert 0 < y1 - y0 < 100 and 0 < x1 - x0 < 100
    full = ReenactorRenderer(model, RendererConfig(downscale=1)).render(source, target[None])[1][0]
    interior = full[..., MOUTH_ALPHA] == 1.0
    assert interior.sum() > 300 and interior[y0:y1, x0:x1].sum() == interior.sum()
    shown = interior[y0:y1, x0:x1]
    got = detail[0].permute(1, 2, 0).numpy()[shown]
    np.testing.assert_array_equal(got, full[y0:y1, x0:x1, TEETH_SHADE : TEETH_SHADE + 3][shown])
    reduced = torch.from_numpy(target_render[:1, None, :, :, MOUTH_ALPHA])
    upsampled = torch.nn.functional.interpolate(
        reduced, scale_factor=2, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    assert (upsampled[interior] > 0.0).all()


def painted_incisors(model, mouth_detail: bool) -> tuple[np.ndarray, np.ndarray]:
    """The luma (rows, 2 x 8 + 1) of the painted upper central incisors on a grey canvas,
    columns from 8 px left of the face's midline to 8 px right of it, rows through the middle
    of the incisors; and the columns (3,) of the left incisor's middle, the midline and the
    right incisor's middle in it."""
    source, target = small_mouth(model, False), small_mouth(model, True)
    render = ReenactorRenderer(model, RendererConfig(mouth_detail=mouth_detail))
    source_render, target_render = render.render(source, target[None], H, W)
    canvas = np.full((H, W, 3), 128, np.uint8)
    inputs = [torch.from_numpy(a) for a in (canvas, source_render, target_render, target[None])]
    with torch.inference_mode():
        out = GeometricReenactor().eval()(*inputs).numpy()[0]
    teeth = model.neutral[np.unique(model.triangles_of("M_Teeth"))]
    front = teeth[(teeth[:, 2] > teeth[:, 2].max() - 0.6) & (teeth[:, 1] > -3.2)]
    offset = SMALL_SCALE * front[front[:, 0] > 0.0, 0].mean()  # midline to incisor middle, px
    midline = int(W / 2 - 0.5)  # the model's x = 0 lies at canvas x 191.5: the column left
    cols = np.round(W / 2 - 0.5 + np.array([-offset, 0.0, offset])).astype(int)
    full = ReenactorRenderer(model, RendererConfig(downscale=1)).render(source, target[None])[1][0]
    shown = (full[:, cols[[0, 2]], TEETH_SHADE] > 0.0).all(axis=1)
    rows = np.flatnonzero(shown & (full[:, cols, MOUTH_ALPHA] == 1.0).all(axis=1))
    assert rows.size >= 5, "the upper incisors must show"
    luma = out[rows[2:-2], midline - 8 : midline + 9].astype(np.float32) @ [0.299, 0.587, 0.114]
    return luma, cols - (midline - 8)


def test_separate_teeth_show_at_canvas_resolution(model):
    """An incisor 8 canvas pixels wide (4 render pixels): with the mouth rendered at canvas
    resolution the painted teeth are separate, the gap between the central incisors dark
    right at the midline and each incisor bright in its middle; from the half-resolution render
    alone the midline is no darker than the teeth."""
    luma, (left, middle, right) = painted_incisors(model, mouth_detail=True)
    darkest = np.argmin(luma[:, left : right + 1], axis=1) + left
    assert (np.abs(darkest - middle) <= 1).all()  # the gap is at the midline, within a pixel
    teeth = np.minimum(luma[:, left], luma[:, right])
    gap = luma[:, middle - 1 : middle + 2].min(axis=1)
    assert (gap < 0.5 * teeth).all()
    coarse, _ = painted_incisors(model, mouth_detail=False)
    coarse_gap = coarse[:, middle - 1 : middle + 2].min(axis=1)
    assert (coarse_gap > 0.8 * np.minimum(coarse[:, left], coarse[:, right])).all()
