"""Every exported TorchScript model loads and computes the same in torch 2.5.1, the libtorch of
production's Triton 24.10 PyTorch backend, as in the torch that exported it.

The first run makes ``build/torch-2.5.1`` (``python -m export.check_torch_compat --create-venv``:
PyPI's torch 2.5.1, about 4 GB, 3.5 minutes here); later runs reuse it. Without PyPI the
virtualenv cannot be made and these tests fail, saying so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from export import check_torch_compat
from reenact.geometric import ReenactorRenderer
from reenact.landmarks.detection import FaceLandmarker, face_roi, select_face, warp_crop
from reenact.mesh_predictor import CROP_SIZE
from reenact.morphable import EXPR_SLICE, N_PARAMS, ROT_SLICE, TRANS_SLICE, MorphableModel
from reenact.neural.config import NARROW
from reenact.neural.networks import HybridReenactor, NeuralReenactor
from reenact.reenactor import GeometricReenactor
from reenact.reenactors.contract import GEOMETRIC, LEARNED, RenderContract
from reenact.reenactors.neural import ServedHybridReenactor, ServedNeuralReenactor, trace
from reenact.serving.local_repo import PRODUCTION_REPOSITORY
from tests import images

SCRIPT = Path(check_torch_compat.__file__)
H, W = 512, 384  # the reenactor's canvas (model_repository/reenactor/config.pbtxt)


@pytest.fixture(scope="module")
def old_python() -> Path:
    try:
        return check_torch_compat.create_venv()
    except check_torch_compat.VenvError as exc:
        pytest.fail(str(exc))


def run_old(python: Path, model: Path, inputs: list[np.ndarray], folder: Path) -> list[np.ndarray]:
    """Outputs of ``model`` on ``inputs`` in the old torch (export/check_torch_compat.py)."""
    inputs_file, outputs_file = folder / f"{model.parent.parent.name}_in.npz", folder / "out.npz"
    np.savez(inputs_file, **{f"input_{i}": a for i, a in enumerate(inputs)})
    done = subprocess.run(
        [python, SCRIPT, "--model", model, "--inputs", inputs_file, "--outputs", outputs_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"torch 2.5.1 could not run {model}:\n{done.stderr[-3000:]}"
    assert f"torch {check_torch_compat.OLD_TORCH}" in done.stdout
    with np.load(outputs_file, allow_pickle=False) as saved:
        return [saved[f"output_{i}"] for i in range(len(saved.files))]


def run_new(model: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    module = torch.jit.load(str(model)).eval()
    with torch.inference_mode():
        result = module(*[torch.from_numpy(a) for a in inputs])
    return [t.numpy() for t in (result if isinstance(result, tuple) else (result,))]


def face(model: MorphableModel, yaw_deg: float, jaw_open: float, smile: float) -> np.ndarray:
    """(162,) parameters of a face in the middle of the canvas."""
    params = np.zeros(N_PARAMS, np.float32)
    params[ROT_SLICE.start + 1] = np.deg2rad(yaw_deg)
    params[TRANS_SLICE] = (W / 2, 240.0, 0.0)
    params[-1] = 8.0
    names = model.expression_names
    params[EXPR_SLICE.start + names.index("jawOpen")] = jaw_open
    params[EXPR_SLICE.start + names.index("mouthSmile_L")] = smile
    return params


def reenactor_inputs(render_contract: RenderContract = GEOMETRIC) -> list[np.ndarray]:
    """The astronaut as canvas, renders of a source and three targets (open jaw: the mouth
    painting runs too)."""
    model = MorphableModel.load()
    canvas = cv2.resize(images.astronaut(), (W, H), interpolation=cv2.INTER_AREA)
    source = face(model, 5.0, 0.0, 0.6)
    targets = np.stack([face(model, 20.0, 0.7, 0.0), face(model, -10.0, 0.2, 1.0), source])
    renderer = ReenactorRenderer(model, contract=render_contract)
    source_render, target_render = renderer.render(source, targets, H, W)
    return [canvas, source_render, target_render, targets]


def mesh_predictor_inputs() -> list[np.ndarray]:
    """A batch of two landmark crops: the astronaut's face and its mirror image."""
    landmarker = FaceLandmarker.from_assets()
    photo = images.astronaut()
    crop = warp_crop(
        photo, face_roi(select_face(landmarker.detect(photo))), CROP_SIZE, cv2.BORDER_REPLICATE
    )
    return [np.stack([crop, np.ascontiguousarray(crop[:, ::-1])])]


