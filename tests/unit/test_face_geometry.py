"""Frame changes between photo, landmark crop and canvas."""

from __future__ import annotations

import numpy as np
import pytest

from reenact import face_geometry as fg
from reenact.morphable import N_PARAMS, MorphableModel


@pytest.fixture(scope="module")
def model():
    return MorphableModel.load()


def similarity(scale, angle, tx, ty):
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def random_params(rng, n):
    p = np.zeros((n, N_PARAMS), np.float32)
    p[:, :100] = rng.normal(size=(n, 100))
    p[:, 100:155] = rng.uniform(0, 1, size=(n, 55)) * 0.3
    p[:, 155:158] = rng.uniform(-0.4, 0.4, size=(n, 3))
    p[:, 158:161] = rng.uniform(50, 150, size=(n, 3))
    p[:, 161] = rng.uniform(5, 12, size=n)
    return p


@pytest.mark.parametrize("angle", [0.0, 0.3, -1.2, 2.5])
def test_transformed_params_decode_to_the_transformed_mesh(model, angle):
    rng = np.random.default_rng(1)
    params = random_params(rng, 3)
    affine = similarity(1.7, angle, 40.0, -25.0)
    ids = np.arange(0, model.n_vertices, 97)
    expected = fg.apply_affine(affine, model.decode(params, ids))
    got = model.decode(fg.transform_params(params, affine), ids)
    np.testing.assert_allclose(got, expected, atol=2e-2 * 1.7 * 12)


def test_round_trip_through_the_inverse(model):
    params = random_params(np.random.default_rng(2), 2)
    affine = similarity(0.6, 0.9, 10.0, 5.0)
    back = fg.transform_params(fg.transform_params(params, affine), fg.invert_affine(affine))
    ids = np.arange(0, model.n_vertices, 131)
    np.testing.assert_allclose(model.decode(back, ids), model.decode(params, ids), atol=1e-2)


def test_shear_and_reflection_are_refused():
    with pytest.raises(ValueError, match="similarity"):
        fg.similarity_parts(np.array([[1.0, 0.5, 0], [0, 1.0, 0]]))
    with pytest.raises(ValueError, match="orientation"):
        fg.similarity_parts(np.array([[-1.0, 0, 0], [0, 1.0, 0]]))


def test_canvas_puts_the_face_box_where_configured():
    config = fg.CanvasConfig()
    box = np.array([100.0, 80.0, 260.0, 250.0])
    affine = fg.canvas_transform(box, config)
    (x0, y0), (x1, y1) = fg.apply_affine(affine, box.reshape(2, 2))
    assert (x1 - x0) == pytest.approx(config.face_width * config.width)
    assert (x0 + x1) / 2 == pytest.approx(config.width / 2)
    assert (y0 + y1) / 2 == pytest.approx(config.face_center_y * config.height)


def test_warp_to_frame_samples_the_right_pixels():
    image = np.zeros((100, 120, 3), np.uint8)
    image[40:60, 50:70] = 255
    affine = similarity(2.0, 0.0, -80.0, -60.0)  # square maps to 20..60 x 20..60
    out = fg.warp_to_frame(image, affine, 80, 80)
    assert out[30:50, 30:50].min() == 255
    assert out[:15].max() == 0 and out[65:].max() == 0
