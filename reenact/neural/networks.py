"""The reenactor's networks (the thesis's Tables 3.1-3.3) and their two assemblies.

Images are (B, 3, H, W) float32 in [-1, 1]; PNCC renders (B, 3, H, W) float32 in [0, 1] (0 where
no face is drawn); 3DMM parameters (B, 162) in canvas pixels (layout of :mod:`reenact.morphable`).
H and W must be multiples of 16 (the canvas: 512 x 384).

- :class:`WarpingNetwork` (Table 3.1): a U-Net-style encoder-decoder over source image + source
  PNCC + target PNCC predicting a flow field; the source is resampled along it (``grid_sample``).
- :class:`MappingNetwork` (Table 3.2): an MLP from the target's 3DMM parameters to a latent code.
- :class:`EnhancingNetwork` (Table 3.3): an encoder to 1/8, then SPADE + AdaIN residual blocks at
  1/8, 1/4 and 1/2 with pixel-shuffle upsampling between them, a residual connection to the
  warped image and a clamp to [-1, 1].
- :class:`NeuralReenactor`: warping + mapping + enhancing networks (the thesis's method).
- :class:`HybridReenactor`: the geometric reenactor's output replaces the warping network; only
  the enhancer (and the mapping network) are learned.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reenact.morphable import N_PARAMS, SCALE_SLICE, TRANS_SLICE
from reenact.neural.blocks import (
    NEGATIVE_SLOPE,
    ConvNormAct,
    DownBlock,
    PixelShuffleUp,
    ResBlock,
    SpadeAdainBlock,
    UpBlock,
    conv3x3,
)
from reenact.neural.config import ReenactorWidths

IMAGE_CHANNELS = 3
PNCC_CHANNELS = 3
REFERENCE_SCALE = 20.0  # canvas pixels per cm of a typical 512 x 384 canvas face


class WarpingNetwork(nn.Module):
    """Table 3.1. source (B, 3, H, W), source_pncc (B, 3, H, W), target_pncc (B, 3, H, W) →
    (warped (B, 3, H, W), flow (B, 2, H, W)).

    The flow is an offset in ``grid_sample``'s normalised coordinates ([-1, 1] across the image,
    x then y) added to the identity grid; it starts at zero (zero-initialised head), so an
    untrained network returns the source. Encoder: a 7x7 stem at full resolution and one
    :class:`DownBlock` per further entry of ``warp_channels`` (1/2 ... 1/16), residual blocks at
    the bottom, and a decoder of :class:`UpBlock` s mirroring the encoder with skip connections.
    """

    def __init__(self, widths: ReenactorWidths) -> None:
        super().__init__()
        ch = widths.warp_channels
        self.stem = ConvNormAct(IMAGE_CHANNELS + 2 * PNCC_CHANNELS, ch[0], kernel=7)
        self.down = nn.ModuleList(DownBlock(a, b) for a, b in itertools.pairwise(ch))
        self.bottleneck = nn.Sequential(
            *(ResBlock(ch[-1]) for _ in range(widths.warp_bottleneck_blocks))
        )
        self.up = nn.ModuleList(
            UpBlock(cin, cskip, cskip) for cin, cskip in zip(ch[:0:-1], ch[-2::-1], strict=True)
        )
        self.flow = conv3x3(ch[0], 2)
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)

    def forward(
        self, source: Tensor, source_pncc: Tensor, target_pncc: Tensor
    ) -> tuple[Tensor, Tensor]:
        x = self.stem(torch.cat([source, source_pncc, target_pncc], dim=1))
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, skips[-2::-1], strict=True):
            x = block(x, skip)
        flow = self.flow(x)
        return warp(source, flow), flow


def identity_grid(batch: int, height: int, width: int, like: Tensor) -> Tensor:
    """(B, H, W, 2) grid_sample coordinates of the pixel centres (align_corners=False)."""
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) * 2 + 1) / width - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    return grid.unsqueeze(0).expand(batch, height, width, 2)


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """image (B, C, H, W) sampled bilinearly at identity + flow; flow (B, 2, H, W) normalised
    offsets (x, y). Outside the image the border is repeated."""
    b, _, h, w = flow.shape
    grid = identity_grid(b, h, w, flow) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


class MappingNetwork(nn.Module):
    """Table 3.2. params (B, 162) canvas pixels → latent (B, ``widths.latent``).

    The parameters are normalised first (buffers, so the traced module carries them): identity
    and expression as they are (units of standard deviations; [0, 1]), rotation in radians,
    translation divided by ``canvas_size`` and centred, scale as log(scale / REFERENCE_SCALE).
    Then ``mapping_layers`` linear layers with LeakyReLU between them.
    """

    def __init__(
        self, widths: ReenactorWidths, canvas_height: int = 512, canvas_width: int = 384
    ) -> None:
        super().__init__()
        size = float(max(canvas_height, canvas_width))
        offset = np.zeros(N_PARAMS, np.float32)
        divisor = np.ones(N_PARAMS, np.float32)
        offset[TRANS_SLICE] = (canvas_width / 2, canvas_height / 2, 0.0)
        divisor[TRANS_SLICE] = size
        self.register_buffer("offset", torch.from_numpy(offset))
        self.register_buffer("divisor", torch.from_numpy(divisor))
        self.scale_index = SCALE_SLICE.start
        self.reference_scale = REFERENCE_SCALE
        sizes = [N_PARAMS] + [widths.mapping_hidden] * (widths.mapping_layers - 1) + [widths.latent]
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if k < len(sizes) - 2:
                layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
        self.mlp = nn.Sequential(*layers)

    def normalise(self, params: Tensor) -> Tensor:
        """(B, 162) → (B, 162) the network's input features."""
        x = (params - self.offset) / self.divisor
        scale = torch.log(
            params[:, self.scale_index : self.scale_index + 1].clamp_min(1e-3)
            / self.reference_scale
        )
        return torch.cat([x[:, : self.scale_index], scale, x[:, self.scale_index + 1 :]], dim=1)

    def forward(self, params: Tensor) -> Tensor:
        return self.mlp(self.normalise(params))


