"""Read each reenacted image back with the mesh predictor and print how it compares.

    python export/eval_self_consistency.py [PHOTO] [--emotions sad,angry]

Runs face_reenactment's request in this process (the same code as the served model), then, for
each output and for a ground-truth painted head of each target, recovers the expression with the
mesh predictor (:mod:`reenact.evaluation`). Without PHOTO it uses the scikit-image astronaut.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from reenact.errors import RequestError
from reenact.evaluation import read_back, summary
from reenact.morphable import EXPR_SLICE, MorphableModel
from reenact.pipeline import FaceMeshPipeline, local_reenactment


def astronaut_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path)
    parser.add_argument("--emotions", help="comma-separated; default: the 15 default emotions")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    photo = args.photo.read_bytes() if args.photo else astronaut_jpeg()
    reenactment = local_reenactment()
    emotions = None
    if args.emotions:
        emotions = np.array([e.encode() for e in args.emotions.split(",")], dtype=object)
    result = reenactment(photo, reenactment.options.parse(emotions=emotions, output_format=None))
    face_mesh = FaceMeshPipeline()

    def read_expression(data: bytes) -> np.ndarray:
        try:
            return face_mesh(data).result.source_params[EXPR_SLICE]
        except RequestError:  # no face found: every comparison with it counts as a miss
            return np.full(EXPR_SLICE.stop - EXPR_SLICE.start, np.nan, np.float32)

    height, width = np.asarray(Image.open(io.BytesIO(result.images[0]))).shape[:2]
    rows = read_back(
        result.names,
        result.images,
        result.target_params,
        result.source_params,
        read_expression,
        MorphableModel.load(),
        (height, width),
    )
    print(f"{'emotion':22s} {'out→tgt':>8s} {'out→src':>8s} {'gt→tgt':>8s} {'gt→src':>8s}", end="")
    print(f" {'out→gt':>8s}")
    for r in rows:
        print(
            f"{r.name:22s} {r.output_to_target:8.2f} {r.output_to_source:8.2f} "
            f"{r.truth_to_target:8.2f} {r.truth_to_source:8.2f} {r.output_to_truth:8.2f}"
        )
    for key, count in summary(rows).items():
        print(f"{key}: {count}/{len(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
