"""A facial-expression classifier: face-api's FaceExpressionNet re-implemented in PyTorch.

For measuring whether reenacted emotions are recognisable (``make eval-emotions``, see
docs/evaluation.md); never used by the served models.

The network, its weights and its input conventions come from the npm package
``@vladmandic/face-api`` 1.7.15 (MIT; a maintained fork of Vincent Mühler's face-api.js):

- ``FaceFeatureExtractor``: four dense blocks (32, 64, 128, 256 channels), each four
  convolutions with stride 2 in the first (a plain 3x3 convolution in the very first block,
  depthwise-separable elsewhere) and ReLU over running sums of the convolutions' outputs
  (``denseBlock4``), then a 7x7 average pool: 112x112 → 256 features;
- ``FaceExpressionNet``: a fully connected layer to 7 classes (:data:`LABELS`), softmax;
- input: the face crop padded with zeros to a square (centred), resized bilinearly to 112x112
  (TFJS ``resizeBilinear`` without half-pixel centres), mean RGB (122.782, 117.001, 104.298)
  subtracted, divided by 255; face-api crops the box of its 68 landmarks grown by 20 % of its
  size (``FaceLandmarks.align``), clipped to the image.

``export/convert_face_api.py`` converts the TFJS weights into ``build/assets/face-api/
face_expression.pt``. Convolutions use TensorFlow's ``'same'`` padding (for stride 2 on an even
size: none before, one pixel after), not PyTorch's symmetric one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reenact.assets import AssetNotFoundError, assets_dir

FACE_API_PACKAGE = "@vladmandic/face-api"
FACE_API_VERSION = "1.7.15"
WEIGHTS_FILE = "face_expression.pt"

LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
"""The network's classes, in its output order (face-api's ``FACE_EXPRESSION_LABELS``)."""

INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)


def face_api_dir() -> Path:
    """``build/assets/face-api``: the converted weights and face-api's LICENSE."""
    return assets_dir() / "face-api"


def _pad_same(x: torch.Tensor, stride: int, kernel: int = 3) -> torch.Tensor:
    """TensorFlow ``'same'`` padding of ``x: (B, C, H, W)`` for a ``kernel`` with ``stride``."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad takes the last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class PlainConv(nn.Module):
    """3x3 convolution + bias (face-api ``ConvParams``: ``filters``, ``bias``)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels_out))

    def forward(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        out = F.conv2d(_pad_same(x, stride), self.conv.weight, stride=stride)
        return out + self.bias[:, None, None]


class SeparableConv(nn.Module):
    """Depthwise 3x3 (``depthwise_filter``), pointwise 1x1 (``pointwise_filter``), + ``bias``."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels_out))

    def forward(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        depthwise = F.conv2d(
            _pad_same(x, stride), self.depthwise.weight, stride=stride, groups=x.shape[1]
        )
        return self.pointwise(depthwise) + self.bias[:, None, None]


class DenseBlock4(nn.Module):
    """face-api's ``denseBlock4``: (B, C_in, H, W) → (B, C_out, H/2, W/2)."""

    def __init__(self, channels_in: int, channels_out: int, first: bool = False) -> None:
        super().__init__()
        self.conv0 = (PlainConv if first else SeparableConv)(channels_in, channels_out)
        self.conv1 = SeparableConv(channels_out, channels_out)
        self.conv2 = SeparableConv(channels_out, channels_out)
        self.conv3 = SeparableConv(channels_out, channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = torch.relu(self.conv0(x, 2))
        out2 = self.conv1(out1, 1)
        out3 = self.conv2(torch.relu(out1 + out2), 1)
        out4 = self.conv3(torch.relu(out1 + (out2 + out3)), 1)
        return torch.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    """(B, 3, 112, 112) float32 normalised RGB (:func:`network_input`) → (B, 7) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.dense0 = DenseBlock4(3, 32, first=True)
        self.dense1 = DenseBlock4(32, 64)
        self.dense2 = DenseBlock4(64, 128)
        self.dense3 = DenseBlock4(128, 256)
        self.fc = nn.Linear(256, len(LABELS))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 112, 112) → (B, 256): FaceFeatureExtractor's bottleneck."""
        out = self.dense3(self.dense2(self.dense1(self.dense0(x))))
        return F.avg_pool2d(out, 7, 2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) float32 → (size, size, C): TFJS ``resizeBilinear(alignCorners=false,
    halfPixelCenters=false)``: output pixel i reads source position i * (H / size)."""
    out = image
    for axis in (0, 1):
        length = out.shape[axis]
        position = np.arange(size, dtype=np.float64) * (length / size)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(np.ceil(position).astype(np.int64), length - 1)
        frac = (position - low).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = size
        frac = frac.reshape(shape)
        first, second = np.take(out, low, axis=axis), np.take(out, high, axis=axis)
        out = first + (second - first) * frac
    return out


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 → (S, S, C), S = max(H, W): zeros on both sides of the shorter
    dimension, the rounded half after the image (face-api ``padToSquare(isCenterImage=true)``)."""
    height, width = image.shape[:2]
    if height == width:
        return image
    difference = abs(height - width)
    after = math.floor(difference * 0.5 + 0.5)  # JavaScript's Math.round
    before = difference - after
    pads = (
        [(0, 0), (before, after), (0, 0)] if height > width else [(before, after), (0, 0), (0, 0)]
    )
    return np.pad(image, pads)


def network_input(faces: list[np.ndarray]) -> torch.Tensor:
    """Face crops, each (H, W, 3) uint8 RGB → (N, 3, 112, 112) float32 network input."""
    batch = []
    for face in faces:
        if face.ndim != 3 or face.shape[2] != 3 or min(face.shape[:2]) < 1:
            raise ValueError(f"expected an (H, W, 3) RGB face crop, got {face.shape}")
        square = _resize_bilinear(pad_to_square(face.astype(np.float32)), INPUT_SIZE)
        batch.append((square - np.float32(MEAN_RGB)) / np.float32(255.0))
    return torch.from_numpy(np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2)))


