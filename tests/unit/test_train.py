"""Training on a tiny dataset made from the real-photo corpus by the product's own pipeline.

The dataset: :func:`tests.neural_runs.tiny_dataset` (3 photos of 2 people from the real-photo
corpus, prepared by the product's own pipeline). The reenactor trains at 32 x 24 pixels (the
512 x 384 canvas shrunk 16 times) and batch 1 to fit the CPU budget; the predictor at its real
192 x 192 input.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from export import build_mesh_predictor, check_repository
from reenact.__main__ import main
from reenact.neural.config import (
    PREDICTOR_WIDTHS,
    PredictorTrainConfig,
    ReenactorLossWeights,
    ReenactorTrainConfig,
)
from reenact.neural.data import (
    PredictorBatches,
    ReenactorBatches,
    load_index,
)
from reenact.neural.predictor import RegressionMeshPredictor
from reenact.neural.train import (
    CHECKPOINT,
    LOSSES_CSV,
    PredictorTrainer,
    ReenactorTrainer,
    train_predictor,
)
from reenact.pipeline import MESH_PREDICTOR_FILE
from reenact.serving.local_repo import PRODUCTION_REPOSITORY
from tests.neural_runs import tiny_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("neural"))


def test_prepared_dataset_format(dataset):
    index = load_index(dataset)
    assert [s["person"] for s in index["samples"]] == ["astronaut", "astronaut", "tom"]
    with np.load(dataset / index["samples"][0]["file"], allow_pickle=False) as arrays:
        assert arrays["canvas"].shape == (512, 384, 3) and arrays["canvas"].dtype == np.uint8
        assert arrays["pncc"].shape == (512, 384, 3)
        face, mouth = arrays["face_mask"].astype(bool), arrays["mouth_mask"].astype(bool)
        assert face.mean() > 0.1  # the head covers a good part of the canvas
        assert mouth.any() and not (mouth & ~face).any()  # the mouth lies on the head
        assert (arrays["pncc"][~face] == 0).all()
        assert arrays["params"].shape == (162,) and arrays["crop_landmarks"].shape == (468, 3)
    batch = ReenactorBatches(dataset, 32, 24, 2, seed=0)[5]
    assert batch["source"].shape == (2, 3, 32, 24) and batch["target_params"].shape == (2, 162)
    again = ReenactorBatches(dataset, 32, 24, 2, seed=0)[5]
    assert all(torch.equal(batch[k], again[k]) for k in batch)  # deterministic in seed and step


def _pixel_error(trainer: ReenactorTrainer, batch: dict) -> float:
    """Mean absolute error of the enhanced output against the ground truth, in [-1, 1] units."""
    with torch.no_grad():
        _, enhanced = trainer.generate(batch)
        return float((enhanced - batch["target"]).abs().mean())


def test_reenactor_overfits_tiny_dataset(dataset, tmp_path):
    torch.manual_seed(0)
    weights = ReenactorLossWeights(pixel=10.0)  # random VGG/embedder weights: give L1 a say
    config = ReenactorTrainConfig(
        data=str(dataset), out=str(tmp_path), height=32, width_px=24, batch_size=1,
        reid_input_size=56, lr_generator=1e-3, losses=weights,
    )  # fmt: skip
    trainer = ReenactorTrainer(config, torch.device("cpu"))
    fixed = ReenactorBatches(dataset, 32, 24, 4, seed=1)[0]  # 4 pairs judged before and after
    before = _pixel_error(trainer, fixed)
    train = ReenactorBatches(dataset, 32, 24, 1, seed=2)
    for step in range(100):  # about 0.7 s a step on 2 cores (a speed figure, not asserted)
        trainer.step(train[step])
    after = _pixel_error(trainer, fixed)
    assert after < 0.6 * before, (before, after)


def test_predictor_overfits_tiny_dataset(dataset, tmp_path):
    config = PredictorTrainConfig(data=str(dataset), out=str(tmp_path), batch_size=3, lr=2e-3)
    batches = PredictorBatches(dataset, 3, seed=0)
    torch.manual_seed(0)
    trainer = PredictorTrainer(config, torch.device("cpu"), batches.targets())

    def total(batch: dict) -> float:
        trainer.network.eval()
        with torch.no_grad():
            terms = trainer.losses(
                trainer.network(batch["crop"]), batch["crop_params"],
                batch["crop_landmarks"], batch["person"],
            )  # fmt: skip
        return 50 * float(terms["vertex"]) + 0.1 * float(terms["landmark"])

    fixed = batches[0]
    before = total(fixed)
    for step in range(300):
        trainer.step(batches[step])
    # the λ-weighted vertex + landmark losses fall below 30 % of the start
    assert total(fixed) < 0.3 * before


def test_training_command_logs_checkpoints_and_resumes(dataset, tmp_path):
    out = tmp_path / "run"
    config = {"data": str(dataset), "out": str(out), "steps": 4, "log_every": 2,
              "checkpoint_every": 2, "batch_size": 2, "losses": {"vertex": 40.0}}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(config))
    assert main(["train", "predictor", "--config", str(tmp_path / "c.json")]) == 0
    rows = list(csv.DictReader((out / LOSSES_CSV).open()))
    assert [r["step"] for r in rows] == ["2", "4"]
    states = torch.load(out / CHECKPOINT, weights_only=True)
    assert states["step"] == 4
    saved = json.loads((out / "config.json").read_text())
    assert saved["losses"]["vertex"] == 40.0
    # resume: 2 more steps continue from step 4 and append to the same log
    resumed = PredictorTrainConfig(
        **{**config, "steps": 6, "losses": PredictorTrainConfig().losses}
    )
    train_predictor(resumed)
    assert [r["step"] for r in csv.DictReader((out / LOSSES_CSV).open())] == ["2", "4", "6"]
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 6


def test_a_trained_regressor_exports_as_the_mesh_predictor(dataset, tmp_path):
    """``export/build_mesh_predictor.py --regressor RUN`` serves the regression network's
    parameters with FaceMesh's landmarks and presence, under the mesh predictor's tensors."""
    run = tmp_path / "run"
    config = {"data": str(dataset), "out": str(run), "steps": 2, "batch_size": 2}
    (tmp_path / "c.json").write_text(json.dumps(config))
    assert main(["train", "predictor", "--config", str(tmp_path / "c.json")]) == 0
    model_dir = tmp_path / "mesh_predictor"
    model_dir.mkdir()
    shutil.copy(PRODUCTION_REPOSITORY / "mesh_predictor" / "config.pbtxt", model_dir)
    out = model_dir / "1" / "model.pt"
    assert build_mesh_predictor.main(["--regressor", str(run), "--out", str(out)]) == 0
    assert check_repository.torchscript_mismatches(model_dir) == []
    served = torch.jit.load(str(out))
    default = torch.jit.load(str(MESH_PREDICTOR_FILE))
    crops = torch.from_numpy(PredictorBatches(dataset, 2, seed=0)[0]["crop"].numpy())
    regressor = RegressionMeshPredictor(PREDICTOR_WIDTHS["narrow"])
    regressor.load_state_dict(torch.load(run / CHECKPOINT, weights_only=True)["network"])
    with torch.inference_mode():
        params, landmarks, presence = served(crops)
        _, expected_landmarks, expected_presence = default(crops)
        expected_params = regressor.eval()(crops)
    # the same modules, scripted or eager, on the same crops: float32 round-off only
    torch.testing.assert_close(params, expected_params, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(landmarks, expected_landmarks, rtol=0, atol=1e-3)
    torch.testing.assert_close(presence, expected_presence, rtol=0, atol=1e-4)
