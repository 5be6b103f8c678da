"""The FaceMesh ↔ ICT correspondence table: well-formed, and accurate on unseen heads."""

from __future__ import annotations

import numpy as np
import pytest

from reenact import correspondence as corr
from reenact.landmarks.detection import FaceLandmarker
from reenact.morphable import MATERIAL_NAMES


@pytest.fixture(scope="module")
def landmarker():
    return FaceLandmarker.from_assets()


def test_committed_table_is_well_formed(model):
    table = corr.Correspondence.load()
    assert table.tri_vertices.shape == (468, 3) and table.barycentric.shape == (468, 3)
    np.testing.assert_allclose(table.barycentric.sum(axis=1), 1.0, atol=1e-5)
    assert (table.barycentric >= 0).all()
    face = {tuple(t) for t in model.triangles_of("M_Face").tolist()}
    assert all(tuple(t) in face for t in table.tri_vertices.tolist())
    assert MATERIAL_NAMES[0] == "M_Face"


def test_eye_and_mouth_landmarks_sit_on_the_matching_parts_of_the_mean_face(model):
    points = corr.Correspondence.load().points(model.neutral)
    right_eye = points[list(corr.RIGHT_EYE_CORNERS)].mean(axis=0)
    left_eye = points[list(corr.LEFT_EYE_CORNERS)].mean(axis=0)
    upper_lip, lower_lip = points[13], points[14]  # FaceMesh inner-lip midpoints
    # the subject's right eye is on the model's -x side (model +x is the subject's left)
    assert right_eye[0] < 0 < left_eye[0]
    assert 5.5 < left_eye[0] - right_eye[0] < 7.5  # cm between eye centres of an adult
    assert upper_lip[1] < right_eye[1] - 5 and lower_lip[1] < upper_lip[1]


@pytest.mark.parametrize(
    ("seed", "yaw", "pitch"), [(11, 15.0, -5.0), (12, -18.0, 8.0), (13, 0.0, 0.0)]
)
def test_projection_matches_facemesh_on_unseen_painted_heads(model, landmarker, seed, yaw, pitch):
    """Other identities, expressions and poses than the table was measured on."""
    rng = np.random.default_rng(seed)
    params = corr.view_params(yaw, pitch, 512, 12.5)
    params[0, :100] = rng.normal(size=100)
    params[0, 100:155] = rng.uniform(0, 0.4, size=55) * (rng.uniform(size=55) < 0.15)
    error = corr.reprojection_error(model, landmarker, corr.Correspondence.load(), params)
    assert error < 0.05  # FaceMesh itself wobbles by ~2-3 % of the eye distance on renders


def test_closest_surface_points_on_a_known_mesh():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    points = np.array([[0.2, 0.2, 1.0], [0.9, 0.9, -2.0], [3.0, 0.5, 0.0]])
    rows, bary = corr.closest_surface_points(points, vertices, triangles)
    found = np.einsum("lkc,lk->lc", vertices[triangles[rows]], bary)
    np.testing.assert_allclose(found, [[0.2, 0.2, 0], [0.9, 0.9, 0], [1.0, 0.5, 0]], atol=1e-9)
