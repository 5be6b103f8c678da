"""The production image's build steps: one script for docker/Dockerfile and the test suite.

    python3 docker/install.py [--dry-run] [--root DIR] STEP [options]

Steps, in the order docker/Dockerfile runs them (each prints its commands as it runs them):

``wheels --out DIR``
    builder stage: the pinned build tools, then the pnccrender wheel (the C++ extension; the
    compiler exists in the builder stage only).
``deps [--torch-index URL] [--variant torchscript|onnx]``
    runtime stage: the pinned dependencies (:data:`RUNTIME_PINS`; torch as its CPU build: the
    python models run torch on the CPU, the TorchScript models run in Triton's own libtorch).
``library --wheels DIR``
    runtime stage: the pnccrender wheel, the reenact library (editable, so that ``--root`` is
    its checkout root as after ``make setup``), then ``pip check``.
``assets [--ict-dir DIR]``
    the ICT-FaceKit model the way set-up obtains it (``python -m export.fetch_ict``), the
    MediaPipe weights (``export/extract_mediapipe.py``, ``export/convert_mediapipe.py``).
``export [--variant torchscript|onnx] [--serve-repository DIR]``
    the TorchScript models, the deep health check's probe face, and the repository tritonserver
    serves: ``DIR`` is a link to ``model_repository/`` (torchscript) or the ONNX variant
    written by ``python -m export.export_onnx --repository DIR`` (onnx).

``--dry-run`` prints every command without running it. Only the standard library is used: the
script runs before anything is installed, under the container's Python 3.10.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
VARIANTS = ("torchscript", "onnx")

# Resolved for CPython 3.10 on manylinux x86_64 (the container's interpreter). torch's CPU build
# carries the +cpu label; pyproject.toml's torch==2.13.0 accepts it.
RUNTIME_PINS = (
    "torch==2.13.0+cpu",
    "numpy==1.26.4",
    "pillow==11.3.0",
    "opencv-python-headless==4.11.0.86",
    "protobuf==4.25.9",
    "tflite==2.18.0",
    "flatbuffers==25.12.19",
    "setuptools==80.9.0",
    "filelock==4.1.0",
    "typing-extensions==4.16.0",
    "sympy==1.14.0",
    "mpmath==1.3.0",
    "networkx==3.4.2",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "fsspec==2026.9.0",
)
# export.export_onnx needs these beyond the runtime (the onnx variant only)
ONNX_PINS = ("onnx==1.16.2", "tritonclient[grpc]==2.51.0")
# the builder stage's tools for the pnccrender wheel (scikit-build-core + pybind11, CMake, Ninja)
BUILD_PINS = (
    "setuptools==80.9.0",
    "scikit-build-core==1.1.2",
    "pybind11==3.1.0",
    "cmake==3.31.10",
    "ninja==1.13.2",
    "packaging==26.3",
    "pathspec==1.1.1",
    "tomli==2.2.1; python_version < '3.11'",
    "exceptiongroup==1.2.2; python_version < '3.11'",
)


@dataclass(frozen=True)
class Command:
    """One command line of a step, run in ``cwd`` with ``env`` added to the environment."""

    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        settings = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return f"+ (cd {shlex.quote(str(self.cwd))} && {settings + ' ' if settings else ''}" + (
            f"{shlex.join(self.argv)})"
        )


@dataclass(frozen=True)
class Options:
    """Everything a step reads; defaults are the image's."""

    root: Path = ROOT
    python: str = sys.executable
    wheel_dir: Path = Path("/opt/reenact/wheels")
    torch_index: str = TORCH_CPU_INDEX  # "" = only the indexes pip is configured with
    ict_dir: Path | None = None  # None: $REENACT_ICT_DIR, else set-up's build/ folder
    variant: str = "torchscript"
    serve_repository: Path | None = None  # None: <root>/serving_repository

    @property
    def pip(self) -> tuple[str, ...]:
        return (self.python, "-m", "pip", "--disable-pip-version-check", "--no-input")

    def served(self) -> Path:
        return self.serve_repository or self.root / "serving_repository"


def wheels_step(options: Options) -> list[Command]:
    """Builder stage: pinned build tools, then the pnccrender wheel into ``wheel_dir``."""
    return [
        Command((*options.pip, "install", *BUILD_PINS), options.root),
        Command(
            (
                *options.pip,
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(options.wheel_dir),
                "./pnccrender",
            ),
            options.root,
        ),
    ]


def pnccrender_wheel(wheel_dir: Path) -> str:
    """The pnccrender wheel the builder stage made (its pattern when there is none yet)."""
    found = sorted(wheel_dir.glob("pnccrender-*.whl"))
    return str(found[-1]) if found else str(wheel_dir / "pnccrender-*.whl")


