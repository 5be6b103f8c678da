"""Build the local target of the model repository (README: "Two targets of one repository").

The production repository (``model_repository/``) serves TorchScript models on the PyTorch backend.
The local Triton binary has only the python backend, so the local repository is generated from the
production one: python and ensemble models are linked as they are, and every ``pytorch_libtorch``
model becomes a python-backend model with the same name, tensors and shapes, whose ``model.py``
is the generic TorchScript runner :mod:`reenact.serving.torchscript_model`.
Nothing is hand-copied; the output is a build folder that is rebuilt from scratch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from reenact.assets import REPO_ROOT

PRODUCTION_REPOSITORY = REPO_ROOT / "model_repository"
TORCHSCRIPT_PLATFORM = "pytorch_libtorch"
RUNNER_MODEL_PY = (
    '"""Generated: serves this TorchScript model on the python backend (local target)."""\n\n'
    "from reenact.serving.torchscript_model import TritonPythonModel  # noqa: F401\n"
)


class RepositoryError(ValueError):
    """The production repository is inconsistent (missing model, bad config)."""


def read_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    """Parse ``model_dir/config.pbtxt``."""
    path = model_dir / "config.pbtxt"
    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise RepositoryError(f"{path}: {exc}") from exc


def model_names(repository: Path = PRODUCTION_REPOSITORY) -> list[str]:
    """Every model of a repository (folders holding a config.pbtxt), sorted."""
    return sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))


DEPENDS_ON = "depends_on"
"""A config.pbtxt parameter naming the models a python model calls through BLS (comma-separated);
Triton cannot see those calls, so the repository builder loads them along with the caller."""


def dependencies(config: model_config_pb2.ModelConfig) -> list[str]:
    """The models ``config``'s model needs loaded: ensemble steps and declared BLS callees."""
    steps = [step.model_name for step in config.ensemble_scheduling.step]
    declared = config.parameters[DEPENDS_ON].string_value if DEPENDS_ON in config.parameters else ""
    return steps + [name.strip() for name in declared.split(",") if name.strip()]


def with_dependencies(models: list[str], source: Path = PRODUCTION_REPOSITORY) -> list[str]:
    """``models`` and everything they depend on, transitively, sorted."""
    available = set(model_names(source))
    needed: set[str] = set()
    pending = list(models)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in available:
            raise RepositoryError(f"no such model in {source}: {name}")
        needed.add(name)
        pending.extend(dependencies(read_config(source / name)))
    return sorted(needed)


def _localise(config: model_config_pb2.ModelConfig) -> model_config_pb2.ModelConfig:
    local = model_config_pb2.ModelConfig()
    local.CopyFrom(config)
    if config.platform == TORCHSCRIPT_PLATFORM:
        local.ClearField("platform")
        local.backend = "python"
        local.parameters["torchscript_file"].string_value = config.default_model_filename or (
            "model.pt"
        )
        local.ClearField("default_model_filename")
    for group in local.instance_group:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
        group.ClearField("gpus")
    return local


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name == "__pycache__":
            continue
        target = dst / item.name
        if item.is_dir():
            _link_tree(item, target)
        else:
            target.symlink_to(item.resolve())


def _version_dirs(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def build_local_repository(
    destination: Path,
    models: list[str] | None = None,
    source: Path = PRODUCTION_REPOSITORY,
) -> Path:
    """Generate the local repository for ``models`` (default: all) and the models they depend
    on into ``destination``, which is deleted and rebuilt. Returns it.
    """
    available = model_names(source)
    missing = sorted(set(models or []) - set(available))
    if missing:
        raise RepositoryError(f"no such models in {source}: {', '.join(missing)}")
    models = available if models is None else with_dependencies(list(models), source)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for name in models:
        src_dir = source / name
        config = read_config(src_dir)
        if config.name and config.name != name:
            raise RepositoryError(f"{src_dir}/config.pbtxt names itself {config.name!r}")
        dst_dir = destination / name
        dst_dir.mkdir()
        local = _localise(config)
        (dst_dir / "config.pbtxt").write_text(text_format.MessageToString(local))
        versions = _version_dirs(src_dir)
        if not versions:
            (dst_dir / "1").mkdir()
        for version in versions:
            _link_tree(version, dst_dir / version.name)
            if config.platform == TORCHSCRIPT_PLATFORM:
                (dst_dir / version.name / "model.py").write_text(RUNNER_MODEL_PY)
    return destination
