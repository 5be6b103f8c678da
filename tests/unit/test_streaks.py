"""The replicated-border streak measure (reenact.streaks)."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data

from reenact import face_geometry as fg
from reenact.streaks import StreakConfig, streak_fraction, streak_mask
from tests import corpus

TOM_HANKS_FACE = (1.0, 20.0, 90.0, 109.0)  # BlazeFace's box on Tom_Hanks_54745.png


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_repeated_bottom_row_is_a_streak_band_exactly_there():
    image = noise(200, 120)
    image[120:] = image[119]  # the last 80 rows repeat row 119, as BORDER_REPLICATE does
    mask = streak_mask(image)
    assert mask[120:].all()
    assert not mask[:119].any()  # row 119 belongs to the run: it starts the repetition


def test_repeated_column_makes_horizontal_streaks():
    image = noise(90, 200, seed=1)
    image[:, :60] = image[:, 60:61]
    mask = streak_mask(image)
    assert mask[:, :60].all() and not mask[:, 61:].any()


def test_short_repetitions_flat_areas_and_gradients_are_not_streaks():
    config = StreakConfig()
    image = noise(200, 120, seed=2)
    image[100 : 99 + config.min_length - 1] = image[99]  # rows 99.. : one pixel short of a streak
    assert not streak_mask(image, config).any()
    flat = np.full((200, 200, 3), 40, np.uint8)
    flat[:, 100:] = 200  # a flat area with a straight vertical edge
    assert not streak_mask(flat).any()
    ramp = np.repeat(np.linspace(0, 255, 200)[None, :, None], 3, 2).repeat(200, 0)
    assert not streak_mask(ramp.astype(np.uint8)).any()  # 1.3 levels a column: a smooth wall


def test_photos_without_replicated_borders_have_no_streaks():
    for image in (skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()):
        assert streak_fraction(image) == 0.0


def _canvas_of_tom_hanks(replicate: bool) -> np.ndarray:
    """The canvas of the close-up as the service cut it before its framing kept inside the
    photo (preferred framing, border replicated), or as it cuts it now."""
    photo, config = corpus.tom_hanks(), fg.CanvasConfig()
    box = np.array(TOM_HANKS_FACE)
    if replicate:
        affine = fg.canvas_transform(box, config)
        return cv2.warpAffine(
            photo, affine, (config.width, config.height), borderMode=cv2.BORDER_REPLICATE
        )
    affine = fg.canvas_transform(box, config, photo.shape[:2])
    return fg.warp_to_frame(photo, affine, config.height, config.width, config.outside_fill)


def test_catches_the_streaks_of_a_close_up_cut_past_its_edges():
    replicated = _canvas_of_tom_hanks(replicate=True)
    # about 7.5 % of that canvas is streaks: its top rows and left columns repeat the border
    assert streak_fraction(replicated) > 0.05
    assert streak_fraction(_canvas_of_tom_hanks(replicate=False)) == 0.0
