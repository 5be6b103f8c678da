"""MediaPipe BlazeFace short-range face detector (``face_detection_short_range.tflite``) in PyTorch.

Input: ``(B, 3, 128, 128)`` float32 NCHW RGB in ``[-1, 1]`` (MediaPipe's ``face_detection.pbtxt``
letterboxes the image into 128x128 with ``output_tensor_float_range {min: -1 max: 1}`` and a zero
border, i.e. the padding is -1 after normalisation; see :func:`.detection.detector_input`).

Output, like the TFLite model's: ``regressors (B, 896, 16)`` raw box/keypoint offsets (in 128-px
tensor units, relative to the anchors) and ``classificators (B, 896, 1)`` raw score logits; the
896 anchors are a 16x16 grid x 2 (stride 8) then an 8x8 grid x 6 (stride 16), row-major, as
:func:`.detection.ssd_anchors` generates them.

The building blocks (:class:`TFConv2d`, :class:`BlazeBlock`) are shared with :mod:`.facemesh`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from reenact.landmarks import mediapipe_dir

TFLITE_MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
"""Path of the model inside the mediapipe wheel."""
TFLITE_FILE = PurePosixPath(TFLITE_MEMBER).name
WEIGHTS_FILE = "blazeface.pt"
INPUT_SIZE = 128

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def tf_same_padding(kernel_size: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding ``(before, after)`` along an axis whose size is a multiple of ``stride``.

    TF pads ``max(k - s, 0)`` in total and puts the odd pixel *after* (e.g. 3x3/2 → (0, 1),
    5x5/2 → (1, 2)), unlike PyTorch's symmetric ``padding``. Every feature map of these networks
    has an even size before a stride-2 layer, so the padding does not depend on the size.
    """
    total = max(kernel_size - stride, 0)
    return total // 2, total - total // 2


class TFConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TFLite's ``SAME``/``VALID`` padding (state dict keys as ``nn.Conv2d``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        tf_padding: str = "SAME",
    ) -> None:
        if tf_padding not in ("SAME", "VALID"):
            raise ValueError(f"tf_padding must be 'SAME' or 'VALID', not {tf_padding!r}")
        before, after = tf_same_padding(kernel_size, stride) if tf_padding == "SAME" else (0, 0)
        symmetric = before == after
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=before if symmetric else 0,
            groups=groups,
        )
        self.tf_padding = tf_padding
        # Asymmetric SAME padding is done by F.pad (left, right, top, bottom) before the conv.
        self.pad_input = not symmetric
        self.input_pad = [before, after, before, after]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_input:
            x = F.pad(x, self.input_pad)
        return self._conv_forward(x, self.weight, self.bias)


@dataclass(frozen=True)
class BlockSpec:
    """One :class:`BlazeBlock` and the TFLite layer names of its weights."""

    in_channels: int
    out_channels: int
    stride: int
    depthwise: str
    pointwise: str
    prelu: str | None = None
    """Name of the block's PRELU layer; None for a (weightless) RELU block."""


