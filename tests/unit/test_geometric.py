"""The geometric reenactor: renderer channel layout and the warp, against independent answers."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from reenact.geometric import (
    COVERAGE,
    EXPRESSION_SHADE,
    MOUTH_ALPHA,
    MOUTH_SHADES,
    N_CHANNELS,
    SRC_XY,
    TEETH_SHADE,
    WARP_WEIGHT,
    ReenactorRenderer,
    RendererConfig,
    mouth_shades,
)
from reenact.morphable import EXPR_SLICE, N_PARAMS, ROT_SLICE, TRANS_SLICE, MorphableModel
from reenact.reenactor import DEFAULTS, GeometricReenactor

H, W = 512, 384
D = RendererConfig().downscale  # canvas pixels per render pixel
h, w = H // D, W // D  # the render size


def to_canvas(render: np.ndarray) -> np.ndarray:
    """(h, w, ...) render values bilinearly upsampled to the (H, W, ...) canvas, as the
    reenactor does (``F.interpolate(..., align_corners=False)`` is cv2's INTER_LINEAR)."""
    return cv2.resize(
        np.ascontiguousarray(render, np.float32), (W, H), interpolation=cv2.INTER_LINEAR
    )


@pytest.fixture(scope="module")
def reenactor() -> GeometricReenactor:
    return GeometricReenactor().eval()


@pytest.fixture(scope="module")
def canvas() -> np.ndarray:
    """A smooth, textured (H, W, 3) uint8 picture: bilinear resampling of it is well-defined."""
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (H, W, 3)).astype(np.float32), (0, 0), 3)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    stripes = 60 * np.sin(xs / 9.0)[..., None] + 50 * np.cos(ys / 13.0)[..., None]
    image = 128 + 3 * (noise - noise.mean()) + stripes * np.array([1.0, -0.6, 0.4])
    return np.clip(image, 0, 255).astype(np.uint8)


def face_params(model: MorphableModel, yaw_deg: float = 0.0, jaw_open: float = 0.0) -> np.ndarray:
    """(162,) mean face, face area about 2/3 of the canvas height, head above centre."""
    params = np.zeros(N_PARAMS, np.float32)
    params[ROT_SLICE.start + 1] = np.deg2rad(yaw_deg)
    params[TRANS_SLICE] = (W / 2, 240.0, 0.0)
    params[-1] = 8.0
    params[EXPR_SLICE.start + model.expression_names.index("jawOpen")] = jaw_open
    return params


def run(renderer, reenactor, canvas, source, targets):
    """(K, H, W, 3) uint8 reenactments and the renders."""
    source_render, target_render = renderer.render(source, targets, H, W)
    with torch.inference_mode():
        out = reenactor(
            torch.from_numpy(canvas),
            torch.from_numpy(source_render),
            torch.from_numpy(target_render),
            torch.from_numpy(np.asarray(targets, np.float32)),
        )
    return out.numpy(), source_render, target_render


def test_render_channels(model, renderer):
    source = face_params(model)
    target = source.copy()
    target[TRANS_SLICE.start] += 6.25  # 6.25 px right
    source_render, target_render = renderer.render(source, np.stack([source, target]), H, W)
    assert source_render.shape == (h, w, N_CHANNELS) and source_render.dtype == np.float32
    # after the two target renders the renderer packs the mouth at canvas resolution
    assert target_render.shape[0] >= 2 and target_render.shape[1:] == (h, w, N_CHANNELS)
    target_render = target_render[:2]
    # Render pixel (i, j) samples the canvas at (D j + (D - 1) / 2, D i + (D - 1) / 2).
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) * D + (D - 1) / 2
    own = np.stack([xs, ys], axis=-1)
    drawn = source_render[..., COVERAGE] > 0.5
    assert drawn.mean() > 0.1
    # Target == source: the correspondence is the pixel itself (the source projection), up to
    # the rasterizer's snapping of vertices to 1/256 of a render pixel.
    snap = D / 256
    np.testing.assert_allclose(target_render[0][drawn][:, SRC_XY], own[drawn], atol=snap)
    np.testing.assert_array_equal(target_render[0], source_render)
    # Moved 6.25 px right: each pixel of the face lies 6.25 px to the left in the source (the
    # lower neck is held where the source has it: the head turns and moves on the neck).
    moved = target_render[1][..., WARP_WEIGHT] > 0.0
    expected = own[moved] - [6.25, 0.0]
    np.testing.assert_allclose(target_render[1][moved][:, SRC_XY], expected, atol=snap)
    for channel in (WARP_WEIGHT, MOUTH_ALPHA):
        values = target_render[..., channel]
        assert values.min() >= 0.0 and values.max() <= 1.0
    assert target_render[..., WARP_WEIGHT].max() == pytest.approx(1.0)
    shades = target_render[..., MOUTH_SHADES]
    assert shades.min() >= 0.0 and shades.sum(axis=-1).max() <= 1.0 + 1e-6


