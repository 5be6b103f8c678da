"""A labelled contact sheet: the source photo and its reenactments in a grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 28
GAP = 6
BACKGROUND = (245, 245, 245)
TEXT = (20, 20, 20)


def contact_sheet(
    images: Sequence[np.ndarray], labels: Sequence[str], columns: int = 4, tile_width: int = 256
) -> np.ndarray:
    """Tile images with a label under each.

    images: K arrays (H_k, W_k, 3) uint8 RGB, each scaled to ``tile_width`` wide keeping aspect;
    labels: K strings. Returns (H, W, 3) uint8 RGB.
    """
    if len(images) != len(labels) or not images:
        raise ValueError("contact_sheet needs as many labels as images, and at least one")
    tiles = []
    for image in images:
        pil = Image.fromarray(np.asarray(image, np.uint8))
        height = round(pil.height * tile_width / pil.width)
        tiles.append(pil.resize((tile_width, height), Image.Resampling.LANCZOS))
    tile_height = max(t.height for t in tiles)
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    sheet = Image.new(
        "RGB",
        (cols * (tile_width + GAP) + GAP, rows * (tile_height + LABEL_HEIGHT + GAP) + GAP),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=18)
    for k, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        x = GAP + (k % columns) * (tile_width + GAP)
        y = GAP + (k // columns) * (tile_height + LABEL_HEIGHT + GAP)
        sheet.paste(tile, (x, y))
        text_width = draw.textlength(label, font=font)
        draw.text((x + (tile_width - text_width) / 2, y + tile_height + 4), label, TEXT, font=font)
    return np.asarray(sheet)
