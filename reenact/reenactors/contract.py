"""The render contract between face_reenactment and the ``reenactor`` model, one per mode.

face_reenactment renders the source mesh and K target meshes (:class:`reenact.geometric.
ReenactorRenderer`) and hands the renders to the ``reenactor`` model with the source canvas and
the target parameters. What the renders hold depends on the reenactor's mode; this module says
it once, without importing the rasterizer, so the Triton models, the exporters and the tests
read the same declaration. ``tests/unit/test_render_contract.py`` ties it to
``model_repository/reenactor/config.pbtxt``.

Tensors of every mode (H x W the canvas, h x w = ceil(H / d) x ceil(W / d) the render, d =
``RENDER_DOWNSCALE``, C the mode's channel count):

=================  ======================  =====================================================
name               shape, dtype            meaning
=================  ======================  =====================================================
SOURCE_CANVAS__0   (H, W, 3) uint8         the source canvas, RGB
SOURCE_RENDER__1   (h, w, C) float32       the source mesh's render
TARGET_RENDER__2   (K+n, h, w, C) float32  the K target meshes' renders, then n >= 0 slices of
                                           mouth detail (geometric mode only, below)
TARGET_PARAMS__3   (K, 162) float32        the targets' 3DMM parameters, canvas pixels
REENACTED__0       (K, H, W, 3) uint8      the reenacted canvases, RGB
=================  ======================  =====================================================

Channels: the geometric mode's ten (their meaning: :mod:`reenact.geometric`); the learned modes
(neural, hybrid) add the PNCC code (:mod:`reenact.pncc`, in [0, 1], 0 off the head) as three
more, after the geometric ten, so a learned mode's render is a geometric render plus PNCC.

Mouth detail (geometric mode): the mouth interior's shades (MOUTH_DETAIL) rendered at canvas
resolution in the window :func:`mouth_detail_window` computes from the targets' MOUTH_ALPHA,
(K, rows, cols, MOUTH_DETAIL_CHANNELS) float32 laid out row-major after the K target renders,
filling n = ceil(size / (h w C)) zero-padded slices (the first may be the source's slot of the
renderer's batch: :class:`reenact.geometric.ReenactorRenderer`). Renderer and reenactor compute
the window from the same MOUTH_ALPHA, so it is not passed; n = 0 (no detail) is always valid and
the reenactor then paints the mouth from the half-resolution render.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reenact.face_geometry import CanvasConfig
from reenact.morphable import N_PARAMS

CANVAS_HEIGHT = CanvasConfig.height  # the canvas every request is framed on
CANVAS_WIDTH = CanvasConfig.width
RENDER_DOWNSCALE = 2  # renders are drawn at 1 / RENDER_DOWNSCALE of the canvas size

GEOMETRIC_CHANNELS = (
    "SRC_X",
    "SRC_Y",
    "SRC_Z",
    "COVERAGE",
    "WARP_WEIGHT",
    "TEETH_SHADE",
    "GUMS_SHADE",
    "CAVITY_SHADE",
    "MOUTH_ALPHA",
    "EXPRESSION_SHADE",
)
PNCC_CHANNELS = ("PNCC_X", "PNCC_Y", "PNCC_Z")
LEARNED_CHANNELS = GEOMETRIC_CHANNELS + PNCC_CHANNELS

# Channel indices as plain ints (TorchScript reads module-level ints as constants).
SRC_X, SRC_Y, SRC_Z, COVERAGE, WARP_WEIGHT = 0, 1, 2, 3, 4
TEETH_SHADE, GUMS_SHADE, CAVITY_SHADE, MOUTH_ALPHA = 5, 6, 7, 8
EXPRESSION_SHADE = 9
PNCC_FIRST = 10  # PNCC_X; PNCC_Y and PNCC_Z follow
N_GEOMETRIC_CHANNELS = len(GEOMETRIC_CHANNELS)
N_LEARNED_CHANNELS = len(LEARNED_CHANNELS)

# The geometric mode's mouth at canvas resolution (reenact.geometric, "Mouth detail"): these
# channels, rendered in a window around every target's mouth interior grown by
# MOUTH_DETAIL_MARGIN render pixels, packed into slices after the K target renders.
MOUTH_DETAIL = slice(TEETH_SHADE, CAVITY_SHADE + 1)
MOUTH_DETAIL_CHANNELS = CAVITY_SHADE + 1 - TEETH_SHADE
MOUTH_DETAIL_MARGIN = 6

INPUT_NAMES = ("SOURCE_CANVAS__0", "SOURCE_RENDER__1", "TARGET_RENDER__2", "TARGET_PARAMS__3")
OUTPUT_NAME = "REENACTED__0"


@dataclass(frozen=True)
class RenderContract:
    """What one reenactor mode's renders hold."""

    channels: tuple[str, ...]
    downscale: int = RENDER_DOWNSCALE
    mouth_detail: bool = False  # TARGET_RENDER may carry mouth-detail slices after the K renders

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def pncc(self) -> bool:
        """Whether the renders carry the PNCC code (channels PNCC_FIRST … PNCC_FIRST + 2)."""
        return self.channels[PNCC_FIRST : PNCC_FIRST + 3] == PNCC_CHANNELS

    def render_size(
        self, height: int = CANVAS_HEIGHT, width: int = CANVAS_WIDTH
    ) -> tuple[int, int]:
        """(h, w) of the renders for an H x W canvas."""
        return -(-height // self.downscale), -(-width // self.downscale)

    def tensor_dims(
        self, height: int = CANVAS_HEIGHT, width: int = CANVAS_WIDTH
    ) -> dict[str, tuple[int, ...]]:
        """The reenactor's tensors and their dims as config.pbtxt writes them (-1: K)."""
        h, w = self.render_size(height, width)
        return {
            "SOURCE_CANVAS__0": (height, width, 3),
            "SOURCE_RENDER__1": (h, w, self.n_channels),
            "TARGET_RENDER__2": (-1, h, w, self.n_channels),
            "TARGET_PARAMS__3": (-1, N_PARAMS),
            "REENACTED__0": (-1, height, width, 3),
        }


GEOMETRIC = RenderContract(GEOMETRIC_CHANNELS, mouth_detail=True)
LEARNED = RenderContract(LEARNED_CHANNELS)


def mouth_detail_window(
    mouth_alpha: torch.Tensor, factor: int, height: int, width: int, margin: int
) -> list[int]:
    """[row0, row1, col0, col1) in canvas pixels of the mouth detail: the box of the render
    pixels where some target's mouth_alpha (K, h, w) float32 is nonzero, grown by ``margin``
    render pixels, times ``factor`` (canvas pixels per render pixel), clipped to the height x
    width canvas; [0, 0, 0, 0] when no target shows its mouth interior. TorchScript-able: the
    renderer and the reenactor both call it, so they agree on the window without passing it."""
    drawn = (mouth_alpha > 0.0).any(dim=0)
    rows = torch.nonzero(drawn.any(dim=1)).flatten()
    cols = torch.nonzero(drawn.any(dim=0)).flatten()
    if rows.numel() == 0:
        return [0, 0, 0, 0]
    return [
        max((int(rows[0]) - margin) * factor, 0),
        min((int(rows[-1]) + 1 + margin) * factor, height),
        max((int(cols[0]) - margin) * factor, 0),
        min((int(cols[-1]) + 1 + margin) * factor, width),
    ]