def test_render_downscale_samples_the_full_resolution_render(model):
    # The reduced render is the full one sampled at its own grid: on the front face (weight 1,
    # away from edges) the correspondence of the full render, interpolated at the canvas point
    # a render pixel stands for, is the reduced render's.
    source = face_params(model, 10.0)
    target = face_params(model, -15.0, 0.5)
    full = ReenactorRenderer(model, RendererConfig(downscale=1)).render(source, target[None])[1][0]
    reduced = ReenactorRenderer(model).render(source, target[None])[1][0]
    assert full.shape == (H, W, N_CHANNELS) and reduced.shape == (h, w, N_CHANNELS)
    face = cv2.erode((full[..., WARP_WEIGHT] > 0.999).astype(np.uint8), np.ones((5, 5), np.uint8))
    face = cv2.resize(face, (w, h), interpolation=cv2.INTER_NEAREST) > 0
    face &= reduced[..., WARP_WEIGHT] > 0.999
    assert face.sum() > 1000
    sampled = cv2.resize(full[..., SRC_XY], (w, h), interpolation=cv2.INTER_LINEAR)  # 2x2 means
    error = np.abs(reduced[face][:, SRC_XY] - sampled[face]).max(axis=1)
    assert np.percentile(error, 99) < 0.05  # the mean of 2x2 samples of a piecewise-linear map
    assert error.max() < 0.25  # … bends at the triangle edges


@pytest.mark.parametrize("yaw", [0.0, 35.0])
@pytest.mark.parametrize("jaw_open", [0.0, 0.6])
def test_identity_target_returns_the_source(model, renderer, reenactor, canvas, yaw, jaw_open):
    # The correspondences equal the pixel positions up to float rounding (~1e-4 px) and the
    # extension is 0 where they are, so every pixel samples its own centre: the photo comes back,
    # mouth interior included (the source shows it, so it is taken from the source).
    source = face_params(model, yaw, jaw_open)
    out, _, _ = run(renderer, reenactor, canvas, source, source[None])
    diff = np.abs(out[0].astype(int) - canvas.astype(int))
    assert diff.mean() < 0.05
    assert np.percentile(diff, 99.9) <= 1


def test_far_background_is_unchanged(model, renderer, reenactor, canvas):
    source = face_params(model)
    targets = np.stack([face_params(model, 15.0, 1.0), face_params(model, -10.0, 0.5)])
    out, source_render, target_render = run(renderer, reenactor, canvas, source, targets)
    assert (out != canvas).any(axis=-1).mean() > 0.05  # it did move things
    drawn = (target_render[..., COVERAGE] > 0).any(axis=0) | (source_render[..., COVERAGE] > 0)
    rows, cols = np.nonzero(to_canvas(drawn.astype(np.float32)) > 0)
    margin = DEFAULTS.reach_px + 32  # reach, rounded up to its 16 px dilation grid, + upsampling
    far = np.ones((H, W), bool)
    far[
        max(rows.min() - margin, 0) : rows.max() + margin,
        max(cols.min() - margin, 0) : cols.max() + margin,
    ] = False
    assert far.sum() > 1000
    np.testing.assert_array_equal(out[:, far], np.broadcast_to(canvas[far], out[:, far].shape))


