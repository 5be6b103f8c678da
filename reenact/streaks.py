"""Replicated-border streaks: the artefact of sampling a photo past its edge with its border
pixels repeated (``cv2.BORDER_REPLICATE``, ``grid_sample(padding_mode="border")``).

A repeated border row becomes a band of columns, each constant along its length, while
neighbouring columns differ: vertical streaks (a repeated border column makes horizontal ones).
Natural photos rarely hold such a band: where a region is constant along a column it is usually
flat across too (a sky, a black background), and the measure ignores flat regions.

A pixel is part of a **streak** when it lies on a run of at least ``min_length`` pixels along a
column (or a row) whose consecutive pixels differ by at most ``flat_levels`` grey levels in every
channel, and along that run the image changes across the run (to the neighbouring column or row)
by more than ``across_levels`` grey levels on average (largest channel difference, the smaller of
the two neighbours: a band of streaks differs from both, the edge of a flat area from one only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StreakConfig:
    """Thresholds of :func:`streak_mask` (grey levels of 0..255 images, pixels)."""

    min_length: int = 48  # about a tenth of the 512-pixel canvas height
    flat_levels: int = 0  # a repeated border is exactly constant; resampled photos rarely are
    across_levels: float = 2.0  # a smooth gradient or a flat area changes less than this


def _channel_diff(image: np.ndarray, axis: int) -> np.ndarray:
    """Largest absolute channel difference between neighbours along ``axis``.
    image: (H, W, C) int16. Returns (H-1, W) for axis 0, (H, W-1) for axis 1."""
    return np.abs(np.diff(image, axis=axis)).max(axis=-1)


def _vertical_streaks(image: np.ndarray, config: StreakConfig) -> np.ndarray:
    """(H, W) bool: pixels on vertical streaks. image: (H, W, C) int16."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), bool)
    if height < config.min_length or width < 2:
        return mask
    flat = _channel_diff(image, 0) <= config.flat_levels  # (H-1, W): pixel y equals y+1
    across_step = _channel_diff(image, 1).astype(np.float64)  # (H, W-1)
    across = np.zeros((height, width))
    across[:, :-1] = across_step  # to the right neighbour …
    across[:, 1:] = np.minimum(across[:, 1:], across_step)  # … and the left: the smaller
    across[:, -1] = across_step[:, -1]
    across_cumulative = np.vstack([np.zeros((1, width)), np.cumsum(across, axis=0)])
    edges = np.diff(np.pad(flat.astype(np.int8), ((1, 1), (0, 0))), axis=0)  # (H, W)
    starts = np.argwhere(edges.T == 1)  # (column, first flat step), ordered by column
    ends = np.argwhere(edges.T == -1)  # (column, one past the last flat step)
    for (column, first), (_, stop) in zip(starts, ends, strict=True):
        # flat steps first..stop-1 join pixels first..stop: a run of stop - first + 1 pixels
        if stop - first + 1 < config.min_length:
            continue
        total = across_cumulative[stop + 1, column] - across_cumulative[first, column]
        if total / (stop - first + 1) > config.across_levels:
            mask[first : stop + 1, column] = True
    return mask


def streak_mask(image: np.ndarray, config: StreakConfig | None = None) -> np.ndarray:
    """(H, W) bool: pixels of vertical or horizontal streaks. image: (H, W, C) or (H, W) uint8."""
    config = config or StreakConfig()
    pixels = np.asarray(image).astype(np.int16)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    vertical = _vertical_streaks(pixels, config)
    horizontal = _vertical_streaks(pixels.transpose(1, 0, 2), config).T
    return vertical | horizontal


def streak_fraction(image: np.ndarray, config: StreakConfig | None = None) -> float:
    """Share of the image's pixels that lie on streaks (0..1). image: (H, W[, C]) uint8."""
    return float(streak_mask(image, config).mean())