class BlazeBlock(nn.Module):
    """Residual block: depthwise 3x3 (stride 1 or 2) → pointwise 1x1, plus the input → activation.

    With stride 2 the residual path is a 2x2 max pool; when the block widens, the residual is
    zero-padded at the end of the channel axis (TFLite ``PAD`` of the channel dimension).
    ``x: (B, in_channels, H, W) → (B, out_channels, H / stride, W / stride)``.
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.depthwise = TFConv2d(
            spec.in_channels, spec.in_channels, 3, stride=spec.stride, groups=spec.in_channels
        )
        self.pointwise = TFConv2d(spec.in_channels, spec.out_channels, 1)
        self.pool = nn.MaxPool2d(2, 2) if spec.stride == 2 else nn.Identity()
        self.channel_pad = spec.out_channels - spec.in_channels
        self.act = nn.PReLU(spec.out_channels) if spec.prelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.pool(x)
        if self.channel_pad > 0:
            residual = F.pad(residual, [0, 0, 0, 0, 0, self.channel_pad])
        return self.act(self.pointwise(self.depthwise(x)) + residual)

    @staticmethod
    def tflite_layers(prefix: str, spec: BlockSpec) -> dict[str, str]:
        """Module path (under ``prefix``) → TFLite layer name, for the weights of one block."""
        layers = {f"{prefix}.depthwise": spec.depthwise, f"{prefix}.pointwise": spec.pointwise}
        if spec.prelu:
            layers[f"{prefix}.act"] = spec.prelu
        return layers


def _relu_block(index: int, in_channels: int, out_channels: int, stride: int = 1) -> BlockSpec:
    # Keras names: the first depthwise layer is "depthwise_conv2d", then "_1", "_2", ...; the
    # pointwise convs follow the stem "conv2d" as "conv2d_1", "conv2d_2", ...
    depthwise = "depthwise_conv2d" if index == 0 else f"depthwise_conv2d_{index}"
    return BlockSpec(in_channels, out_channels, stride, depthwise, f"conv2d_{index + 1}")


STAGE_S8 = (
    _relu_block(0, 24, 24),
    _relu_block(1, 24, 28),
    _relu_block(2, 28, 32, stride=2),
    _relu_block(3, 32, 36),
    _relu_block(4, 36, 42),
    _relu_block(5, 42, 48, stride=2),
    _relu_block(6, 48, 56),
    _relu_block(7, 56, 64),
    _relu_block(8, 64, 72),
    _relu_block(9, 72, 80),
    _relu_block(10, 80, 88),
)
"""Blocks from the 64x64 stem output to the 16x16 (stride 8) feature map."""
STAGE_S16 = (
    _relu_block(11, 88, 96, stride=2),
    _relu_block(12, 96, 96),
    _relu_block(13, 96, 96),
    _relu_block(14, 96, 96),
    _relu_block(15, 96, 96),
)
"""Blocks from the stride-8 map to the 8x8 (stride 16) feature map."""
ANCHORS_PER_CELL_S8 = 2
ANCHORS_PER_CELL_S16 = 6
NUM_COORDS = 16
"""Per anchor: box (x, y, w, h) then 6 keypoints (x, y)."""


def _flatten_head(head: torch.Tensor, values: int) -> torch.Tensor:
    """NCHW head output ``(B, A * values, H, W)`` → ``(B, H * W * A, values)`` in TFLite order."""
    return head.permute(0, 2, 3, 1).reshape(head.shape[0], -1, values)


class BlazeFace(nn.Module):
    """BlazeFace short range. ``x: (B, 3, 128, 128)`` float32 in [-1, 1] →
    ``(regressors (B, 896, 16), classificators (B, 896, 1))`` float32, raw as in TFLite."""

    def __init__(self) -> None:
        super().__init__()
        self.num_coords = NUM_COORDS
        self.stem = TFConv2d(3, 24, 5, stride=2)
        self.stem_act = nn.ReLU()
        self.stage_s8 = nn.Sequential(*(BlazeBlock(spec) for spec in STAGE_S8))
        self.stage_s16 = nn.Sequential(*(BlazeBlock(spec) for spec in STAGE_S16))
        c8, c16 = STAGE_S8[-1].out_channels, STAGE_S16[-1].out_channels
        self.classifier_s8 = TFConv2d(c8, ANCHORS_PER_CELL_S8, 1)
        self.classifier_s16 = TFConv2d(c16, ANCHORS_PER_CELL_S16, 1)
        self.regressor_s8 = TFConv2d(c8, ANCHORS_PER_CELL_S8 * NUM_COORDS, 1)
        self.regressor_s16 = TFConv2d(c16, ANCHORS_PER_CELL_S16 * NUM_COORDS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem_act(self.stem(x))
        f8 = self.stage_s8(x)
        f16 = self.stage_s16(f8)
        regressors = torch.cat(
            [
                _flatten_head(self.regressor_s8(f8), self.num_coords),
                _flatten_head(self.regressor_s16(f16), self.num_coords),
            ],
            dim=1,
        )
        classificators = torch.cat(
            [_flatten_head(self.classifier_s8(f8), 1), _flatten_head(self.classifier_s16(f16), 1)],
            dim=1,
        )
        return regressors, classificators

    @staticmethod
    def tflite_layers() -> dict[str, str]:
        """Module path → TFLite layer name (output tensor name) for every weight of the model."""
        layers = {
            "stem": "conv2d",
            "classifier_s8": "classificator_8",
            "classifier_s16": "classificator_16",
            "regressor_s8": "regressor_8",
            "regressor_s16": "regressor_16",
        }
        for stage, specs in (("stage_s8", STAGE_S8), ("stage_s16", STAGE_S16)):
            for i, spec in enumerate(specs):
                layers.update(BlazeBlock.tflite_layers(f"{stage}.{i}", spec))
        return layers

    @classmethod
    def load(cls, path: str | Path | None = None) -> BlazeFace:
        """The frozen network in eval mode with converted weights (default: ``mediapipe_dir()``)."""
        return load_weights(cls(), Path(path) if path else mediapipe_dir() / WEIGHTS_FILE)


def load_weights(module: ModuleT, path: Path) -> ModuleT:
    """Load a converted state dict into ``module`` (strictly); eval mode, parameters frozen."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run export/extract_mediapipe.py then export/convert_mediapipe.py"
        )
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    module.requires_grad_(False)
    return module.eval()


