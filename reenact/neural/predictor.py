"""The regression mesh predictor (§3.1.1): one CNN pass from the landmark crop to the 3DMM.

crop (B, S, S, 3) uint8 RGB, MediaPipe's rotated landmark crop (S = 192: the same input as the
landmark-fit predictor, :mod:`reenact.mesh_predictor`) → params (B, 162) float32 in that crop's
pixels (layout of :mod:`reenact.morphable`): a drop-in for the landmark-fit predictor's first
output.

- backbone: a 3x3 stem of stride 2 and four stages of ResNet basic blocks (the first of each of
  stride 2), giving features at 1/4, 1/8, 1/16 and 1/32;
- neck: BiFPN-like layers (Tan et al. 2020, EfficientDet) over the 1/8, 1/16, 1/32 features: a
  top-down then a bottom-up path, each node a fast normalised fusion (non-negative learned weights
  over its inputs, divided by their sum) followed by a depthwise-separable 3x3 convolution;
- head: global average pooling of the three levels, concatenated, an MLP to 162 raw outputs, and
  an affine de-normalisation ``params = mean + std * raw`` whose buffers
  (:meth:`RegressionMeshPredictor.set_statistics`) hold the training targets' statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reenact.morphable import EXPR_SLICE, N_PARAMS, ROT_SLICE, SCALE_SLICE, TRANS_SLICE
from reenact.neural.backbones import BasicBlock
from reenact.neural.config import PredictorWidths

FUSION_EPS = 1e-4


class SeparableConv(nn.Sequential):
    """depthwise 3x3 → pointwise 1x1 → batch norm → SiLU: (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.SiLU(),
        )


class FusionNode(nn.Module):
    """Fast normalised fusion of n same-shape inputs, then a :class:`SeparableConv`."""

    def __init__(self, channels: int, inputs: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(inputs))
        self.conv = SeparableConv(channels)

    def forward(self, features: list[Tensor]) -> Tensor:
        w = F.relu(self.weights)
        w = w / (w.sum() + FUSION_EPS)
        fused = features[0] * w[0]
        for k in range(1, len(features)):
            fused = fused + features[k] * w[k]
        return self.conv(fused)


class BiFPNLayer(nn.Module):
    """(P3, P4, P5) at 1/8, 1/16, 1/32, each (B, C, ·, ·) → the same shapes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p4_td = FusionNode(channels, 2)
        self.p3_out = FusionNode(channels, 2)
        self.p4_out = FusionNode(channels, 3)
        self.p5_out = FusionNode(channels, 2)

    def forward(self, p3: Tensor, p4: Tensor, p5: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p4_td = self.p4_td([p4, _resize(p5, p4)])
        p3_out = self.p3_out([p3, _resize(p4_td, p3)])
        p4_out = self.p4_out([p4, p4_td, _downsample(p3_out, p4)])
        p5_out = self.p5_out([p5, _downsample(p4_out, p5)])
        return p3_out, p4_out, p5_out


def _resize(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def _downsample(x: Tensor, like: Tensor) -> Tensor:
    return F.adaptive_max_pool2d(x, like.shape[-2:])


class RegressionMeshPredictor(nn.Module):
    """crop (B, S, S, 3) uint8 (or float 0..255) → params (B, 162) float32 crop pixels."""

    def __init__(self, widths: PredictorWidths, crop_size: int = 192) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths.stem, 3, 2, 1, bias=False), nn.BatchNorm2d(widths.stem), nn.ReLU()
        )
        stages: list[nn.Module] = []
        cin = widths.stem
        for cout in widths.stages:
            blocks = [BasicBlock(cin, cout, 2)]
            blocks += [BasicBlock(cout, cout, 1) for _ in range(widths.blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        neck = widths.neck_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, neck, 1) for c in widths.stages[1:])
        self.neck = nn.ModuleList(BiFPNLayer(neck) for _ in range(widths.neck_layers))
        self.head = nn.Sequential(
            nn.Linear(3 * neck, widths.head_hidden),
            nn.SiLU(),
            nn.Linear(widths.head_hidden, N_PARAMS),
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.crop_size = crop_size
        mean, std = default_statistics(crop_size)
        self.register_buffer("param_mean", mean)
        self.register_buffer("param_std", std)

    @torch.no_grad()
    def set_statistics(self, params: Tensor) -> None:
        """Sets the de-normalisation from training targets (N, 162): their mean and standard
        deviation per parameter (at least 1e-3)."""
        self.param_mean.copy_(params.mean(dim=0))
        self.param_std.copy_(params.std(dim=0).clamp_min(1e-3) if len(params) > 1 else 1.0)

    def forward(self, crop: Tensor) -> Tensor:
        x = crop.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = self.stem(x)
        features: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, features[1:], strict=True))
        for layer in self.neck:
            p3, p4, p5 = layer(p3, p4, p5)
        pooled = torch.cat([p.mean(dim=(2, 3)) for p in (p3, p4, p5)], dim=1)
        return self.param_mean + self.param_std * self.head(pooled)


def default_statistics(crop_size: int) -> tuple[Tensor, Tensor]:
    """(162,), (162,) float32: a face centred in the crop before any data is seen: identity 0 ±
    1, expression 0.1 ± 0.2, rotation 0 ± 0.2 rad, translation at the centre ± 1/16 of the crop,
    scale crop_size / 25 ± 10 % (pixels per cm)."""
    mean = torch.zeros(N_PARAMS)
    std = torch.ones(N_PARAMS)
    mean[EXPR_SLICE], std[EXPR_SLICE] = 0.1, 0.2
    std[ROT_SLICE] = 0.2
    mean[TRANS_SLICE] = torch.tensor([crop_size / 2, crop_size / 2, 0.0])
    std[TRANS_SLICE] = crop_size / 16
    mean[SCALE_SLICE] = crop_size / 25
    std[SCALE_SLICE] = crop_size / 250
    return mean, std
