"""MediaPipe FaceMesh (``face_landmark.tflite``, 468 3D landmarks) in PyTorch.

Input: ``(B, 3, 192, 192)`` float32 NCHW RGB in ``[0, 1]``: the rotated square face crop
(MediaPipe's ``face_landmark_cpu.pbtxt`` uses ``output_tensor_float_range {min: 0 max: 1}``; see
:func:`.detection.landmark_input`).

Output: ``landmarks (B, 468, 3)`` float32 (x, y, z) in 192-px crop units (x right, y down, z
depth in the same scale as x, smaller = closer to the camera) and ``face_flag (B, 1)`` float32, the
raw face-presence logit (MediaPipe applies a sigmoid and thresholds it at 0.5). The TFLite model
emits the same numbers as ``(B, 1, 1, 1404)`` and ``(B, 1, 1, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from torch import nn

from reenact.landmarks import mediapipe_dir
from reenact.landmarks.blazeface import BlazeBlock, BlockSpec, TFConv2d, load_weights

TFLITE_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
"""Path of the model inside the mediapipe wheel."""
TFLITE_FILE = PurePosixPath(TFLITE_MEMBER).name
WEIGHTS_FILE = "facemesh.pt"
INPUT_SIZE = 192
NUM_LANDMARKS = 468


def _prelu_block(index: int, in_channels: int, out_channels: int, stride: int = 1) -> BlockSpec:
    # Trunk block i: depthwise_conv2d_i → conv2d_{i+1}, activation p_re_lu_{i+1}.
    return BlockSpec(
        in_channels,
        out_channels,
        stride,
        f"depthwise_conv2d_{index}",
        f"conv2d_{index + 1}",
        f"p_re_lu_{index + 1}",
    )


TRUNK = (
    _prelu_block(1, 16, 16),
    _prelu_block(2, 16, 16),
    _prelu_block(3, 16, 32, stride=2),
    _prelu_block(4, 32, 32),
    _prelu_block(5, 32, 32),
    _prelu_block(6, 32, 64, stride=2),
    _prelu_block(7, 64, 64),
    _prelu_block(8, 64, 64),
    _prelu_block(9, 64, 128, stride=2),
    _prelu_block(10, 128, 128),
    _prelu_block(11, 128, 128),
    _prelu_block(12, 128, 128, stride=2),
    _prelu_block(13, 128, 128),
    _prelu_block(14, 128, 128),
)
"""Blocks from the 96x96 stem output to the shared 6x6x128 feature map."""


@dataclass(frozen=True)
class HeadSpec:
    """A 6x6 → 1x1 output head: blocks, 1x1 projection + PReLU, one block, 3x3 VALID conv."""

    blocks: tuple[BlockSpec, ...]
    projection: str
    projection_prelu: str
    projection_channels: int
    refine: BlockSpec
    output: str
    output_channels: int


MESH_HEAD = HeadSpec(
    blocks=(
        _prelu_block(15, 128, 128, stride=2),
        _prelu_block(16, 128, 128),
        _prelu_block(17, 128, 128),
    ),
    projection="conv2d_19",
    projection_prelu="p_re_lu_19",
    projection_channels=32,
    refine=BlockSpec(32, 32, 1, "depthwise_conv2d_18", "conv2d_20", "p_re_lu_20"),
    output="conv2d_21",
    output_channels=NUM_LANDMARKS * 3,
)
FACE_FLAG_HEAD = HeadSpec(
    blocks=(BlockSpec(128, 128, 2, "depthwise_conv2d_23", "conv2d_28", "p_re_lu_26"),),
    projection="conv2d_29",
    projection_prelu="p_re_lu_27",
    projection_channels=32,
    refine=BlockSpec(32, 32, 1, "depthwise_conv2d_24", "conv2d_30", "p_re_lu_28"),
    output="conv2d_31",
    output_channels=1,
)


class Head(nn.Module):
    """``(B, 128, 6, 6) → (B, output_channels, 1, 1)`` as described by a :class:`HeadSpec`."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(BlazeBlock(b) for b in spec.blocks))
        channels = spec.blocks[-1].out_channels
        self.projection = TFConv2d(channels, spec.projection_channels, 1)
        self.projection_act = nn.PReLU(spec.projection_channels)
        self.refine = BlazeBlock(spec.refine)
        self.output = TFConv2d(
            spec.refine.out_channels, spec.output_channels, 3, stride=3, tf_padding="VALID"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection_act(self.projection(self.blocks(x)))
        return self.output(self.refine(x))

    @staticmethod
    def tflite_layers(prefix: str, spec: HeadSpec) -> dict[str, str]:
        """Module path (under ``prefix``) → TFLite layer name, for the weights of one head."""
        layers = {
            f"{prefix}.projection": spec.projection,
            f"{prefix}.projection_act": spec.projection_prelu,
            f"{prefix}.output": spec.output,
        }
        for i, block in enumerate(spec.blocks):
            layers.update(BlazeBlock.tflite_layers(f"{prefix}.blocks.{i}", block))
        layers.update(BlazeBlock.tflite_layers(f"{prefix}.refine", spec.refine))
        return layers


class FaceMesh(nn.Module):
    """FaceMesh. ``x: (B, 3, 192, 192)`` float32 in [0, 1] →
    ``(landmarks (B, 468, 3), face_flag (B, 1))`` float32, raw as in TFLite."""

    def __init__(self) -> None:
        super().__init__()
        self.num_landmarks = NUM_LANDMARKS
        self.stem = TFConv2d(3, 16, 3, stride=2)
        self.stem_act = nn.PReLU(16)
        self.trunk = nn.Sequential(*(BlazeBlock(spec) for spec in TRUNK))
        self.mesh_head = Head(MESH_HEAD)
        self.face_flag_head = Head(FACE_FLAG_HEAD)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(self.stem_act(self.stem(x)))
        landmarks = self.mesh_head(features).reshape(x.shape[0], self.num_landmarks, 3)
        face_flag = self.face_flag_head(features).reshape(x.shape[0], 1)
        return landmarks, face_flag

    @staticmethod
    def tflite_layers() -> dict[str, str]:
        """Module path → TFLite layer name (output tensor name) for every weight of the model."""
        layers = {"stem": "conv2d_1", "stem_act": "p_re_lu_1"}
        for i, spec in enumerate(TRUNK):
            layers.update(BlazeBlock.tflite_layers(f"trunk.{i}", spec))
        layers.update(Head.tflite_layers("mesh_head", MESH_HEAD))
        layers.update(Head.tflite_layers("face_flag_head", FACE_FLAG_HEAD))
        return layers

    @classmethod
    def load(cls, path: str | Path | None = None) -> FaceMesh:
        """The frozen network in eval mode with converted weights (default: ``mediapipe_dir()``)."""
        return load_weights(cls(), Path(path) if path else mediapipe_dir() / WEIGHTS_FILE)