class EnhancingNetwork(nn.Module):
    """Table 3.3. warped (B, 3, H, W) in [-1, 1], target_pncc (B, 3, H, W), latent (B, L) →
    enhanced (B, 3, H, W) in [-1, 1].

    Encoder: a 3x3 stem (``enhance_channels[0]`` at 1/1) and three :class:`DownBlock` s to 1/2,
    1/4, 1/8. Decoder, at 1/8, 1/4 and 1/2: a :class:`SpadeAdainBlock` (SPADE on the target PNCC,
    AdaIN on the latent) on the sum of the upsampled features and the encoder's features of that
    scale, then :class:`PixelShuffleUp` to the next scale. A 3x3 head at 1/1 gives a residual
    added to the warped image; the sum is clamped to [-1, 1].
    """

    def __init__(self, widths: ReenactorWidths) -> None:
        super().__init__()
        ch = widths.enhance_channels
        if len(ch) != 4:
            raise ValueError("enhance_channels needs 4 entries: 1/1, 1/2, 1/4, 1/8")
        self.stem = ConvNormAct(IMAGE_CHANNELS + PNCC_CHANNELS, ch[0])
        self.down = nn.ModuleList(DownBlock(a, b) for a, b in itertools.pairwise(ch))
        self.blocks = nn.ModuleList(
            SpadeAdainBlock(c, c, widths.latent, PNCC_CHANNELS, widths.spade_hidden)
            for c in (ch[3], ch[2], ch[1])
        )
        self.upsample = nn.ModuleList(
            PixelShuffleUp(a, b) for a, b in ((ch[3], ch[2]), (ch[2], ch[1]), (ch[1], ch[0]))
        )
        self.head = nn.Sequential(ConvNormAct(ch[0], ch[0]), conv3x3(ch[0], IMAGE_CHANNELS))

    def forward(self, warped: Tensor, target_pncc: Tensor, latent: Tensor) -> Tensor:
        x = self.stem(torch.cat([warped, target_pncc], dim=1))
        features = [x]
        for block in self.down:
            x = block(x)
            features.append(x)
        x = features[3]
        for k, (block, up) in enumerate(zip(self.blocks, self.upsample, strict=True)):
            if k > 0:
                x = x + features[3 - k]
            x = up(block(x, target_pncc, latent))
        residual = self.head(x + features[0])
        return torch.clamp(warped + residual, -1.0, 1.0)


class NeuralReenactor(nn.Module):
    """The thesis's reenactor: source (B, 3, H, W), source_pncc, target_pncc (B, 3, H, W),
    target_params (B, 162) → (warped, enhanced), both (B, 3, H, W) in [-1, 1]."""

    def __init__(
        self, widths: ReenactorWidths, canvas_height: int = 512, canvas_width: int = 384
    ) -> None:
        super().__init__()
        self.warping = WarpingNetwork(widths)
        self.mapping = MappingNetwork(widths, canvas_height, canvas_width)
        self.enhancing = EnhancingNetwork(widths)

    def forward(
        self, source: Tensor, source_pncc: Tensor, target_pncc: Tensor, target_params: Tensor
    ) -> tuple[Tensor, Tensor]:
        warped, _ = self.warping(source, source_pncc, target_pncc)
        return warped, self.enhancing(warped, target_pncc, self.mapping(target_params))


class HybridReenactor(nn.Module):
    """The hybrid: geometric (B, 3, H, W) the geometric reenactor's output in [-1, 1],
    target_pncc (B, 3, H, W), target_params (B, 162) → enhanced (B, 3, H, W) in [-1, 1]."""

    def __init__(
        self, widths: ReenactorWidths, canvas_height: int = 512, canvas_width: int = 384
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(widths, canvas_height, canvas_width)
        self.enhancing = EnhancingNetwork(widths)

    def forward(self, geometric: Tensor, target_pncc: Tensor, target_params: Tensor) -> Tensor:
        return self.enhancing(geometric, target_pncc, self.mapping(target_params))
