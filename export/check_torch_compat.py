"""Run an exported TorchScript model in the PyTorch that production's Triton ships (2.5).

Production serves ``model_repository/`` with ``nvcr.io/nvidia/tritonserver:24.10-py3``, whose
PyTorch backend links libtorch 2.5; the models are exported with a newer torch. A model that
refers to an operator the old runtime lacks does not load there. Two roles:

1. set-up, from the project's virtualenv (idempotent; downloads from PyPI the first time)::

       python -m export.check_torch_compat --create-venv

   makes ``build/torch-2.5.1/``: a virtualenv with PyPI's ``torch==2.5.1`` (its CUDA build, about
   4 GB with the nvidia-* wheels; it runs on the CPU too) and numpy;

2. the check, run by that virtualenv's python (``tests/unit/test_torch_compat.py`` does this)::

       build/torch-2.5.1/bin/python export/check_torch_compat.py \\
           --model model_repository/reenactor/1/model.pt --inputs in.npz --outputs out.npz

   loads the model on the CPU, calls it with the arrays ``input_0``, ``input_1``, ... of
   ``in.npz`` as positional arguments and writes its outputs (a tensor or a tuple of tensors) as
   ``output_0``, ``output_1``, ... to ``out.npz``; no pickles either way.

It imports only the standard library, numpy and torch: the old virtualenv has nothing else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OLD_TORCH = "2.5.1"  # the libtorch of Triton 24.10's PyTorch backend is a 2.5 build
VENV_PACKAGES = (f"torch=={OLD_TORCH}", "numpy==1.26.4")
READY_FILE = ".reenact-ready"  # written last: names the packages of a complete virtualenv
INPUT_PREFIX = "input_"
OUTPUT_PREFIX = "output_"


class VenvError(RuntimeError):
    """The old-torch virtualenv could not be made; the message says why and what to do."""


def venv_dir() -> Path:
    """``build/torch-2.5.1`` of the checkout (or of ``$REENACT_BUILD_DIR``, as reenact.assets)."""
    build = Path(os.environ.get("REENACT_BUILD_DIR", REPO_ROOT / "build")).resolve()
    return build / f"torch-{OLD_TORCH}"


def venv_python(venv: Path | None = None) -> Path:
    return (venv or venv_dir()) / "bin" / "python"


def venv_ready(venv: Path | None = None) -> bool:
    """Whether ``venv`` was completed with today's package list."""
    ready = (venv or venv_dir()) / READY_FILE
    return ready.is_file() and ready.read_text().split() == list(VENV_PACKAGES)


def create_venv(venv: Path | None = None, base_python: str = sys.executable) -> Path:
    """Make (or reuse, when complete) the old-torch virtualenv; its python. Raises VenvError
    when venv or pip fail, e.g. without access to PyPI."""
    venv = venv or venv_dir()
    if venv_ready(venv):
        return venv_python(venv)
    steps = [
        [base_python, "-m", "venv", "--clear", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "-q", "--no-input", *VENV_PACKAGES],
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise VenvError(
                f"could not make the torch {OLD_TORCH} virtualenv in {venv}: `{' '.join(command)}`"
                f" exited with {done.returncode}. It needs PyPI (about 4 GB for torch and its"
                f" nvidia-* wheels); run `python -m export.check_torch_compat --create-venv`"
                f" where PyPI is reachable.\n{done.stderr[-3000:]}"
            )
    (venv / READY_FILE).write_text("\n".join(VENV_PACKAGES) + "\n")
    return venv_python(venv)


def run_model(model: Path, inputs: Path, outputs: Path) -> None:
    """Load ``model`` on the CPU, call it on ``inputs`` (npz), write its outputs (npz)."""
    import numpy as np
    import torch

    module = torch.jit.load(str(model), map_location="cpu").eval()
    with np.load(inputs, allow_pickle=False) as saved:
        count = len(saved.files)
        args = [torch.from_numpy(saved[f"{INPUT_PREFIX}{i}"]) for i in range(count)]
    with torch.inference_mode():
        result = module(*args)
    results = result if isinstance(result, tuple | list) else (result,)
    arrays = {f"{OUTPUT_PREFIX}{i}": t.numpy() for i, t in enumerate(results)}
    np.savez(outputs, **arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--create-venv", action="store_true", help="make build/torch-2.5.1")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--inputs", type=Path)
    parser.add_argument("--outputs", type=Path)
    args = parser.parse_args(argv)
    if args.create_venv:
        try:
            python = create_venv()
        except VenvError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"ready: {python}")
        return 0
    if not (args.model and args.inputs and args.outputs):
        parser.error("give --create-venv, or --model, --inputs and --outputs")
    import torch

    print(f"torch {torch.__version__}: {args.model}")
    run_model(args.model, args.inputs, args.outputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
