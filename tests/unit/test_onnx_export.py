"""ONNX export (export/export_onnx.py) against ONNX Runtime on the CPU, the ONNX repository
variant, and the TorchScript configs of the production repository (export/check_repository.py).
The reenactor's checks compare ONNX Runtime with the production TorchScript model
(model_repository/reenactor/1/model.pt, which make builds from reenact/reenactor.py)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from export import check_repository, export_onnx
from reenact import mesh_predictor
from reenact.geometric import ReenactorRenderer
from reenact.morphable import MorphableModel
from reenact.reenactors.contract import GEOMETRIC
from reenact.serving.local_repo import PRODUCTION_REPOSITORY, read_config
from tests.unit.test_torch_compat import H, W, face, mesh_predictor_inputs, reenactor_inputs

MAX_ONNX_IR = 10  # ONNX Runtime 1.19, Triton 24.10's, reads IR versions up to 10 …
MAX_OPSET = 21  # … and opsets up to 21


@pytest.fixture(scope="module")
def predictor():
    return mesh_predictor.build()


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """The ONNX repository variant, written once (about 5 s: the reenactor's trace)."""
    return export_onnx.write_repository(tmp_path_factory.mktemp("onnx") / "model_repository_onnx")


def test_landmark_network_in_onnx_runtime_equals_torch(predictor, tmp_path):
    path = export_onnx.export_landmark_network(tmp_path / "model.onnx", predictor.network)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.ir_version <= MAX_ONNX_IR
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= MAX_OPSET
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (crops,) = mesh_predictor_inputs()
    for batch in (crops[:1], crops, np.concatenate([crops, crops[::-1]])):  # dynamic batch
        landmarks, presence = session.run(None, {export_onnx.CROP_INPUT: batch})
        with torch.inference_mode():
            want_landmarks, want_presence = predictor.network(torch.from_numpy(batch))
        assert landmarks.shape == (len(batch), 468, 3)
        # float32 convolutions summed in another order by ONNX Runtime's kernels than by
        # oneDNN: landmarks (crop pixels, up to 192) differ by float32 rounding of sums over
        # ~10^3 terms, measured below 2e-4 px; 1e-2 px is far below FaceMesh's own error
        np.testing.assert_allclose(landmarks, want_landmarks.numpy(), atol=1e-2)
        np.testing.assert_allclose(presence, want_presence.numpy(), atol=1e-4)
    assert presence.min() > 0.9


def fifteen_targets(inputs: list[np.ndarray]) -> list[np.ndarray]:
    """``reenactor_inputs`` with 15 targets (the served emotion count): yaw, jaw and smile
    spread over their range around the three targets there."""
    model = MorphableModel.load()
    yaws, jaws, smiles = (
        np.linspace(-25, 25, 15),
        np.tile([0.0, 0.4, 0.8], 5),
        np.linspace(0, 1, 15),
    )
    targets = np.stack([face(model, y, j, s) for y, j, s in zip(yaws, jaws, smiles, strict=True)])
    source = face(model, 5.0, 0.0, 0.6)  # reenactor_inputs' source
    source_render, target_render = ReenactorRenderer(model).render(source, targets, H, W)
    return [inputs[0], source_render, target_render, targets]


def test_reenactor_in_onnx_runtime_equals_torchscript(repository):
    path = repository / export_onnx.REENACTOR_MODEL / "1" / export_onnx.ONNX_FILE
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert model.ir_version <= MAX_ONNX_IR
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= MAX_OPSET
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(PRODUCTION_REPOSITORY / "reenactor" / "1" / "model.pt"))
    three = reenactor_inputs()
    single = [*three[:2], three[2][:1], three[3][:1]]
    for inputs in (single, three, fifteen_targets(three)):  # K dynamic
        (got,) = session.run(None, dict(zip(export_onnx.REENACTOR_INPUTS, inputs, strict=True)))
        with torch.inference_mode():
            want = scripted(*[torch.from_numpy(a) for a in inputs]).numpy()
        assert got.dtype == np.uint8 and got.shape == (len(inputs[3]), H, W, 3)
        assert (want != inputs[0]).any(axis=-1).mean() > 0.05  # the comparison is not trivial
        # ONNX Runtime's Resize and GridSample form the bilinear weights in another order than
        # ATen's kernels: float32 results differ in the last bit, and a value that close to a
        # .5 rounding boundary moves by one grey level (measured: 2.5e-5 of the values)
        difference = np.abs(got.astype(int) - want.astype(int))
        assert difference.max() <= 1
        assert (difference > 0).mean() < 1e-3


def test_split_predictor_equals_the_whole(predictor):
    """The ensemble (ONNX network, then TorchScript fit) computes what mesh_predictor does."""
    crops = torch.from_numpy(mesh_predictor_inputs()[0])
    with torch.inference_mode():
        params, landmarks, presence = predictor(crops)
        net_landmarks, net_presence = predictor.network(crops)
        fit_params = torch.jit.script(predictor.fit)(net_landmarks)
    torch.testing.assert_close(net_landmarks, landmarks, rtol=0, atol=0)
    torch.testing.assert_close(net_presence, presence, rtol=0, atol=0)
    torch.testing.assert_close(fit_params, params, rtol=1e-5, atol=1e-4)  # scripted vs eager


