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
