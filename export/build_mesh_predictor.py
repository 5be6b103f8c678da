"""Script the mesh predictor (FaceMesh + 3DMM fit) into the production model repository.

    python export/build_mesh_predictor.py [--out model_repository/mesh_predictor/1/model.pt]
        [--regressor RUN_FOLDER]

Needs the converted MediaPipe weights (``make setup``) and the ICT model. By default the
parameters come from the landmark fit; ``--regressor`` takes them from a trained regression
network instead (``python -m reenact train predictor``; docs/neural.md), with the same tensors,
so face_mesh and face_reenactment serve it unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from reenact import mesh_predictor

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "model_repository" / "mesh_predictor" / "1" / "model.pt"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--regressor", type=Path, help="a trained predictor run (or its last.pt)")
    args = parser.parse_args(argv)
    if args.regressor is None:
        module = mesh_predictor.build()
    else:
        module = mesh_predictor.build_regressed(args.regressor)
    scripted = torch.jit.script(module)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
