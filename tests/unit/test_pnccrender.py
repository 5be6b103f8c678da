"""pnccrender (the C++ rasterizer) against an independent reference, and reenact.pncc."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pnccrender
from pnccrender import _core
from reenact.morphable import MorphableModel
from reenact.pncc import FACE_VERTEX_COUNT, PnccRenderer, ncc
from tests.unit import reference_rasterizer as ref


def posed(model: MorphableModel, height: int, width: int, yaw: float = 0.3, expression=None):
    """(N, 3) float32 pixel-space vertices of the ICT head, face area ~60% of the height."""
    expr = (
        np.zeros(model.expression_basis.shape[0], np.float32) if expression is None else expression
    )
    verts = model.shape(np.zeros(model.identity_basis.shape[0], np.float32), expr).astype(
        np.float64
    )
    c, s = np.cos(yaw), np.sin(yaw)
    verts = verts @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    face = model.neutral[:FACE_VERTEX_COUNT]
    scale = 0.6 * height / float(np.ptp(face[:, 1]))
    out = np.empty_like(verts)
    out[:, 0] = scale * verts[:, 0] + width / 2
    out[:, 1] = -scale * verts[:, 1] + height / 2 + scale * float(face[:, 1].mean())
    out[:, 2] = scale * verts[:, 2]
    return out.astype(np.float32)


def random_mesh(
    rng: np.random.Generator,
    height: int,
    width: int,
    n: int = 40,
    t: int = 70,
    quantise: bool = False,
):
    """Overlapping triangles, some off-image, plus degenerate ones and a NaN vertex."""
    verts = np.empty((n, 3), np.float32)
    verts[:, 0] = rng.uniform(-8, width + 8, n)
    verts[:, 1] = rng.uniform(-8, height + 8, n)
    verts[:, 2] = rng.uniform(-5, 5, n)
    if quantise:  # vertices on pixel centres and corners: edges through centres, exact ties
        verts[:, :2] = np.round(verts[:, :2] * 2) / 2
    tris = np.array([rng.choice(n, 3, replace=False) for _ in range(t)], np.int32)
    tris[0] = [tris[0, 0], tris[0, 0], tris[0, 1]]  # repeated vertex: zero area
    verts[n - 3 : n, :2] = [[1.5, 2.5], [5.5, 4.5], [9.5, 6.5]]  # collinear
    tris[1] = [n - 3, n - 2, n - 1]
    verts[n - 4, 1] = np.nan
    tris[2] = [n - 4, 0, 1]
    attrs = rng.normal(size=(n, 4)).astype(np.float32)
    return verts, tris, attrs


def assert_matches_reference(got: pnccrender.RenderResult, want, background: float = 0.0):
    image, depth, tri_id, bary = want
    np.testing.assert_array_equal(got.triangle_id, tri_id)
    covered = tri_id >= 0
    assert covered.any()
    np.testing.assert_allclose(got.depth[covered], depth[covered], rtol=1e-6, atol=1e-5)
    assert np.isneginf(got.depth[~covered]).all()
    np.testing.assert_allclose(got.image, image, atol=1e-4)
    assert (got.image[~covered] == background).all()
    if got.barycentrics is not None:
        np.testing.assert_allclose(got.barycentrics, bary, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cull", [False, True])
def test_random_meshes_match_reference(seed: int, cull: bool):
    rng = np.random.default_rng(seed)
    h, w = 24, 32
    verts, tris, attrs = random_mesh(rng, h, w, quantise=seed % 2 == 1)
    got = pnccrender.render(
        verts, tris, attrs, h, w, background=-2.0, return_barycentrics=True, cull_backfaces=cull
    )
    want = ref.rasterize(verts, tris, attrs, h, w, background=-2.0, cull_backfaces=cull)
    assert_matches_reference(got, want, background=-2.0)
    assert not np.isin(got.triangle_id, [0, 1, 2]).any()  # degenerate and NaN ones skipped
    assert got.image.dtype == np.float32 and got.depth.dtype == np.float32
    assert got.triangle_id.dtype == np.int32 and got.barycentrics.dtype == np.float32


def test_ict_head_matches_reference(model: MorphableModel):
    h, w = 64, 48
    verts = posed(model, h, w, yaw=0.4)
    colors = ncc(model)
    got = pnccrender.render(verts, model.triangles, colors, h, w, return_barycentrics=True)
    assert_matches_reference(got, ref.rasterize(verts, model.triangles, colors, h, w))
    assert (got.triangle_id >= 0).mean() > 0.3


def test_pixel_centres_fill_rule_and_linear_interpolation():
    # Right triangle (0,0) (2,0) (0,2): only the centre (0.5, 0.5) is strictly inside;
    # (1.5, 0.5) and (0.5, 1.5) lie on the hypotenuse, a bottom-right edge: not covered.
    verts = np.array([[0, 0, 1], [2, 0, 1], [0, 2, 1]], np.float32)
    got = pnccrender.render(verts, [[0, 1, 2]], verts[:, :2], 3, 3)
    assert (got.triangle_id == [[0, -1, -1], [-1, -1, -1], [-1, -1, -1]]).all()
    # Attributes equal to x, y reproduce the pixel centres (linear interpolation); vertices
    # on the 1/256-pixel grid, so that snapping does not move them.
    verts = np.array([[-3.25, -1.75, 0.0], [40.375, 2.125, 1.0], [5.625, 30.875, 2.0]], np.float32)
    got = pnccrender.render(verts, [[0, 1, 2]], verts, 24, 32)
    rows, cols = np.nonzero(got.triangle_id == 0)
    assert len(rows) > 200
    np.testing.assert_allclose(got.image[rows, cols, 0], cols + 0.5, atol=1e-4)
    np.testing.assert_allclose(got.image[rows, cols, 1], rows + 0.5, atol=1e-4)
    np.testing.assert_allclose(got.image[rows, cols, 2], got.depth[rows, cols], atol=1e-5)


def test_nearer_triangle_wins_and_backface_culling():
    # Two quads covering the whole 8 x 8 image, as triangle pairs: vertices 0-3 at z = 2
    # (near), 4-7 at z = 1 (far).
    square = np.array([[0, 0], [8, 0], [8, 8], [0, 8]], np.float32)
    verts = np.concatenate([np.c_[square, np.full(4, 2.0)], np.c_[square, np.full(4, 1.0)]])
    verts = verts.astype(np.float32)
    near_front = [[0, 3, 2], [0, 2, 1]]  # counter-clockwise as seen on screen: front faces
    near_back = [[0, 1, 2], [0, 2, 3]]  # clockwise: back faces
    far_front = [[4, 7, 6], [4, 6, 5]]
    for tris in ([*far_front, *near_front], [*near_front, *far_front]):
        got = pnccrender.render(verts, tris, verts[:, 2:], 8, 8)
        assert (got.depth == 2.0).all()  # the near quad wins, whatever the order
        assert np.isin(got.triangle_id, [tris.index(t) for t in near_front]).all()
    tris = [*far_front, *near_back]
    assert (pnccrender.render(verts, tris, verts[:, 2:], 8, 8).depth == 2.0).all()
    culled = pnccrender.render(verts, tris, verts[:, 2:], 8, 8, cull_backfaces=True)
    assert np.isin(culled.triangle_id, [0, 1]).all()  # the near back faces are culled
    assert (culled.depth == 1.0).all()


@pytest.mark.parametrize("quantise", [False, True])
def test_tiling_covers_every_pixel_exactly_once(quantise: bool):
    rng = np.random.default_rng(7)
    h, w, step = 30, 40, 5
    gx, gy = np.meshgrid(np.arange(-step, w + 2 * step, step), np.arange(-step, h + 2 * step, step))
    pts = np.stack([gx, gy], -1).astype(np.float64)
    pts[1:-1, 1:-1] += rng.uniform(-1.5, 1.5, pts[1:-1, 1:-1].shape)
    if quantise:  # vertices on pixel centres / corners: edges and vertices through centres
        pts = np.round(pts * 2) / 2
    ny, nx = gx.shape
    verts = np.c_[pts.reshape(-1, 2), rng.uniform(0, 1, ny * nx)].astype(np.float32)
    tris = []
    for i in range(ny - 1):
        for j in range(nx - 1):
            a, b, c, d = i * nx + j, i * nx + j + 1, (i + 1) * nx + j + 1, (i + 1) * nx + j
            quad = [[a, b, c], [a, c, d]] if rng.random() < 0.5 else [[a, b, d], [b, c, d]]
            tris += quad
    tris = np.array(tris, np.int32)
    corners = verts[tris, :2].astype(np.float64)
    edges = corners[:, 1:] - corners[:, :1]
    assert (np.cross(edges[:, 0], edges[:, 1]) > 0).all()  # no fold: a true tiling
    tris = np.array([rng.permutation(t) for t in tris], np.int32)  # both windings
    attrs = np.zeros((len(verts), 1), np.float32)
    covers = np.zeros((h, w), int)
    owner = np.full((h, w), -1)
    for t in range(len(tris)):
        alone = pnccrender.render(verts, tris[t : t + 1], attrs, h, w).triangle_id >= 0
        covers += alone
        owner[alone] = t
    assert (covers == 1).all(), f"{(covers == 0).sum()} gaps, {(covers > 1).sum()} double covers"
    whole = pnccrender.render(verts, tris, attrs, h, w)
    np.testing.assert_array_equal(whole.triangle_id, owner)


def test_batch_equals_single_calls_and_threads_do_not_matter(model: MorphableModel):
    h, w = 61, 47
    rng = np.random.default_rng(3)
    expr = rng.uniform(0, 1, (5, model.expression_basis.shape[0])).astype(np.float32)
    batch = np.stack(
        [posed(model, h, w, yaw=0.2 * i - 0.4, expression=e) for i, e in enumerate(expr)]
    )
    tris = model.triangles_of("M_Face")
    per_mesh = rng.normal(size=(5, model.n_vertices, 2)).astype(np.float32)
    shared = ncc(model)
    for attrs in (shared, per_mesh):
        results = [
            pnccrender.render(batch, tris, attrs, h, w, return_barycentrics=True, num_threads=n)
            for n in (1, 2, 3, 8)
        ]
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_array_equal(a, b)
        for i in range(len(batch)):
            single = pnccrender.render(
                batch[i],
                tris,
                attrs if attrs.ndim == 2 else attrs[i],
                h,
                w,
                return_barycentrics=True,
                num_threads=3,
            )
            for a, b in zip(results[0], single, strict=True):
                np.testing.assert_array_equal(a[i], b)
    assert results[0].image.shape == (5, h, w, 2)
    assert (results[0].triangle_id >= 0).any(axis=(1, 2)).all()


def test_concurrent_calls_from_python_threads(model: MorphableModel):
    verts = posed(model, 96, 72)
    tris, colors = model.triangles_of("M_Face"), ncc(model)
    expected = pnccrender.render(verts, tris, colors, 96, 72).image
    with ThreadPoolExecutor(4) as pool:
        images = list(
            pool.map(lambda _: pnccrender.render(verts, tris, colors, 96, 72).image, range(8))
        )
    for image in images:
        np.testing.assert_array_equal(image, expected)


def test_empty_inputs_and_skipped_vertices():
    verts = np.array([[0, 0, 0], [9, 0, 0], [0, 9, 0], [3e6, 0, 0]], np.float32)
    attrs = np.ones((4, 2), np.float32)
    got = pnccrender.render(verts, np.zeros((0, 3), np.int32), attrs, 5, 6, background=7.0)
    assert (got.triangle_id == -1).all() and (got.image == 7.0).all()
    assert got.barycentrics is None and got.image.shape == (5, 6, 2)
    far = pnccrender.render(verts, [[0, 3, 2]], attrs, 5, 6)  # |x| > MAX_COORDINATE: skipped
    assert (far.triangle_id == -1).all()
    near = pnccrender.render(verts, [[0, 1, 2]], attrs, 5, 6)
    assert (near.triangle_id == 0).sum() > 10
    empty = pnccrender.render(np.zeros((0, 4, 3), np.float32), [[0, 1, 2]], attrs, 5, 6)
    assert empty.image.shape == (0, 5, 6, 2) and empty.triangle_id.shape == (0, 5, 6)


def _good():
    verts = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0]], np.float32)
    return verts, np.array([[0, 1, 2]], np.int32), np.ones((3, 2), np.float32)


V, T, A = _good()


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((V[:, :2], T, A, 4, 4), {}, "vertices must have shape"),
        ((V[None, None], T, A, 4, 4), {}, "vertices must have shape"),
        ((V.ravel(), T, A, 4, 4), {}, "vertices must have shape"),
        ((V, T[:, :2], A, 4, 4), {}, "triangles must have shape"),
        ((V, T.ravel(), A, 4, 4), {}, "triangles must have shape"),
        ((V, T - 1, A, 4, 4), {}, r"triangles\[0, 0\] = -1 is outside"),
        ((V, T + 1, A, 4, 4), {}, r"triangles\[0, 2\] = 3 is outside"),
        ((V, T, A[:2], 4, 4), {}, "do not match vertices"),
        ((V, T, A.ravel(), 4, 4), {}, "attributes must have shape"),
        ((V, T, A[None], 4, 4), {}, r"need vertices of shape \(B, N, 3\)"),
        ((np.stack([V, V]), T, np.stack([A, A, A]), 4, 4), {}, "do not match vertices"),
        ((V, T, A, 0, 4), {}, "height and width"),
        ((V, T, A, 4, -1), {}, "height and width"),
        ((V, T, A, 4, 16385), {}, "height and width"),
        ((V, T, A, 4, 4), {"num_threads": -1}, "num_threads"),
        ((V, T, A, 4, 4), {"num_threads": 5000}, "num_threads"),
        ((V.astype(str), T, A, 4, 4), {}, "vertices must hold real numbers"),
        ((V, T.astype(np.float32), A, 4, 4), {}, "triangles must hold integers"),
        ((V, T.astype(np.int64) + 2**31, A, 4, 4), {}, "triangles holds values outside"),
    ],
)
def test_facade_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pnccrender.render(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((V.astype(np.float64), T, A, 4, 4), "vertices must have dtype float32"),
        ((V, T.astype(np.int64), A, 4, 4), "triangles must have dtype int32"),
        ((V, T, A.astype(np.float16), 4, 4), "attributes must have dtype float32"),
        ((V.astype(">f4"), T, A, 4, 4), r"vertices must have dtype float32 .*got >f4"),
        ((np.hstack([V, V])[:, :3], T, A, 4, 4), "vertices must be C-contiguous"),
        ((V, np.asfortranarray(np.vstack([T, T])), A, 4, 4), "triangles must be C-contiguous"),
        ((V.tolist(), T, A, 4, 4), "vertices must be a numpy.ndarray"),
        ((V, T, None, 4, 4), "attributes must be a numpy.ndarray"),
        ((V, T, A, 4, 0), "height and width"),
        ((V, T, A, 4, 4, 0.0, False, False, -3), "num_threads"),
    ],
)
def test_core_rejects_bad_arguments_without_copying(args, match):
    with pytest.raises(ValueError, match=match):
        _core.render(*args)


def test_core_rejects_misaligned_arrays():
    raw = np.zeros(V.nbytes + 1, np.uint8)
    misaligned = raw[1:].view(np.float32).reshape(V.shape)
    misaligned[...] = V
    with pytest.raises(ValueError, match="not aligned"):
        _core.render(misaligned, T, A, 4, 4)


def test_ncc_and_pncc_of_the_ict_face(model: MorphableModel):
    code = ncc(model)
    assert code.shape == (model.n_vertices, 3) and code.dtype == np.float32
    assert code.min() >= 0 and code.max() <= 1
    np.testing.assert_allclose(code[:FACE_VERTEX_COUNT].min(0), 0, atol=1e-6)
    np.testing.assert_allclose(code[:FACE_VERTEX_COUNT].max(0), 1, atol=1e-6)

    h, w = 128, 96
    verts = posed(model, h, w, yaw=0.0)
    pncc = PnccRenderer.from_model(model)
    assert len(pncc.triangles) == 18460
    result = pncc.render(np.stack([verts, verts]), h, w)
    assert result.image.shape == (2, h, w, 3)
    image, mask = result.image[0], result.triangle_id[0] >= 0
    assert 0.15 < mask.mean() < 0.6
    assert (image[~mask] == 0).all() and image[mask].min() >= 0 and image[mask].max() <= 1
    # Red follows image x, green decreases with image y (model +y up), blue peaks at the
    # front-most face point (the nose tip).
    rows, cols = np.nonzero(mask)
    assert np.corrcoef(cols, image[rows, cols, 0])[0, 1] > 0.95
    assert np.corrcoef(rows, image[rows, cols, 1])[0, 1] < -0.95
    tip = verts[np.argmax(verts[:FACE_VERTEX_COUNT, 2])]
    assert image[int(tip[1]), int(tip[0]), 2] > 0.9
    head = PnccRenderer.from_model(model, region="head").render(verts, h, w)
    assert (head.triangle_id >= 0).sum() > mask.sum()
    with pytest.raises(ValueError, match="region"):
        PnccRenderer.from_model(model, region="torso")  # type: ignore[arg-type]