@pytest.mark.parametrize(("shift", "roll_deg"), [((7.3, -4.6), 0.0), ((0.0, 0.0), 9.0)])
def test_rigid_motion_matches_warp_affine(model, renderer, reenactor, canvas, shift, roll_deg):
    source = face_params(model)
    target = source.copy()
    target[TRANS_SLICE.start : TRANS_SLICE.start + 2] += shift
    target[ROT_SLICE.start + 2] = np.deg2rad(roll_deg)
    out, _, target_render = run(renderer, reenactor, canvas, source, target[None])
    # Image-space map source -> target: p' = A (p - c) + c + shift, c = the head's translation
    # (rotation centre), A = F Rz F (a roll by -roll in the y-down image).
    c, s = np.cos(np.deg2rad(roll_deg)), np.sin(np.deg2rad(roll_deg))
    a = np.array([[c, s], [-s, c]])
    centre = source[TRANS_SLICE][:2].astype(np.float64)
    forward = np.hstack([a, (centre - a @ centre + shift)[:, None]])
    expected = cv2.warpAffine(canvas, forward, (W, H), flags=cv2.INTER_LINEAR)
    face = to_canvas(target_render[0][..., WARP_WEIGHT]) > 0.999
    face &= to_canvas(target_render[0][..., MOUTH_ALPHA]) == 0.0
    face = cv2.erode(face.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert face.sum() > 4000
    diff = np.abs(out[0][face].astype(int) - expected[face].astype(int))
    assert diff.mean() < 0.5  # cv2 rounds its bilinear weights to 1/32
    assert diff.max() <= 3


def test_jaw_open_moves_the_mouth_and_paints_the_interior(model, renderer, reenactor, canvas):
    source = face_params(model)
    target = face_params(model, jaw_open=1.0)
    out, source_render, target_render = run(renderer, reenactor, canvas, source, target[None])
    alpha = to_canvas(target_render[0][..., MOUTH_ALPHA])
    interior = cv2.erode((alpha > 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    interior &= to_canvas(source_render[..., MOUTH_ALPHA]) == 0.0
    assert interior.sum() > 250
    rows, cols = np.nonzero(interior)
    box = (slice(rows.min() - 20, rows.max() + 20), slice(cols.min() - 20, cols.max() + 20))
    moved = np.abs(out[0][box].astype(int) - canvas[box].astype(int)).mean()
    assert moved > 10
    # the source's mouth is closed (no teeth to take a colour from): the default colours, on
    # the shades at canvas resolution (the renderer's mouth detail)
    colours = 255.0 * np.array([DEFAULTS.teeth_rgb, DEFAULTS.gums_rgb, DEFAULTS.cavity_rgb])
    full = ReenactorRenderer(model, RendererConfig(downscale=1)).render(source, target[None])[1]
    painted = full[0][..., MOUTH_SHADES][interior] @ colours
    close = np.abs(out[0][interior] - painted).max(axis=1) <= 3
    assert close.mean() > 0.95
    assert out[0][interior].mean() < canvas[interior].mean() - 20  # a darker cavity


BARED_TEETH = {
    "jawOpen": 0.3,
    "mouthUpperUp_L": 1.0,
    "mouthUpperUp_R": 1.0,
    "mouthLowerDown_L": 1.0,
    "mouthLowerDown_R": 1.0,
}


def source_teeth(renderer, model, bared: bool):
    """The source render of the mean face, lips parted to bare the teeth or closed, and its lit
    teeth pixels (mask)."""
    source = face_params(model)
    for name, weight in BARED_TEETH.items() if bared else ():
        source[EXPR_SLICE.start + model.expression_names.index(name)] = weight
    source_render, _ = renderer.render(source, source[None], H, W)
    teeth = (source_render[..., TEETH_SHADE] > DEFAULTS.teeth_min_shade) & (
        source_render[..., MOUTH_ALPHA] > 0.99
    )
    return source_render, teeth


def mouth_colours(reenactor, canvas, source_render) -> np.ndarray:
    with torch.inference_mode():
        return reenactor._mouth_colours(
            torch.from_numpy(canvas), torch.from_numpy(source_render)
        ).numpy()


def test_teeth_take_the_colour_of_the_photos_teeth(model, renderer, reenactor, canvas):
    source_render, teeth = source_teeth(renderer, model, bared=True)
    assert teeth.sum() >= DEFAULTS.teeth_min_pixels
    photo = canvas.copy()
    ys, xs = np.nonzero(teeth)
    rows, cols = D * ys + (D - 1) // 2, D * xs + (D - 1) // 2  # the canvas pixel of each
    grow = np.zeros(canvas.shape[:2], np.uint8)
    grow[rows, cols] = 1
    grow = cv2.dilate(grow, np.ones((5, 5), np.uint8)).astype(bool)
    photo[grow] = (180, 170, 150)  # greyish teeth, as a photo shows them
    colours = mouth_colours(reenactor, photo, source_render)
    # the photo's colour divided by the light the renderer puts on those teeth
    expected = np.array([180.0, 170.0, 150.0]) / np.median(source_render[..., TEETH_SHADE][teeth])
    expected *= 255.0 / max(255.0, expected.max())
    np.testing.assert_allclose(colours[0], expected, rtol=0.05)
    defaults = 255.0 * np.array([DEFAULTS.gums_rgb, DEFAULTS.cavity_rgb])
    np.testing.assert_allclose(colours[1:], defaults, rtol=1e-6)


def test_teeth_keep_the_default_colour_without_teeth_in_the_photo(model, renderer, canvas):
    untinted = GeometricReenactor(replace(DEFAULTS, teeth_skin_tint=0.0)).eval()
    default = 255.0 * np.array(DEFAULTS.teeth_rgb)
    closed_render, teeth = source_teeth(renderer, model, bared=False)
    assert teeth.sum() < DEFAULTS.teeth_min_pixels
    np.testing.assert_allclose(mouth_colours(untinted, canvas, closed_render)[0], default)
    # teeth in the render, but the photo shows red there (lips, say), dark grey (shadow, a
    # cavity under a misplaced fit) or blue-grey (a cool band reads as braces): not teeth
    open_render, _ = source_teeth(renderer, model, bared=True)
    for rgb in ((200, 60, 60), (40, 40, 40), (190, 200, 215)):
        photo = np.zeros_like(canvas)
        photo[...] = rgb
        np.testing.assert_allclose(mouth_colours(untinted, photo, open_render)[0], default)


@pytest.mark.parametrize("skin", [(225, 170, 140), (120, 80, 60), (160, 160, 170)])
def test_default_teeth_take_the_skins_white_balance(model, renderer, reenactor, skin):
    closed_render, _ = source_teeth(renderer, model, bared=False)
    photo = np.zeros((H, W, 3), np.uint8)
    photo[...] = skin
    teeth = mouth_colours(reenactor, photo, closed_render)[0]
    default = 255.0 * np.array(DEFAULTS.teeth_rgb)
    luma = np.array([0.299, 0.587, 0.114])
    assert teeth @ luma == pytest.approx(default @ luma, rel=1e-4)  # brightness kept
    skin_warmth = skin[0] / skin[2]  # red over blue of the skin …
    assert np.sign(teeth[0] / teeth[2] - default[0] / default[2]) == np.sign(skin_warmth - 1.0)


def test_each_mouth_vertex_is_shaded_in_its_materials_channel(renderer):
    material = renderer.mouth_material
    teeth, gums = renderer.is_teeth, renderer.is_gums & ~renderer.is_teeth
    socket = renderer.is_mouth & ~renderer.is_teeth & ~renderer.is_gums
    assert teeth.any() and gums.any() and socket.any()
    np.testing.assert_array_equal(material[teeth], np.tile([1.0, 0.0, 0.0], (teeth.sum(), 1)))
    np.testing.assert_array_equal(material[gums], np.tile([0.0, 1.0, 0.0], (gums.sum(), 1)))
    np.testing.assert_array_equal(material[socket], np.tile([0.0, 0.0, 1.0], (socket.sum(), 1)))
    assert not material[~renderer.is_mouth].any()


def test_mouth_light_model():
    config = RendererConfig()
    material = np.eye(3, dtype=np.float32)  # a tooth, a gum and a socket vertex
    facing = np.full((2, 3), 0.5, np.float32)
    depth = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]], np.float32)
    shades = mouth_shades(material, facing, depth, config)
    assert shades.shape == (2, 3, 3)
    np.testing.assert_array_equal(shades * (1 - np.eye(3)), 0.0)  # only their own channel
    light = np.diagonal(shades, axis1=1, axis2=2)  # (2 depths, 3 materials)
    at_front = config.teeth_ambient + (1 - config.teeth_ambient) * 0.5
    assert light[0, 0] == pytest.approx(at_front)
    assert light[1, 0] == pytest.approx(at_front * np.exp(-2.0 / config.teeth_falloff_cm))
    assert light[0, 0] > light[0, 2] and light[1, 0] > light[1, 2]  # teeth lit more
    assert (light[1] < light[0]).all()  # deeper is darker


