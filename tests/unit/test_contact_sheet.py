from __future__ import annotations

import numpy as np
import pytest

from reenact.contact_sheet import BACKGROUND, GAP, LABEL_HEIGHT, contact_sheet


def test_grid_places_each_tile_and_writes_each_label():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = [np.full((128, 96, 3), c, np.uint8) for c in colours]
    sheet = contact_sheet(images, [f"label {k}" for k in range(5)], columns=3, tile_width=96)
    assert sheet.shape == (2 * (128 + LABEL_HEIGHT + GAP) + GAP, 3 * (96 + GAP) + GAP, 3)
    for k, colour in enumerate(colours):
        x = GAP + (k % 3) * (96 + GAP)
        y = GAP + (k // 3) * (128 + LABEL_HEIGHT + GAP)
        assert tuple(sheet[y + 64, x + 48]) == colour
        label_band = sheet[y + 128 : y + 128 + LABEL_HEIGHT, x : x + 96]
        assert (label_band != BACKGROUND).any(axis=-1).sum() > 20  # text was drawn
    assert tuple(sheet[-GAP - 10, -GAP - 10]) == BACKGROUND  # the empty sixth cell


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="as many labels"):
        contact_sheet([np.zeros((4, 4, 3), np.uint8)], [])
