"""Conditional PatchGAN discriminators (Isola et al. 2017) and the mouth crop.

:class:`PatchDiscriminator` judges an image (B, 3, H, W) in [-1, 1] with the target PNCC
(B, 3, H, W) stacked as condition: 4x4 convolutions of stride 2 (spectral norm, LeakyReLU 0.2),
one of stride 1, and a 1-channel 4x4 head: a map of real/fake scores, one per overlapping patch
(70 x 70 pixels for 4 layers). The same class, on mouth crops, is the mouth discriminator.

:func:`mask_boxes` and :func:`crop_boxes` cut a square crop around a mask (the mouth mask rendered
from the 3DMM: :mod:`reenact.neural.data`) with ``affine_grid`` + ``grid_sample``: differentiable,
a fixed output size, and no data-dependent control flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from reenact.neural.blocks import NEGATIVE_SLOPE


class PatchDiscriminator(nn.Module):
    """image (B, 3, H, W), condition (B, Cc, H, W) → scores (B, 1, h, w), h ≈ H / 2^(L-1) - 2."""

    def __init__(self, channels: tuple[int, ...], condition_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3 + condition_channels
        for k, cout in enumerate(channels):
            stride = 2 if k < len(channels) - 1 else 1
            layers += [
                spectral_norm(nn.Conv2d(cin, cout, 4, stride, 1)),
                nn.LeakyReLU(NEGATIVE_SLOPE),
            ]
            cin = cout
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: Tensor, condition: Tensor) -> Tensor:
        return self.net(torch.cat([image, condition], dim=1))


def mask_boxes(mask: Tensor, margin: float = 1.4, min_side: float = 0.12) -> Tensor:
    """Square boxes around masks. mask: (B, 1, H, W) in [0, 1] → (B, 3) float32 (centre x, centre
    y, half side) in grid_sample's normalised coordinates of the height (x is scaled by W / H so
    that boxes are square in pixels).

    The box is the mask's bounding box (pixels above 0.5) grown by ``margin``, at least
    ``min_side`` of the image height; an empty mask gives the centred box of ``min_side``.
    """
    b, _, h, w = mask.shape
    inside = (mask[:, 0] > 0.5).to(mask.dtype)
    ys = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, dtype=mask.dtype, device=mask.device)
    xs = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, dtype=mask.dtype, device=mask.device)
    xs = xs * (w / h)  # x in units of the height's normalised coordinates
    rows, cols = inside.amax(dim=2), inside.amax(dim=1)  # (B, H), (B, W)
    big = 10.0
    y0 = torch.amin(torch.where(rows > 0, ys, big), dim=1)
    y1 = torch.amax(torch.where(rows > 0, ys, -big), dim=1)
    x0 = torch.amin(torch.where(cols > 0, xs, big), dim=1)
    x1 = torch.amax(torch.where(cols > 0, xs, -big), dim=1)
    empty = rows.amax(dim=1) <= 0
    cx = torch.where(empty, torch.zeros_like(x0), (x0 + x1) / 2)
    cy = torch.where(empty, torch.zeros_like(y0), (y0 + y1) / 2)
    half = torch.maximum((x1 - x0), (y1 - y0)) * margin / 2
    half = torch.where(empty, torch.full_like(half, min_side), half.clamp_min(min_side))
    return torch.stack([cx, cy, half], dim=1).reshape(b, 3)


def crop_boxes(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Bilinear square crops. images (B, C, H, W), boxes (B, 3) from :func:`mask_boxes` →
    (B, C, size, size); outside the image the border is repeated."""
    b, c, h, w = images.shape
    aspect = h / w
    zeros = torch.zeros_like(boxes[:, 0])
    theta = torch.stack(
        [
            torch.stack([boxes[:, 2] * aspect, zeros, boxes[:, 0] * aspect], dim=1),
            torch.stack([zeros, boxes[:, 2], boxes[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def hinge_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Hinge loss of the discriminator (Lim & Ye 2017):
    mean(relu(1 - real)) + mean(relu(1 + fake))."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_generator_loss(fake_scores: Tensor) -> Tensor:
    """Hinge loss of the generator: -mean(fake scores)."""
    return -fake_scores.mean()
