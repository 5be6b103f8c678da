"""Building blocks of the reenactor's networks (the thesis's Table 3.4 and its neighbours).

- :class:`SPADE` (Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive
  Normalization"): parameter-free instance norm, then a per-pixel scale and shift predicted from a
  conditioning map (here the target PNCC) by a shared 3x3 convolution + ReLU and two 3x3 heads.
- :class:`AdaIN` (Huang & Belongie 2017): instance norm, then a per-channel scale and shift from a
  latent code (here the mapping network's output) through one linear layer.
- :class:`SpadeAdainBlock`: the residual block of the enhancer, SPADE then AdaIN (each followed by
  LeakyReLU and a 3x3 convolution), with a 1x1 shortcut when the width changes.
- :class:`DownBlock`, :class:`UpBlock`, :class:`ResBlock`: the encoder/decoder steps.

Every block keeps its output shape a fixed function of its input shape (no data-dependent
control flow), so the networks trace to TorchScript.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEGATIVE_SLOPE = 0.2


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1)


class ConvNormAct(nn.Sequential):
    """conv (k x k, stride) → instance norm (affine) → LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2),
            nn.InstanceNorm2d(cout, affine=True),
            nn.LeakyReLU(NEGATIVE_SLOPE),
        )


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))): (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.InstanceNorm2d(channels, affine=True),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            conv3x3(channels, channels),
            nn.InstanceNorm2d(channels, affine=True),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            conv3x3(channels, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class DownBlock(nn.Module):
    """Halves the resolution: (B, cin, H, W) → (B, cout, ceil(H/2), ceil(W/2)); a strided 3x3
    convolution path plus an average-pooled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(cin, cout, 3, 2), conv3x3(cout, cout))
        self.shortcut = nn.Conv2d(cin, cout, 1)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.shortcut(F.avg_pool2d(x, 2, ceil_mode=True))
        return self.act(self.body(x) + skip)


class UpBlock(nn.Module):
    """Doubles the resolution (nearest) and fuses a skip connection of the encoder:
    x (B, cin, h, w), skip (B, cskip, 2h, 2w) → (B, cout, 2h, 2w)."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.fuse = ConvNormAct(cin + cskip, cout)
        self.refine = ConvNormAct(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.refine(self.fuse(torch.cat([x, skip], dim=1)))


class SPADE(nn.Module):
    """x (B, C, H, W), condition (B, Cc, H', W') → (B, C, H, W):
    ``instance_norm(x) * (1 + gamma(c)) + beta(c)``, c resized to H x W (bilinear)."""

    def __init__(self, channels: int, condition_channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(conv3x3(condition_channels, hidden), nn.ReLU())
        self.gamma = conv3x3(hidden, channels)
        self.beta = conv3x3(hidden, channels)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        condition = F.interpolate(
            condition, size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        features = self.shared(condition)
        return self.norm(x) * (1.0 + self.gamma(features)) + self.beta(features)


class AdaIN(nn.Module):
    """x (B, C, H, W), latent (B, L) → (B, C, H, W):
    ``instance_norm(x) * (1 + gamma(w)) + beta(w)``, gamma and beta (B, C) from one linear layer."""

    def __init__(self, channels: int, latent: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(latent, 2 * channels)
        self.channels = channels

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        style = self.affine(latent)[:, :, None, None]
        gamma, beta = style[:, : self.channels], style[:, self.channels :]
        return self.norm(x) * (1.0 + gamma) + beta


class SpadeAdainBlock(nn.Module):
    """The enhancer's residual block (Table 3.4):
    ``h = conv1(act(SPADE(x, pncc)))``, ``h = conv2(act(AdaIN(h, w)))``, out = shortcut(x) + h.

    x: (B, cin, H, W); pncc: (B, 3, H', W'); latent: (B, L) → (B, cout, H, W).
    """

    def __init__(self, cin: int, cout: int, latent: int, condition: int, hidden: int) -> None:
        super().__init__()
        self.spade = SPADE(cin, condition, hidden)
        self.conv1 = conv3x3(cin, cout)
        self.adain = AdaIN(cout, latent)
        self.conv2 = conv3x3(cout, cout)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor, pncc: Tensor, latent: Tensor) -> Tensor:
        h = self.conv1(self.act(self.spade(x, pncc)))
        h = self.conv2(self.act(self.adain(h, latent)))
        return self.shortcut(x) + h


class PixelShuffleUp(nn.Module):
    """Sub-pixel upsampling (Shi et al. 2016): (B, cin, H, W) → (B, cout, 2H, 2W) through a 3x3
    convolution to 4 cout channels and ``pixel_shuffle(2)``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv3x3(cin, 4 * cout)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))