def test_batch_equals_single_calls(model, renderer, reenactor, canvas):
    source = face_params(model)
    targets = np.stack(
        [face_params(model, jaw_open=0.8), face_params(model, 20.0), face_params(model, -5.0)]
    )
    batch, _, _ = run(renderer, reenactor, canvas, source, targets)
    for k in range(len(targets)):
        single, _, _ = run(renderer, reenactor, canvas, source, targets[k : k + 1])
        assert np.abs(single[0].astype(int) - batch[k].astype(int)).max() <= 1


def test_scripted_equals_eager(model, renderer, reenactor, canvas):
    source = face_params(model, 10.0)
    targets = np.stack([face_params(model, 25.0, 0.7), face_params(model, 0.0, 0.3)])
    eager, source_render, target_render = run(renderer, reenactor, canvas, source, targets)
    scripted = torch.jit.script(GeometricReenactor())
    with torch.inference_mode():
        out = scripted(
            torch.from_numpy(canvas),
            torch.from_numpy(source_render),
            torch.from_numpy(target_render),
            torch.from_numpy(targets),
        )
    np.testing.assert_array_equal(out.numpy(), eager)


def test_source_render_has_no_expression_shading(model, renderer):
    source = face_params(model, 20.0, 0.4)
    source[EXPR_SLICE.start + model.expression_names.index("browDown_L")] = 1.0
    source_render, target_render = renderer.render(source, source[None], H, W)
    assert not source_render[..., EXPRESSION_SHADE].any()
    assert not target_render[0, ..., EXPRESSION_SHADE].any()  # same expression: no change


