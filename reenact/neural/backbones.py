"""Fixed (pretrained) backbones of the losses and metrics, written as plain layer stacks so that
torchvision state dicts load into them without torchvision.

- :class:`VGG` with torchvision's ``features.<i>`` layer indices (VGG-16 and VGG-19 configs):
  ``vgg19(weights=...).features.state_dict()`` saved to a file loads with
  :func:`load_state_dict_file`. Inputs in [-1, 1]; ImageNet normalisation inside.
- :class:`ResNetEmbedder`: the ResNet-18 layout (``conv1``, ``bn1``, ``layer1.0.conv1`` … ``fc``)
  mapping a face crop to an L2-normalised embedding, for the ReID loss: any face-recognition
  network trained in that layout (e.g. an ArcFace ResNet-18 exported as a torchvision-style state
  dict) loads into it.

Weights are read with ``torch.load(weights_only=True)``; nothing is downloaded. With no file,
the weights stay random (tests).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (
        64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
    ),
    "vgg19": (
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
    ),
}  # fmt: skip
# torchvision indices of the ReLU outputs the losses read: relu1_1 ... relu5_1 (VGG-19) and the
# LPIPS taps relu1_2 ... relu5_3 (VGG-16)
VGG19_LOSS_LAYERS = (1, 6, 11, 20, 29)
VGG16_LPIPS_LAYERS = (3, 8, 15, 22, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict_file(module: nn.Module, path: str | Path, prefix: str = "") -> None:
    """Loads a tensor-only state dict file (``torch.load(weights_only=True)``) into ``module``,
    strictly; ``prefix`` (e.g. "features.") is stripped from the file's keys."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if prefix:
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(state, strict=True)


class VGG(nn.Module):
    """images (B, 3, H, W) in [-1, 1] → the ReLU outputs at ``taps`` (torchvision indices).

    Its layers live in ``features`` (an ``nn.Sequential`` numbered as torchvision's), cut after
    the last tap. Frozen: ``requires_grad`` off, always in eval mode.
    """

    def __init__(self, config: str = "vgg19", taps: tuple[int, ...] = VGG19_LOSS_LAYERS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG_CONFIGS[config]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(item)
        self.features = nn.Sequential(*layers[: max(taps) + 1])
        self.taps = taps
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG:
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = ((images + 1.0) / 2.0 - self.mean) / self.std
        out: list[Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                out.append(x)
        return out


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (names conv1, bn1, conv2, bn2, downsample.0/1)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.downsample(x))


class ResNetEmbedder(nn.Module):
    """face crops (B, 3, S, S) in [-1, 1] → (B, D) unit-length embeddings (ResNet-18 layout,
    ImageNet normalisation, global average pooling, ``fc`` to D). Frozen, eval mode."""

    def __init__(self, embedding: int = 512, input_size: int = 112) -> None:
        super().__init__()
        self.input_size = input_size
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = (64, 128, 256, 512)
        cin = 64
        for k, cout in enumerate(widths):
            stride = 1 if k == 0 else 2
            self.add_module(
                f"layer{k + 1}",
                nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)),
            )
            cin = cout
        self.fc = nn.Linear(512, embedding)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ResNetEmbedder:
        return super().train(False)

    def forward(self, crops: Tensor) -> Tensor:
        x = ((crops + 1.0) / 2.0 - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.normalize(self.fc(x.mean(dim=(2, 3))), dim=1)