def deps_step(options: Options) -> list[Command]:
    """Runtime stage: the pinned dependencies (their own layer, rebuilt only when pins change)."""
    index = ("--extra-index-url", options.torch_index) if options.torch_index else ()
    pins = RUNTIME_PINS + (ONNX_PINS if options.variant == "onnx" else ())
    return [Command((*options.pip, "install", *index, *pins), options.root)]


def library_step(options: Options) -> list[Command]:
    """Runtime stage: the pnccrender wheel, the library (editable: ``root`` stays its root, as
    in a checkout after ``make setup``), then ``pip check`` of everything installed."""
    wheel = pnccrender_wheel(options.wheel_dir)
    install = ("install", "--no-deps", "--no-build-isolation", wheel, "--editable", ".")
    return [
        Command((*options.pip, *install), options.root),
        Command((*options.pip, "check"), options.root),
    ]


def assets_step(options: Options) -> list[Command]:
    """The ICT-FaceKit model (fetched unless already in ``ict_dir``) and the MediaPipe weights."""
    ict = options.ict_dir or _env_path("REENACT_ICT_DIR")
    fetch = (options.python, "-m", "export.fetch_ict", *(("--out", str(ict)) if ict else ()))
    return [
        Command(fetch, options.root),
        Command((options.python, "export/extract_mediapipe.py"), options.root),
        Command((options.python, "export/convert_mediapipe.py"), options.root),
    ]


def export_step(options: Options) -> list[Command]:
    """TorchScript models, the probe face, and the served repository of ``variant``."""
    if options.variant not in VARIANTS:
        raise ValueError(f"variant {options.variant!r}: expected one of {', '.join(VARIANTS)}")
    python, root = options.python, options.root
    probe = _probe(root)
    commands = [
        Command((python, "export/build_mesh_predictor.py"), root),
        Command((python, "export/build_reenactor.py"), root),
        Command((python, "-m", "reenact.serving.health", "--write-probe-image", probe), root),
    ]
    served = options.served()
    if options.variant == "onnx":
        commands.append(
            Command((python, "-m", "export.export_onnx", "--repository", str(served)), root)
        )
    else:
        commands.append(Command(("ln", "-sfn", str(root / "model_repository"), str(served)), root))
    return commands


def _probe(root: Path) -> str:
    build = _env_path("REENACT_BUILD_DIR") or root / "build"
    return str(build / "health" / "probe_face_160.png")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def plan(step: str, options: Options) -> list[Command]:
    """The command lines of ``step``."""
    if step == "wheels":
        return wheels_step(options)
    if step == "deps":
        return deps_step(options)
    if step == "library":
        return library_step(options)
    if step == "assets":
        return assets_step(options)
    if step == "export":
        return export_step(options)
    raise ValueError(f"unknown step {step!r}")


def run(commands: Sequence[Command], dry_run: bool) -> int:
    """Run ``commands`` in order, each echoed first; the first failing one's exit status."""
    for command in commands:
        sys.stdout.write(command.describe() + "\n")
        sys.stdout.flush()
        if dry_run:
            continue
        done = subprocess.run(command.argv, cwd=command.cwd, env={**os.environ, **command.env})
        if done.returncode != 0:
            sys.stderr.write(f"install.py: failed with exit status {done.returncode}\n")
            return done.returncode
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: here)")
    steps = parser.add_subparsers(dest="step", required=True)
    wheels = steps.add_parser("wheels", help="builder stage: the pnccrender wheel")
    wheels.add_argument("--out", type=Path, default=Options.wheel_dir)
    deps = steps.add_parser("deps", help="runtime stage: the pinned dependencies")
    deps.add_argument("--torch-index", default=TORCH_CPU_INDEX, help='"" for pip\'s own')
    deps.add_argument("--variant", choices=VARIANTS, default="torchscript")
    library = steps.add_parser("library", help="runtime stage: pnccrender and the library")
    library.add_argument("--wheels", type=Path, default=Options.wheel_dir)
    assets = steps.add_parser("assets", help="ICT-FaceKit model and MediaPipe weights")
    assets.add_argument("--ict-dir", type=Path, default=None)
    export = steps.add_parser("export", help="exported models and the served repository")
    export.add_argument("--variant", choices=VARIANTS, default="torchscript")
    export.add_argument("--serve-repository", type=Path, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = Options(
        root=args.root.resolve(),
        wheel_dir=getattr(args, "out", None) or getattr(args, "wheels", Options.wheel_dir),
        torch_index=getattr(args, "torch_index", TORCH_CPU_INDEX),
        ict_dir=getattr(args, "ict_dir", None),
        variant=getattr(args, "variant", "torchscript"),
        serve_repository=getattr(args, "serve_repository", None),
    )
    return run(plan(args.step, options), args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