# --- Full range -----------------------------------------------------------------------------

FULL_RANGE_TFLITE_MEMBER = (
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
)
"""Path of the full-range model inside the mediapipe wheel (weights pruned, stored sparse)."""
FULL_RANGE_TFLITE_FILE = PurePosixPath(FULL_RANGE_TFLITE_MEMBER).name
FULL_RANGE_WEIGHTS_FILE = "blazeface_full_range.pt"
FULL_RANGE_INPUT_SIZE = 192
FULL_RANGE_CELLS = 48
"""The single output grid: 48x48 cells (stride 4), one anchor each."""


class PaddedConv2d(nn.Conv2d):
    """A convolution of the full-range graph: TFLite ``PAD`` (1 px of zeros on each side, for a
    3x3 kernel) then a ``VALID`` conv, which is ``nn.Conv2d(padding=kernel_size // 2)``; with
    ``relu`` the conv's fused ReLU. ``tf_padding``/``tf_activation`` let the converter check both
    against the file."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        relu: bool = False,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
        )
        self.tf_padding = "VALID"
        self.tf_activation = "RELU" if relu else "NONE"
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv_forward(x, self.weight, self.bias)
        return F.relu(y) if self.relu else y


def _depthwise(channels: int, stride: int = 1) -> PaddedConv2d:
    return PaddedConv2d(channels, channels, 3, stride=stride, groups=channels)


class BottleneckBlock(nn.Module):
    """Residual bottleneck of the full-range backbone, ``(B, C, H, W) → (B, C, H, W)``:
    depthwise 3x3 → 1x1 to ``mid`` + ReLU → depthwise 3x3 → 1x1 back to C, plus the input → ReLU."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.depthwise1 = _depthwise(channels)
        self.reduce = PaddedConv2d(channels, mid, relu=True)
        self.depthwise2 = _depthwise(mid)
        self.expand = PaddedConv2d(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.depthwise2(self.reduce(self.depthwise1(x))))
        return F.relu(x + y)


class DownBlock(nn.Sequential):
    """Stride-2 stage entry, no residual: ``(B, C_in, H, W) → (B, C_out, H / 2, W / 2)``:
    depthwise 3x3/2 → 1x1 to ``mid`` + ReLU → depthwise 3x3 → 1x1 to C_out + ReLU."""

    def __init__(self, in_channels: int, mid: int, out_channels: int) -> None:
        super().__init__(
            _depthwise(in_channels, stride=2),
            PaddedConv2d(in_channels, mid, relu=True),
            _depthwise(mid),
            PaddedConv2d(mid, out_channels, relu=True),
        )


