"""Convert MediaPipe's BlazeFace and FaceMesh ``.tflite`` weights to PyTorch state dicts.

Set-up step, after ``export/extract_mediapipe.py``:

    python export/convert_mediapipe.py [--dir build/assets/mediapipe] [--force]

Reads ``face_detection_short_range.tflite`` and ``face_landmark.tflite`` with the project's
reader (``reenact.tflite``), checks that every weight layer lands in the PyTorch module
(``reenact.landmarks.blazeface.BlazeFace`` / ``reenact.landmarks.facemesh.FaceMesh``) and that
the graph only uses what those modules implement, and writes ``blazeface.pt`` / ``facemesh.pt``
(``torch.save`` of a dict of plain float32 tensors). An output newer than its ``.tflite`` is
kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from reenact.landmarks import blazeface, facemesh, mediapipe_dir
from reenact.landmarks.blazeface import BlazeFace
from reenact.landmarks.facemesh import FaceMesh
from reenact.tflite import TFLiteModel, UnsupportedModelError, read_tflite, state_dict_from_tflite

NETWORKS: tuple[tuple[type[BlazeFace] | type[FaceMesh], str, str], ...] = (
    (BlazeFace, blazeface.TFLITE_FILE, blazeface.WEIGHTS_FILE),
    (FaceMesh, facemesh.TFLITE_FILE, facemesh.WEIGHTS_FILE),
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


def convert(
    tflite_path: Path, network: type[BlazeFace] | type[FaceMesh]
) -> dict[str, torch.Tensor]:
    """The converted state dict of ``network`` from ``tflite_path``."""
    model = read_tflite(tflite_path)
    check_blaze_graph(model)
    return state_dict_from_tflite(network(), network.tflite_layers(), model)


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

    for network, tflite_name, weights_name in NETWORKS:
        source, target = args.dir / tflite_name, args.dir / weights_name
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
