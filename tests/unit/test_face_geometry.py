"""Frame changes between photo, landmark crop and canvas."""

from __future__ import annotations

import numpy as np
import pytest

from reenact import face_geometry as fg
from reenact.morphable import N_PARAMS


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


def canvas_footprint(affine, config):
    """x0, y0, x1, y1: where the canvas's first and last pixel centres lie in the photo."""
    corners = np.array([[0.0, 0.0], [config.width - 1.0, config.height - 1.0]])
    (x0, y0), (x1, y1) = fg.apply_affine(fg.invert_affine(affine), corners)
    return x0, y0, x1, y1


def face_share(affine, box, config):
    return (box[2] - box[0]) * affine[0, 0] / config.width


def test_a_photo_with_room_gets_the_preferred_framing():
    config = fg.CanvasConfig()
    box = np.array([450.0, 400.0, 550.0, 500.0])  # a 100 px face amid a 1000 x 1000 photo
    preferred = fg.canvas_transform(box, config)
    np.testing.assert_allclose(fg.canvas_transform(box, config, (1000, 1000)), preferred)


def test_a_close_up_zooms_in_to_stay_inside_the_photo():
    config = fg.CanvasConfig()
    box = np.array([70.0, 60.0, 190.0, 180.0])  # 120 px face in a 240 x 300 headshot
    affine = fg.canvas_transform(box, config, (300, 240))
    x0, y0, x1, y1 = canvas_footprint(affine, config)
    assert x0 >= -1e-9 and y0 >= -1e-9 and x1 <= 239 + 1e-9 and y1 <= 299 + 1e-9
    # the preferred 42 % would need a 286 px wide footprint: it zooms in as far as needed
    assert config.face_width < face_share(affine, box, config) <= config.max_face_width
    assert not fg.outside_mask((300, 240), affine, config.height, config.width).any()


def test_a_face_near_an_edge_shifts_the_canvas_and_keeps_the_face():
    config = fg.CanvasConfig()
    box = np.array([560.0, 150.0, 630.0, 220.0])  # near the right edge of a 640 x 480 photo
    affine = fg.canvas_transform(box, config, (480, 640))
    x0, y0, x1, y1 = canvas_footprint(affine, config)
    assert x0 >= 0 and x1 <= 639 + 1e-9 and y0 >= 0 and y1 <= 479 + 1e-9  # on the photo …
    assert face_share(affine, box, config) == pytest.approx(config.face_width)  # … unzoomed …
    margin = config.face_margin * (box[2] - box[0])
    assert x0 <= box[0] - margin and box[2] + margin <= x1  # … the face box inside, with room


def test_a_face_too_large_to_fit_leaves_the_rest_outside_and_fills_it():
    config = fg.CanvasConfig()
    photo = np.random.default_rng(3).integers(1, 256, (112, 112, 3), dtype=np.uint8)
    box = np.array([1.0, 20.0, 90.0, 109.0])  # a face filling a 112 px square close-up
    affine = fg.canvas_transform(box, config, photo.shape[:2])
    assert face_share(affine, box, config) == pytest.approx(config.max_face_width)
    size, height, width = photo.shape[:2], config.height, config.width
    canvas = fg.warp_to_frame(photo, affine, height, width, fill=0)
    fill_only = fg.outside_mask(size, affine, height, width, reach=1.0)
    assert 0.1 < fill_only.mean() < 0.5  # a 3:4 canvas on a square photo: bands above, below
    assert (canvas[fill_only] == 0).all()  # the fill, never a repeated photo border
    photo_only = ~fg.outside_mask(size, affine, height, width)
    assert canvas[photo_only].min() > 0  # photo pixels only (the photo has no zero)
