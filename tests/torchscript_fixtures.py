"""A tiny TorchScript model in a production-style repository, to test the generic runner."""

from __future__ import annotations

from pathlib import Path

import torch

CONFIG = """
name: "affine"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  { name: "X__0" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "SHIFT__1" data_type: TYPE_FP32 dims: [ 1 ] }
]
output [
  { name: "Y__0" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "TOTAL__1" data_type: TYPE_FP32 dims: [ 1 ] }
]
instance_group [ { kind: KIND_GPU count: 1 } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
"""


class Affine(torch.nn.Module):
    """Y = 2 X + SHIFT, TOTAL = sum(Y); both per batch row."""

    def forward(self, x: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = 2.0 * x + shift
        return y, y.sum(dim=1, keepdim=True)


def write_repository(root: Path) -> Path:
    """A production repository holding the ``affine`` TorchScript model; returns ``root``."""
    version = root / "affine" / "1"
    version.mkdir(parents=True)
    (root / "affine" / "config.pbtxt").write_text(CONFIG)
    torch.jit.script(Affine()).save(str(version / "model.pt"))
    return root
