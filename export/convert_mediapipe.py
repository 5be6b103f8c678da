"""Convert MediaPipe's BlazeFace (short and full range) and FaceMesh ``.tflite`` weights to
PyTorch state dicts.

Set-up step, after ``export/extract_mediapipe.py``:

    python export/convert_mediapipe.py [--dir build/assets/mediapipe] [--force]

Reads ``face_detection_short_range.tflite``, ``face_detection_full_range_sparse.tflite`` and
``face_landmark.tflite`` with the project's reader (``reenact.tflite``), checks that every weight
layer lands in the PyTorch module (``reenact.landmarks.blazeface.BlazeFace`` /
``BlazeFaceFullRange`` / ``reenact.landmarks.facemesh.FaceMesh``) and that the graph only uses
what those modules implement, and writes ``blazeface.pt`` / ``blazeface_full_range.pt`` /
``facemesh.pt`` (``torch.save`` of a dict of plain float32 tensors). An output newer than its
``.tflite`` is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reenact.landmarks import blazeface, facemesh, mediapipe_dir
from reenact.landmarks.blazeface import BlazeFace, BlazeFaceFullRange
from reenact.landmarks.facemesh import FaceMesh
from reenact.tflite import (
    Operator,
    TFLiteModel,
    UnsupportedModelError,
    read_tflite,
    state_dict_from_tflite,
)


def check_blaze_graph(model: TFLiteModel) -> None:
    """Raise UnsupportedModelError if the graph uses an op in a way BlazeBlock does not model.

    BlazeBlock assumes: no fused activations, 2x2/2 max pools, and ``PAD`` only appending zero
    channels (the residual of a widening block).
    """
    for op in model.operators:
        if op.options.get("activation", "NONE") != "NONE":
            raise UnsupportedModelError(f"{op.name}: fused activation {op.options['activation']}")
        if op.opcode == "MAX_POOL_2D":
            geometry = tuple(
                op.options[k] for k in ("filter_h", "filter_w", "stride_h", "stride_w")
            )
            if geometry != (2, 2, 2, 2):
                raise UnsupportedModelError(f"{op.name}: max pool {geometry} is not 2x2/2")
        if op.opcode == "PAD":
            paddings = op.constants["paddings"]
            if paddings[:3].any() or paddings[3, 0] != 0:
                raise UnsupportedModelError(f"{op.name}: pads more than trailing channels")


def _reads_padded(model: TFLiteModel, op: Operator) -> bool:
    """Whether the activation input of ``op`` is the output of a ``PAD``."""
    producers = {other.outputs[0]: other.opcode for other in model.operators}
    return all(producers.get(name) == "PAD" for name in op.inputs)


def check_full_range_graph(model: TFLiteModel) -> None:
    """Raise UnsupportedModelError if the full-range graph does something PaddedConv2d, the
    residual sums and the heads of ``BlazeFaceFullRange`` do not model.

    Assumed: every ``PAD`` adds one zero pixel on each spatial side and feeds a 3x3 ``VALID``
    conv (so that pair is ``nn.Conv2d(padding=1)``), 1x1 convs read unpadded maps; sums fuse at
    most a ReLU; upsampling is bilinear with half-pixel centres to a square size (x2 in the
    module; the LiteRT comparison test checks the sizes); depth-to-space is by 2.
    """
    one_pixel = np.array([[0, 0], [1, 1], [1, 1], [0, 0]])
    for op in model.operators:
        if op.opcode == "PAD" and not np.array_equal(op.constants["paddings"], one_pixel):
            raise UnsupportedModelError(f"{op.name}: padding {op.constants['paddings'].tolist()}")
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kernel = op.constants["kernel"].shape[1]
            padded = _reads_padded(model, op)
            if (op.options["padding"] != "VALID" and kernel > 1) or padded != (kernel == 3):
                raise UnsupportedModelError(f"{op.name}: {kernel}x{kernel} conv padding differs")
        if op.opcode == "ADD" and op.options["activation"] not in ("NONE", "RELU"):
            raise UnsupportedModelError(f"{op.name}: fused activation {op.options['activation']}")
        if op.opcode == "RESIZE_BILINEAR" and (
            op.options != {"align_corners": False, "half_pixel_centers": True}
            or op.constants["size"][0] != op.constants["size"][1]
        ):
            raise UnsupportedModelError(f"{op.name}: resize {op.options} is not x2 half-pixel")
        if op.opcode == "DEPTH_TO_SPACE" and op.options["block_size"] != 2:
            raise UnsupportedModelError(f"{op.name}: depth to space by {op.options['block_size']}")


@dataclass(frozen=True)
class Network:
    """One converted network: module class, layer map, graph check, file names."""

    module: Callable[[], nn.Module]
    layers: Callable[[nn.Module, TFLiteModel], dict[str, str]]
    check_graph: Callable[[TFLiteModel], None]
    tflite_file: str
    weights_file: str


def _layers_by_order(module: nn.Module, model: TFLiteModel) -> dict[str, str]:
    """Module conv path → TFLite layer, pairing both in execution order (the full-range file's
    fused tensor names do not name its Keras layers reliably). Kind, shape, stride, padding and
    fused activation are then checked pair by pair by ``state_dict_from_tflite``."""
    paths, layers = module.conv_paths(), model.weight_layers()
    if len(paths) != len(layers):
        raise UnsupportedModelError(f"{len(layers)} weight layers for {len(paths)} convolutions")
    return dict(zip(paths, layers, strict=True))


NETWORKS = (
    Network(
        BlazeFace,
        lambda module, model: BlazeFace.tflite_layers(),
        check_blaze_graph,
        blazeface.TFLITE_FILE,
        blazeface.WEIGHTS_FILE,
    ),
    Network(
        BlazeFaceFullRange,
        _layers_by_order,
        check_full_range_graph,
        blazeface.FULL_RANGE_TFLITE_FILE,
        blazeface.FULL_RANGE_WEIGHTS_FILE,
    ),
    Network(
        FaceMesh,
        lambda module, model: FaceMesh.tflite_layers(),
        check_blaze_graph,
        facemesh.TFLITE_FILE,
        facemesh.WEIGHTS_FILE,
    ),
)


def convert(tflite_path: Path, network: Network) -> dict[str, torch.Tensor]:
    """The converted state dict of ``network`` from ``tflite_path``."""
    model = read_tflite(tflite_path)
    network.check_graph(model)
    module = network.module()
    return state_dict_from_tflite(module, network.layers(module, model), model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=mediapipe_dir(),
        help="folder with the .tflite files, where the .pt files are written",
    )
    parser.add_argument("--force", action="store_true", help="convert even if up to date")
    args = parser.parse_args(argv)

    for network in NETWORKS:
        source, target = args.dir / network.tflite_file, args.dir / network.weights_file
        if not source.is_file():
            parser.error(f"{source} missing: run export/extract_mediapipe.py first")
        if not args.force and target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            print(f"up to date: {target}")
            continue
        state = convert(source, network)
        partial = target.with_suffix(".pt.partial")
        torch.save(state, partial)
        partial.replace(target)
        count = sum(int(np.prod(t.shape)) for t in state.values())
        print(f"wrote: {target} ({len(state)} tensors, {count} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