def _stage(
    down: tuple[int, int, int] | None, channels: int, mid: int, blocks: int
) -> nn.Sequential:
    """An optional :class:`DownBlock` (in, mid, out channels), then ``blocks`` bottlenecks."""
    layers: list[nn.Module] = [DownBlock(*down)] if down else []
    layers += [BottleneckBlock(channels, mid) for _ in range(blocks)]
    return nn.Sequential(*layers)


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TFLite ``DEPTH_TO_SPACE`` (TF's DCR order) on NCHW: ``(B, block² C, H, W) →
    (B, C, block H, block W)``; input channel ``(i * block + j) * C + c`` lands at row offset i,
    column offset j of output channel c (``nn.PixelShuffle`` reads ``c * block² + i * block + j``
    instead)."""
    b, channels, h, w = x.shape
    c = channels // (block * block)
    x = x.reshape(b, block, block, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c, h * block, w * block)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """TFLite ``RESIZE_BILINEAR`` x2 with half-pixel centres (not aligned corners)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class BlazeFaceFullRange(nn.Module):
    """BlazeFace full range (``face_detection_full_range_sparse.tflite``).

    ``x: (B, 3, 192, 192)`` float32 in [-1, 1] (letterboxed like short range) →
    ``(regressors (B, 2304, 16), classificators (B, 2304, 1))`` float32, raw as in TFLite: one
    anchor per cell of a 48x48 grid (stride 4), row-major; offsets in 192-px tensor units.

    A bottleneck backbone (feature maps 96, 48, 24, 12, 6) and a top-down pyramid back to 48x48
    (1x1 lateral convs, bilinear x2 upsampling, sums); each head is a 1x1 conv, a depthwise 3x3/2
    and a depth-to-space x2. Submodules are registered in the order the TFLite graph runs their
    weight layers; :meth:`tflite_layers` relies on that order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.num_coords = NUM_COORDS
        self.stem = PaddedConv2d(3, 32, 3, stride=2, relu=True)
        self.stage96 = _stage(None, 32, 8, blocks=2)
        self.stage48 = _stage((32, 16, 64), 64, 16, blocks=2)
        self.lateral48 = PaddedConv2d(64, 48, relu=True)
        self.stage24 = _stage((64, 32, 128), 128, 32, blocks=2)
        self.lateral24 = PaddedConv2d(128, 64, relu=True)
        self.stage12 = _stage((128, 48, 192), 192, 48, blocks=2)
        self.lateral12 = PaddedConv2d(192, 96, relu=True)
        self.stage6 = _stage((192, 96, 384), 384, 96, blocks=3)
        self.top6 = PaddedConv2d(384, 96, relu=True)
        self.pyramid12 = _stage(None, 96, 48, blocks=2)
        self.top12 = PaddedConv2d(96, 64, relu=True)
        self.pyramid24 = _stage(None, 64, 32, blocks=2)
        self.top24 = PaddedConv2d(64, 48, relu=True)
        self.pyramid48 = _stage(None, 48, 24, blocks=1)
        self.classifier = PaddedConv2d(48, 4)
        self.classifier_down = _depthwise(4, stride=2)
        self.regressor = PaddedConv2d(48, 4 * NUM_COORDS)
        self.regressor_down = _depthwise(4 * NUM_COORDS, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f48 = self.stage48(self.stage96(self.stem(x)))
        f24 = self.stage24(f48)
        f12 = self.stage12(f24)
        f6 = self.stage6(f12)
        p12 = self.pyramid12(self.lateral12(f12) + _upsample(self.top6(f6)))
        p24 = self.pyramid24(self.lateral24(f24) + _upsample(self.top12(p12)))
        p48 = self.pyramid48(self.lateral48(f48) + _upsample(self.top24(p24)))
        scores = depth_to_space(self.classifier_down(self.classifier(p48)), 2)
        boxes = depth_to_space(self.regressor_down(self.regressor(p48)), 2)
        return _flatten_head(boxes, self.num_coords), _flatten_head(scores, 1)

    def conv_paths(self) -> list[str]:
        """Module paths of every convolution, in registration (= TFLite execution) order."""
        return [name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)]

    @classmethod
    def load(cls, path: str | Path | None = None) -> BlazeFaceFullRange:
        """The frozen network in eval mode with converted weights (default: ``mediapipe_dir()``)."""
        default = mediapipe_dir() / FULL_RANGE_WEIGHTS_FILE
        return load_weights(cls(), Path(path) if path else default)