@dataclass(frozen=True)
class CropConfig:
    """How a face box becomes the classifier's crop."""

    padding: float = 0.2  # the box grows by this share of its width and height, half each side


def crop_face(
    image: np.ndarray, box: np.ndarray | tuple[float, ...], config: CropConfig = CropConfig()
) -> np.ndarray:
    """The classifier's crop of ``image: (H, W, 3) uint8`` around ``box: (4,) x0, y0, x1, y1``.

    face-api's convention (``Box.pad`` then ``clipAtImageBorders``, floored): the box grown by
    ``config.padding`` of its size, clipped to the image. Raises ValueError for an empty crop.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    pad_x, pad_y = (x1 - x0) * config.padding / 2, (y1 - y0) * config.padding / 2
    left, top = max(x0 - pad_x, 0.0), max(y0 - pad_y, 0.0)
    width = min(x1 + pad_x - left, image.shape[1] - left)
    height = min(y1 + pad_y - top, image.shape[0] - top)
    left_px, top_px, width_px, height_px = (math.floor(v) for v in (left, top, width, height))
    if width_px < 1 or height_px < 1:
        raise ValueError(f"face box {box} leaves no pixels of a {image.shape[:2]} image")
    return image[top_px : top_px + height_px, left_px : left_px + width_px]


class EmotionClassifier:
    """Face crops → probabilities of the 7 :data:`LABELS`."""

    def __init__(self, network: FaceExpressionNet, crop: CropConfig = CropConfig()) -> None:
        self.network = network.eval()
        self.crop = crop

    @classmethod
    def load(cls, path: str | Path | None = None, crop: CropConfig = CropConfig()):
        """From the converted state dict (default ``build/assets/face-api/face_expression.pt``)."""
        path = Path(path) if path else face_api_dir() / WEIGHTS_FILE
        if not path.is_file():
            raise AssetNotFoundError(
                f"{path} is missing: run `python -m export.convert_face_api` (make eval-emotions "
                "does) to fetch face-api and convert its expression network"
            )
        network = FaceExpressionNet()
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(network, crop)

    def probabilities(self, faces: list[np.ndarray]) -> np.ndarray:
        """Face crops, each (H, W, 3) uint8 RGB → (N, 7) float32 softmax probabilities."""
        if not faces:
            return np.zeros((0, len(LABELS)), np.float32)
        with torch.inference_mode():
            logits = self.network(network_input(faces))
        return torch.softmax(logits, dim=1).numpy()

    def classify(self, image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray:
        """(7,) float32 probabilities of the face in ``box`` of ``image: (H, W, 3) uint8``."""
        return self.probabilities([crop_face(image, box, self.crop)])[0]
