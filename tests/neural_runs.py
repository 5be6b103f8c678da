"""A tiny training set and training runs for the tests of the learned machinery.

The dataset: 3 photos, 2 people (the astronaut upright and turned by 20 degrees; Tom Hanks's
close-up) from the real-photo corpus, prepared by ``reenact.neural.data.prepare_dataset``
(detector, canvas, landmark-fit mesh predictor, PNCC renders). Runs train at 32 x 24 pixels (the
512 x 384 canvas shrunk 16 times), narrow width, batch 1: plumbing, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from reenact.__main__ import main
from reenact.neural.data import Preparer, prepare_dataset
from reenact.pipeline import MESH_PREDICTOR_FILE, REENACTOR_FILE
from tests import corpus

PEOPLE = {"astronaut": ("astronaut", "turned_20deg"), "tom": ("tom_hanks_closeup",)}
TRAIN_HEIGHT, TRAIN_WIDTH = 32, 24


def tiny_dataset(root: Path) -> Path:
    """Prepare the tiny dataset under ``root``; returns the prepared folder."""
    photos = {p.name: p.image for p in corpus.human_photos()}
    for person, names in PEOPLE.items():
        (root / "photos" / person).mkdir(parents=True)
        for name in names:
            Image.fromarray(photos[name]).save(root / "photos" / person / f"{name}.png")
    prepare_dataset(root / "photos", root / "data", Preparer.default(MESH_PREDICTOR_FILE))
    return root / "data"


def tiny_run(dataset: Path, out: Path, mode: str = "full", steps: int = 4) -> Path:
    """Train a reenactor for ``steps`` steps with ``python -m reenact train``; returns the run
    folder (config.json, last.pt)."""
    config = {
        "data": str(dataset), "out": str(out), "mode": mode, "width": "narrow",
        "height": TRAIN_HEIGHT, "width_px": TRAIN_WIDTH, "batch_size": 1, "steps": steps,
        "log_every": steps, "checkpoint_every": steps, "reid_input_size": 56,
        "reenactor_model": str(REENACTOR_FILE),
    }  # fmt: skip
    config_file = out.with_suffix(".json")
    config_file.write_text(json.dumps(config))
    if main(["train", "reenactor", "--config", str(config_file)]) != 0:
        raise RuntimeError(f"training {config_file} failed")
    return out