def full_frame_and_boxed(renderer, canvas, source, targets):
    """The (K, H, W, 3) uint8 outputs of the full-frame (export) path and the boxed one."""
    source_render, target_render = renderer.render(source, targets, H, W)
    inputs = [
        torch.from_numpy(a)
        for a in (canvas, source_render, target_render, np.asarray(targets, np.float32))
    ]
    with torch.inference_mode():
        full = GeometricReenactor(full_frame=True).eval()(*inputs).numpy()
        boxed = GeometricReenactor().eval()(*inputs).numpy()
    return full, boxed


@pytest.mark.parametrize("mouth_detail", [True, False])
def test_full_frame_equals_the_boxed_path(model, canvas, mouth_detail):
    """With and without the mouth detail after the target renders."""
    renderer = ReenactorRenderer(model, RendererConfig(mouth_detail=mouth_detail))
    source = face_params(model, 10.0)
    targets = [face_params(model, 25.0, 0.8), face_params(model, -15.0, 0.3), source]
    for name, weight in BARED_TEETH.items():  # lips parted: a mouth box, its blurs and shadow
        targets[1][EXPR_SLICE.start + model.expression_names.index(name)] = weight
    full, boxed = full_frame_and_boxed(renderer, canvas, source, np.stack(targets))
    assert (boxed != canvas).any(axis=-1).mean() > 0.05  # it moved things, and painted a mouth
    # Outside the moving box the extension is zero and zero displacement samples pixel centres,
    # so the whole canvas warped equals the box warped and the source pasted around it, bit for
    # bit: the same kernels on the same values
    np.testing.assert_array_equal(full, boxed)


