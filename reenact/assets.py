"""Where the project's model assets live.

Nothing here downloads anything. Set-up (``make setup``) puts every generated asset under
``build/assets`` of the checkout (or ``$REENACT_BUILD_DIR``); the ICT-FaceKit morphable model is
found in this order (DESIGN.md §6):

1. the folder named by ``$REENACT_ICT_DIR`` (holding ``ict_facekit.npz``);
2. ``../shared/assets/ict-facekit`` beside the checkout;
3. ``build/assets/ict-facekit`` (made by the converter from an upstream ``FaceXModel/`` folder).
"""

from __future__ import annotations

import os
from pathlib import Path

ICT_ENV = "REENACT_ICT_DIR"
BUILD_ENV = "REENACT_BUILD_DIR"
ICT_NPZ = "ict_facekit.npz"

REPO_ROOT = Path(__file__).resolve().parent.parent


class AssetNotFoundError(FileNotFoundError):
    """A model asset is missing; the message says how to provide it."""


def build_dir() -> Path:
    """The git-ignored folder that set-up fills with generated files."""
    return Path(os.environ.get(BUILD_ENV, REPO_ROOT / "build")).resolve()


def assets_dir() -> Path:
    """Generated model assets (converted weights, correspondence tables, ...)."""
    return build_dir() / "assets"


def ict_dir_candidates() -> list[Path]:
    """The folders searched for the ICT-FaceKit model, in order."""
    candidates = []
    if os.environ.get(ICT_ENV):
        candidates.append(Path(os.environ[ICT_ENV]))
    candidates.append(REPO_ROOT.parent / "shared" / "assets" / "ict-facekit")
    candidates.append(assets_dir() / "ict-facekit")
    return candidates


def ict_model_path() -> Path:
    """Path of ``ict_facekit.npz``, or AssetNotFoundError naming every place looked at."""
    for folder in ict_dir_candidates():
        path = folder / ICT_NPZ
        if path.is_file():
            return path.resolve()
    looked = ", ".join(str(c) for c in ict_dir_candidates())
    raise AssetNotFoundError(
        f"ICT-FaceKit model {ICT_NPZ} not found (looked in: {looked}). Set ${ICT_ENV} to a folder "
        "holding it, or convert an upstream FaceXModel/ folder with export/convert_ict.py."
    )