def test_reenactor_matches_in_torch_2_5(old_python, tmp_path):
    model = PRODUCTION_REPOSITORY / "reenactor" / "1" / "model.pt"
    inputs = reenactor_inputs()
    (old,) = run_old(old_python, model, inputs, tmp_path)
    (new,) = run_new(model, inputs)
    assert old.dtype == np.uint8 and old.shape == (3, H, W, 3)
    assert (new != inputs[0]).any()  # the warp moved pixels: the comparison is not trivial
    # The same CPU kernels in both builds; grid_sample, upsampling and sums may still differ
    # in the last float bit (vectorisation), which can move a value across a .5 rounding
    # boundary: one level at a few pixels, no more.
    difference = np.abs(old.astype(int) - new.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 1e-3


def test_mesh_predictor_matches_in_torch_2_5(old_python, tmp_path):
    model = PRODUCTION_REPOSITORY / "mesh_predictor" / "1" / "model.pt"
    inputs = mesh_predictor_inputs()
    old = run_old(old_python, model, inputs, tmp_path)
    new = run_new(model, inputs)
    assert [a.shape for a in old] == [(2, 162), (2, 468, 3), (2, 1)]
    assert new[2].min() > 0.9  # both crops show a face
    params_old, params_new = old[0], new[0]
    # float32 convolutions (oneDNN, builds two years apart may pick other kernels) then a
    # float64 fit: landmarks agree to well under a thousandth of a crop pixel, parameters to a
    # relative 1e-4 (well below anything visible: pose 1e-4 rad, translation 0.02 px)
    np.testing.assert_allclose(old[1], new[1], atol=1e-3)
    np.testing.assert_allclose(old[2], new[2], atol=1e-5)
    np.testing.assert_allclose(params_old, params_new, rtol=1e-4, atol=1e-3)


def learned_reenactors() -> dict[str, torch.nn.Module]:
    """The learned modes' served modules around narrow networks with random weights (the
    operators are what matters here, not the training)."""
    torch.manual_seed(0)
    geometric = torch.jit.script(GeometricReenactor().eval())
    return {
        "neural": ServedNeuralReenactor(NeuralReenactor(NARROW, 64, 48), 64, 48),
        "hybrid": ServedHybridReenactor(geometric, HybridReenactor(NARROW, 64, 48), 64, 48),
    }


@pytest.mark.parametrize("mode", ["neural", "hybrid"])
def test_learned_reenactors_match_in_torch_2_5(old_python, tmp_path, mode):
    model = tmp_path / "model.pt"
    trace(learned_reenactors()[mode].eval()).save(str(model))
    inputs = reenactor_inputs(LEARNED)
    (old,) = run_old(old_python, model, inputs, tmp_path)
    (new,) = run_new(model, inputs)
    assert old.shape == new.shape == (3, H, W, 3)
    # as for the geometric reenactor: the last float bit may cross a rounding boundary
    assert np.abs(old.astype(int) - new.astype(int)).max() <= 1


class Interpolating(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


def test_the_check_catches_a_model_the_old_runtime_cannot_load(old_python, tmp_path):
    """A scripted F.interpolate of today's torch names operators torch 2.5 lacks."""
    model = tmp_path / "broken" / "1" / "model.pt"
    model.parent.mkdir(parents=True)
    torch.jit.script(Interpolating()).save(str(model))
    with pytest.raises(AssertionError, match="Unknown builtin op"):
        run_old(old_python, model, [np.zeros((1, 1, 2, 2), np.float32)], tmp_path)
