"""The painted ICT head: brows and lips on request; vertex normals."""

from __future__ import annotations

import numpy as np
import torch

from reenact.correspondence import view_params
from reenact.head_render import (
    BROW_RGB,
    LIP_RGB,
    MATERIAL_COLOURS,
    HeadPainter,
    corner_incidence,
    vertex_normals_torch,
)


def test_features_colour_the_brows_and_lips_and_nothing_else(model):
    plain = HeadPainter(model)
    featured = HeadPainter(model, features=True)
    marks = model.landmarks_68
    skin = MATERIAL_COLOURS["M_Face"]
    np.testing.assert_array_equal(plain.vertex_colour[marks[17:27]], np.tile(skin, (10, 1)))
    np.testing.assert_array_equal(featured.vertex_colour[marks[17:27]], np.tile(BROW_RGB, (10, 1)))
    np.testing.assert_array_equal(featured.vertex_colour[marks[48:60]], np.tile(LIP_RGB, (12, 1)))
    for index in (8, 30, 36, 45):  # chin, nose tip, eye corners: still skin
        np.testing.assert_array_equal(featured.vertex_colour[marks[index]], skin)
    changed = np.any(featured.vertex_colour != plain.vertex_colour, axis=1)
    assert 0 < changed.sum() < 0.05 * model.n_vertices


def test_painted_brows_are_darker_than_the_forehead(model):
    params = view_params(0.0, 0.0, 512, 14.0)
    vertices = model.decode(params)[0]
    image = HeadPainter(model, features=True).paint(vertices, 512, 512).image.astype(int)
    brow = np.rint(vertices[model.landmarks_68[19], :2]).astype(int)  # x, y of a brow point
    forehead = brow - [0, 25]
    assert image[brow[1], brow[0]].sum() < image[forehead[1], forehead[0]].sum() - 150


def test_vertex_normals_are_the_area_weighted_face_normals_with_or_without_incidence():
    # a tent: two triangles meeting at the ridge 0-1, one twice the other's area; vertex 4 is
    # on no triangle
    v = torch.tensor(
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, -2.0, 2.0], [5.0, 5.0, 5.0]]
    )
    triangles = np.array([[0, 1, 2], [1, 0, 3]])
    corners = [torch.from_numpy(c.astype(np.int64)) for c in triangles.T]
    # face normals (cross products, length = twice the area): (0, -1, 1) and (0, 2, 2)
    a, b = np.array([0.0, -1.0, 1.0]), np.array([0.0, 2.0, 2.0])
    ridge = (a + b) / np.linalg.norm(a + b)
    expected = np.array([ridge, ridge, a / np.linalg.norm(a), b / np.linalg.norm(b), [0, 0, 0]])
    incidence = corner_incidence(corners, 5)
    for normals in (vertex_normals_torch(v, corners), vertex_normals_torch(v, corners, incidence)):
        # float32 sums and square roots of numbers near 1: within 1e-6
        np.testing.assert_allclose(normals.numpy(), expected, atol=1e-6)
