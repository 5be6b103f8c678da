"""Where the project's model assets live.

Nothing here downloads anything. Set-up (``make setup``) puts every generated asset under
``build/assets`` of the checkout (or ``$REENACT_BUILD_DIR``). The ICT-FaceKit morphable model is
found in this order (docs/assets.md):

1. the folder named by ``$REENACT_ICT_DIR`` (holding ``ict_facekit.npz`` and its LICENSE);
2. ``build/assets/ict-facekit``, where set-up (``python -m export.fetch_ict``) puts the model it
   downloads from the pinned upstream commit, verifies and converts.
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


def ict_build_dir() -> Path:
    """The folder set-up fetches the ICT-FaceKit model into: ``ict_facekit.npz`` + LICENSE."""
    return assets_dir() / "ict-facekit"


def ict_dir_candidates() -> list[Path]:
    """The folders searched for the ICT-FaceKit model, in order."""
    candidates = []
    if os.environ.get(ICT_ENV):
        candidates.append(Path(os.environ[ICT_ENV]))
    candidates.append(ict_build_dir())
    return candidates


def ict_model_path() -> Path:
    """Path of ``ict_facekit.npz``, or AssetNotFoundError naming every place looked at."""
    for folder in ict_dir_candidates():
        path = folder / ICT_NPZ
        if path.is_file():
            return path.resolve()
    looked = ", ".join(str(c) for c in ict_dir_candidates())
    raise AssetNotFoundError(
        f"ICT-FaceKit model {ICT_NPZ} not found (looked in: {looked}). Run `make setup` "
        "(python -m export.fetch_ict downloads, verifies and converts it), or set "
        f"${ICT_ENV} to a folder holding it; without network access see docs/assets.md."
    )