def test_repository_variant_configs_match_their_models(repository):
    assert check_repository.repository_mismatches(repository) == []
    landmarks = read_config(repository / export_onnx.LANDMARKS_MODEL)
    assert landmarks.platform == "onnxruntime_onnx"
    text = (repository / export_onnx.LANDMARKS_MODEL / "config.pbtxt").read_text()
    tensorrt = 'gpu_execution_accelerator : [ { name : "tensorrt" } ]'
    assert any(
        line.startswith("# optimization {") and tensorrt in line for line in text.splitlines()
    )


def test_repository_variant_keeps_the_production_interface(repository):
    mesh, production = (
        read_config(r / "mesh_predictor") for r in (repository, PRODUCTION_REPOSITORY)
    )
    assert mesh.platform == "ensemble"
    assert list(mesh.input) == list(production.input)
    assert list(mesh.output) == list(production.output)
    assert mesh.max_batch_size == production.max_batch_size
    steps = mesh.ensemble_scheduling.step
    assert [s.model_name for s in steps] == [export_onnx.LANDMARKS_MODEL, export_onnx.FIT_MODEL]
    produced = {t.name for t in mesh.input} | {v for s in steps for v in s.output_map.values()}
    assert {v for s in steps for v in s.input_map.values()} <= produced
    assert {t.name for t in mesh.output} <= produced
    for name in ("face_mesh", "face_preprocess", "face_postprocess", "face_reenactment"):
        assert read_config(repository / name) == read_config(PRODUCTION_REPOSITORY / name), name
    reenactor, production = (
        read_config(r / export_onnx.REENACTOR_MODEL) for r in (repository, PRODUCTION_REPOSITORY)
    )
    assert reenactor.platform == "onnxruntime_onnx"
    assert (repository / export_onnx.REENACTOR_MODEL / "1" / export_onnx.ONNX_FILE).is_file()
    for field in ("max_batch_size", "instance_group"):
        assert getattr(reenactor, field) == getattr(production, field), field
    # the same tensors; the ONNX graph fixes the geometric mode's channel count where the
    # production config leaves the mode's count open (-1)
    pairs = [
        *zip(reenactor.input, production.input, strict=True),
        *zip(reenactor.output, production.output, strict=True),
    ]
    for onnx_tensor, served in pairs:
        assert (onnx_tensor.name, onnx_tensor.data_type) == (served.name, served.data_type)
        assert tuple(onnx_tensor.dims) == GEOMETRIC.tensor_dims()[served.name]
        assert all(p in (-1, o) for o, p in zip(onnx_tensor.dims, served.dims, strict=True))


@pytest.mark.parametrize(
    ("model", "old", "new", "words"),
    [
        ("mesh_landmarks", 'name: "FACE_PRESENCE"', 'name: "PRESENCE"', "outputs: graph"),
        (
            "mesh_landmarks",
            "data_type: TYPE_UINT8",
            "data_type: TYPE_FP32",
            "input LANDMARK_CROP: graph UINT8",
        ),
        ("mesh_landmarks", "dims: 468", "dims: 68", "output CROP_LANDMARKS: graph dims"),
        ("mesh_landmarks", "max_batch_size: 8", "max_batch_size: 0", "graph dims"),
        ("reenactor", 'name: "REENACTED__0"', 'name: "REENACTED"', "outputs: graph"),
        (
            "reenactor",
            "data_type: TYPE_UINT8",
            "data_type: TYPE_FP32",
            "input SOURCE_CANVAS__0: graph UINT8",
        ),
        (
            "reenactor",
            "dims: 512\n  dims: 384",
            "dims: 384\n  dims: 512",
            "input SOURCE_CANVAS__0: graph dims",
        ),
        ("reenactor", "dims: 10\n}", "dims: 9\n}", "input SOURCE_RENDER__1: graph dims"),
        ("reenactor", "name: ", "max_batch_size: 4\nname: ", "graph dims"),
    ],
)
def test_a_broken_onnx_config_is_caught(repository, tmp_path, model, old, new, words):
    broken = tmp_path / model
    shutil.copytree(repository / model, broken)
    config = broken / "config.pbtxt"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new, 1))
    problems = check_repository.onnx_mismatches(broken)
    assert any(words in p for p in problems), problems


@pytest.mark.parametrize("name", ["mesh_predictor", "reenactor"])
def test_production_torchscript_configs_match_their_modules(name):
    assert read_config(PRODUCTION_REPOSITORY / name).platform == "pytorch_libtorch"
    assert check_repository.torchscript_mismatches(PRODUCTION_REPOSITORY / name) == []


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('"CROP_LANDMARKS__1"', '"CROP_LANDMARKS__2"', "is not named NAME__1"),
        ("dims: [ 162 ]", "dims: [ 161 ]", "output CROP_PARAMS__0: shape"),
        (
            "data_type: TYPE_FP32\n    dims: [ 1 ]",
            "data_type: TYPE_FP64\n    dims: [ 1 ]",
            "output FACE_PRESENCE__2: torch.float32",
        ),
        ("max_batch_size: 8", "max_batch_size: 0", "could not run on zeros"),
    ],
)
def test_a_broken_torchscript_config_is_caught(tmp_path, old, new, words):
    source = PRODUCTION_REPOSITORY / "mesh_predictor"
    broken = tmp_path / "mesh_predictor"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "model.pt").symlink_to(source / "1" / "model.pt")
    text = (source / "config.pbtxt").read_text()
    assert old in text
    (broken / "config.pbtxt").write_text(text.replace(old, new, 1))
    problems = check_repository.torchscript_mismatches(broken)
    assert any(words in p for p in problems), problems
