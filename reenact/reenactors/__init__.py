"""The reenactor modes: one home each, chosen by one configuration value.

``face_reenactment``'s parameter ``reenactor_mode`` (model_repository/face_reenactment/
config.pbtxt) names the mode; everything else follows from it:

=========  ==========================================  ======================================
mode       the ``reenactor`` model                     home
=========  ==========================================  ======================================
geometric  moves the photo's pixels along the 3DMM's   :mod:`reenact.reenactors.geometric`
           correspondences; no learned weights
neural     the thesis's warping, mapping and           :mod:`reenact.reenactors.neural`
           enhancing networks, from a trained
           checkpoint
hybrid     the geometric warp, then the learned        :mod:`reenact.reenactors.neural`
           enhancing network, from a trained
           checkpoint
=========  ==========================================  ======================================

Each mode declares its render contract (:mod:`reenact.reenactors.contract`); face_reenactment
renders what its mode's contract says and calls the ``reenactor`` model with the same tensor
names in every mode, so clients see no difference. ``export/build_reenactor.py`` writes the
mode's model into the repository, with the mode recorded inside the file
(:func:`read_model_mode`); face_reenactment refuses to load when the file's mode is not its
own (:func:`check_model_file`), saying what to train and how to export it, so a learned mode is
never served with a file that is not its trained network.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from reenact.reenactors.contract import GEOMETRIC, LEARNED, RenderContract

METADATA_NAME = "reenactor.json"  # an extra file of the TorchScript archive
METADATA_FORMAT = 1


@dataclass(frozen=True)
class ReenactorMode:
    """One reenactor mode: its name, its render contract, whether it needs trained weights."""

    name: str
    contract: RenderContract
    learned: bool


GEOMETRIC_MODE = ReenactorMode("geometric", GEOMETRIC, learned=False)
NEURAL_MODE = ReenactorMode("neural", LEARNED, learned=True)
HYBRID_MODE = ReenactorMode("hybrid", LEARNED, learned=True)
MODES = {m.name: m for m in (GEOMETRIC_MODE, NEURAL_MODE, HYBRID_MODE)}
DEFAULT_MODE = GEOMETRIC_MODE.name


class ReenactorModelError(ValueError):
    """The reenactor model file does not suit the configured mode."""


def get_mode(name: str) -> ReenactorMode:
    """The mode called ``name``; ValueError naming the modes there are."""
    if name not in MODES:
        raise ValueError(f"reenactor_mode must be one of {', '.join(MODES)}, got {name!r}")
    return MODES[name]


def metadata(mode: ReenactorMode, **details: object) -> dict[str, str]:
    """The ``_extra_files`` for ``torch.jit.save`` that record ``mode`` in the model file."""
    record = {"format": METADATA_FORMAT, "mode": mode.name, "channels": mode.contract.n_channels}
    return {METADATA_NAME: json.dumps({**record, **details}, sort_keys=True)}


def save_model(module: torch.jit.ScriptModule, path: Path, mode: ReenactorMode, **details) -> None:
    """Write a reenactor model file that records ``mode`` (and ``details``, JSON values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(path), _extra_files=metadata(mode, **details))


def read_model_mode(path: Path) -> str:
    """The mode a reenactor model file records. A file without the record (an ONNX model, or a
    TorchScript file from before the record existed) is a geometric reenactor: only the
    geometric reenactor is exported that way."""
    if not zipfile.is_zipfile(path):
        return GEOMETRIC_MODE.name
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_NAME}")]
        if not names:
            return GEOMETRIC_MODE.name
        return str(json.loads(archive.read(names[0]))["mode"])


def train_and_export_hint(mode: ReenactorMode) -> str:
    """What an operator runs to get a ``mode`` reenactor into the repository."""
    if not mode.learned:
        return "export it with `python export/build_reenactor.py --mode geometric`"
    return (
        f"train one (`python -m reenact train reenactor --config FILE` with mode "
        f"{'full' if mode.name == 'neural' else 'hybrid'!r} in FILE; docs/neural.md), then export "
        f"it with `python export/build_reenactor.py --mode {mode.name} --checkpoint "
        "RUN_FOLDER/last.pt`, which writes model_repository/reenactor/1/model.pt"
    )


MODEL_FILES = ("model.pt", "model.onnx")  # the file names the repository's reenactor may have


def served_model_file(reenactor_dir: Path) -> Path | None:
    """The model file of the newest version of the repository's ``reenactor`` folder, or None
    when there is none to see (e.g. a repository that Triton copies model by model)."""
    versions = sorted(
        (p for p in reenactor_dir.glob("*") if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    for version in reversed(versions):
        for name in MODEL_FILES:
            if (version / name).is_file():
                return version / name
    return None


def check_model_file(mode: ReenactorMode, reenactor_dir: Path) -> None:
    """Raise :class:`ReenactorModelError` unless the ``reenactor`` model in ``reenactor_dir``
    suits ``mode``: a learned mode needs its own trained model there; the geometric mode needs
    no weights, so it only refuses a file that records another mode."""
    path = served_model_file(reenactor_dir)
    if path is None:
        if mode.learned:
            raise ReenactorModelError(
                f"reenactor_mode is {mode.name!r} but there is no reenactor model in "
                f"{reenactor_dir}: " + train_and_export_hint(mode)
            )
        return
    found = read_model_mode(path)
    if found != mode.name:
        raise ReenactorModelError(
            f"reenactor_mode is {mode.name!r} but {path} is a {found} reenactor: "
            + train_and_export_hint(mode)
        )