def test_full_frame_keeps_the_source_when_nothing_is_drawn(model, renderer, canvas):
    source = face_params(model)
    source_render, target_render = renderer.render(source, source[None], H, W)
    inputs = [
        torch.from_numpy(a)
        for a in (canvas, source_render, np.zeros_like(target_render), source[None])
    ]
    with torch.inference_mode():
        full = GeometricReenactor(full_frame=True).eval()(*inputs).numpy()
        boxed = GeometricReenactor().eval()(*inputs).numpy()
    np.testing.assert_array_equal(boxed[0], canvas)  # the boxed path's early return
    np.testing.assert_array_equal(full, boxed)


def static_mouth_colours(canvas, source_render, **options) -> tuple[np.ndarray, np.ndarray]:
    """The mouth colours (3, 3) of the boxed path's selections and of the static formulation."""
    reenactor = GeometricReenactor(replace(DEFAULTS, **options)).eval()
    with torch.inference_mode():
        args = torch.from_numpy(canvas), torch.from_numpy(source_render)
        return reenactor._mouth_colours(*args).numpy(), reenactor._mouth_colours_static(
            *args
        ).numpy()


@pytest.mark.parametrize("teeth_skin_tint", [DEFAULTS.teeth_skin_tint, 0.0])
def test_static_mouth_colours_equal_the_selections(model, renderer, canvas, teeth_skin_tint):
    open_render, teeth = source_teeth(renderer, model, bared=True)
    closed_render, _ = source_teeth(renderer, model, bared=False)
    grey_teeth = canvas.copy()
    ys, xs = np.nonzero(teeth)
    grey_teeth[D * ys + (D - 1) // 2, D * xs + (D - 1) // 2] = (180, 170, 150)
    cases = [(grey_teeth, open_render), (canvas, closed_render), (canvas, open_render)]
    cases += [(np.full_like(canvas, rgb), open_render) for rgb in ((200, 60, 60), (0, 0, 0))]
    found = []
    for photo, render in cases:
        selected, static = static_mouth_colours(photo, render, teeth_skin_tint=teeth_skin_tint)
        # medians pick the same element; the skin mean sums the same values in another order
        # (a masked sum over all pixels, not a sum over the selection): float32 rounding, a
        # relative 1e-6 at most
        np.testing.assert_allclose(static, selected, rtol=1e-6)
        found.append(not np.allclose(selected[0], 255.0 * np.array(DEFAULTS.teeth_rgb)))
    assert found[0] and not found[-1]  # the photo's teeth taken in one case, not in another


def test_masked_median_and_quantile_are_torchs():
    from reenact.reenactor import _masked_median, _masked_quantile

    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 50, (101, 3), generator=generator).to(torch.float32)  # with ties
    for count in (1, 2, 12, 57, 100, 101):
        mask = torch.zeros(101, dtype=torch.bool)
        mask[torch.randperm(101, generator=generator)[:count]] = True
        selected = values[mask]
        torch.testing.assert_close(
            _masked_median(values, mask), selected.median(dim=0).values, rtol=0, atol=0
        )
        noisy = values[:, 0] + torch.rand(101, generator=generator)
        torch.testing.assert_close(
            _masked_quantile(noisy, mask, 0.25),
            torch.quantile(noisy[mask], 0.25),
            rtol=0,
            atol=0,
        )


def test_box_mask_is_the_bounding_box():
    from reenact.reenactor import _bounding_box, _box_mask

    generator = torch.Generator().manual_seed(1)
    for density, margin in ((0.0, 1), (0.002, 0), (0.002, 1), (0.05, 2)):
        mask = (torch.rand(40, 30, generator=generator) < density).to(torch.float32)
        mask[0, 0] = 0.0
        box = _bounding_box(mask, margin)
        expected = torch.zeros(40, 30, dtype=torch.bool)
        expected[box[0] : box[1], box[2] : box[3]] = True
        torch.testing.assert_close(_box_mask(mask, margin), expected, rtol=0, atol=0)


def test_scripted_module_has_only_the_boxed_path():
    """The export path is Python only: the served TorchScript keeps the aten upsampling kernel
    (torch 2.5.1's libtorch loads it, tests/unit/test_torch_compat.py) and scripts whatever the
    flag says."""
    graph = str(torch.jit.script(GeometricReenactor(full_frame=True)).inlined_graph)
    assert "aten::upsample_bilinear2d" in graph
    assert "interpolate" not in graph and "aten::sort" not in graph
