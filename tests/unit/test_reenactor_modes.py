"""The reenactor modes: render contracts tied to config.pbtxt, the learned modes' renders and
served modules, the mode recorded in model files, and the load-time check."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from export import build_reenactor
from reenact.__main__ import main
from reenact.geometric import ReenactorRenderer
from reenact.morphable import EXPR_SLICE, N_PARAMS, ROT_SLICE, TRANS_SLICE, MorphableModel
from reenact.neural import data as neural_data
from reenact.neural.config import NARROW
from reenact.neural.networks import NeuralReenactor
from reenact.reenactors import (
    GEOMETRIC_MODE,
    HYBRID_MODE,
    MODES,
    NEURAL_MODE,
    ReenactorModelError,
    check_model_file,
    contract,
    get_mode,
    read_model_mode,
    save_model,
)
from reenact.reenactors import geometric as geometric_mode
from reenact.reenactors import neural as neural_modes
from reenact.serving.local_repo import PRODUCTION_REPOSITORY, read_config
from tests import corpus
from tests.neural_runs import tiny_dataset, tiny_run

H, W = contract.CANVAS_HEIGHT, contract.CANVAS_WIDTH


def face_params(model: MorphableModel, yaw_deg: float = 0.0, smile: float = 0.0) -> np.ndarray:
    """(162,) the mean face filling about 2/3 of the canvas height."""
    params = np.zeros(N_PARAMS, np.float32)
    params[ROT_SLICE.start + 1] = np.deg2rad(yaw_deg)
    params[TRANS_SLICE] = (W / 2, 240.0, 0.0)
    params[-1] = 8.0
    params[EXPR_SLICE.start + model.expression_names.index("mouthSmile_L")] = smile
    return params


def test_channel_indices_are_the_declared_names():
    named = {
        "SRC_X": contract.SRC_X, "SRC_Y": contract.SRC_Y, "SRC_Z": contract.SRC_Z,
        "COVERAGE": contract.COVERAGE, "WARP_WEIGHT": contract.WARP_WEIGHT,
        "TEETH_SHADE": contract.TEETH_SHADE, "GUMS_SHADE": contract.GUMS_SHADE,
        "CAVITY_SHADE": contract.CAVITY_SHADE, "MOUTH_ALPHA": contract.MOUTH_ALPHA,
        "EXPRESSION_SHADE": contract.EXPRESSION_SHADE, "PNCC_X": contract.PNCC_FIRST,
    }  # fmt: skip
    for name, index in named.items():
        assert contract.LEARNED_CHANNELS.index(name) == index, name
    assert contract.LEARNED_CHANNELS[: contract.N_GEOMETRIC_CHANNELS] == contract.GEOMETRIC_CHANNELS
    assert contract.LEARNED.pncc and not contract.GEOMETRIC.pncc


def test_every_mode_fits_the_reenactor_config():
    """config.pbtxt fixes every dim the modes share and leaves open (-1) exactly the targets K
    and the channel count, which differs between modes."""
    config = read_config(PRODUCTION_REPOSITORY / "reenactor")
    tensors = {t.name: t for t in [*config.input, *config.output]}
    assert [t.name for t in config.input] == list(contract.INPUT_NAMES)
    assert [t.name for t in config.output] == [contract.OUTPUT_NAME]
    dims_by_mode = {name: m.contract.tensor_dims() for name, m in MODES.items()}
    for name, tensor in tensors.items():
        declared = [mode_dims[name] for mode_dims in dims_by_mode.values()]
        for position, dim in enumerate(tensor.dims):
            values = {d[position] for d in declared}
            if dim == -1:
                assert values == {-1} or len(values) > 1, (name, position)
            else:
                assert values == {dim}, (name, position)
    assert {m.contract.n_channels for m in MODES.values()} == {10, 13}


def test_face_reenactment_names_a_mode():
    parsed = read_config(PRODUCTION_REPOSITORY / "face_reenactment").parameters
    assert build_reenactor.configured_mode() == parsed["reenactor_mode"].string_value
    assert build_reenactor.configured_mode() in MODES
    with pytest.raises(ValueError, match="geometric, neural, hybrid"):
        get_mode("learned")


def test_learned_render_is_the_geometric_render_plus_pncc(model):
    source = face_params(model)
    targets = np.stack([face_params(model, 15.0, 0.8), face_params(model, -10.0)])
    plain = ReenactorRenderer(model).render(source, targets, H, W)
    learned = ReenactorRenderer(model, contract=contract.LEARNED).render(source, targets, H, W)
    # the geometric render may carry mouth-detail slices after the targets; the learned none
    assert len(learned[1]) == len(targets)
    plain_images = np.concatenate([plain[0][None], plain[1][: len(targets)]])
    learned_images = np.concatenate([learned[0][None], learned[1]])
    assert learned_images.shape[-1] == contract.N_LEARNED_CHANNELS
    np.testing.assert_array_equal(
        learned_images[..., : contract.N_GEOMETRIC_CHANNELS], plain_images
    )
    for image in learned_images:
        pncc = image[..., contract.PNCC_FIRST :]
        assert (pncc[image[..., contract.COVERAGE] == 0] == 0).all()
        assert pncc.min() >= 0.0 and pncc.max() <= 1.0 + 1e-6
        # the code's x runs left to right across the face on the row through its middle
        rows = np.nonzero(image[..., contract.COVERAGE] > 0.999)[0]
        row = int(np.median(rows))
        drawn = np.flatnonzero(image[row, :, contract.COVERAGE] > 0.999)
        assert pncc[row, drawn[0], 0] < 0.3 < 0.7 < pncc[row, drawn[-1], 0]


def test_torch_parameter_resize_equals_the_dataset_resize(model):
    rng = np.random.default_rng(0)
    params = np.stack([face_params(model, yaw, 0.5) for yaw in (-20.0, 0.0, 25.0)])
    params[:, TRANS_SLICE] += rng.normal(0, 20, (3, 3)).astype(np.float32)
    expected = neural_data.resize_params(params, 32 / 512, 24 / 384)
    got = neural_modes.resize_params(torch.from_numpy(params), 32 / 512).numpy()
    # float32 in both, one multiply-add apart: canvas pixels to 1e-4 px
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_model_files_record_their_mode(tmp_path):
    geometric = tmp_path / "geometric.pt"
    save_model(geometric_mode.build(), geometric, GEOMETRIC_MODE)
    assert read_model_mode(geometric) == "geometric"
    learned = tmp_path / "neural.pt"
    save_model(torch.jit.script(torch.nn.Identity()), learned, NEURAL_MODE)
    assert read_model_mode(learned) == "neural"
    plain = tmp_path / "plain.pt"  # a file from before the record: geometric
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(plain))
    assert read_model_mode(plain) == "geometric"


def _repository_reenactor(tmp_path: Path, mode=None) -> Path:
    folder = tmp_path / "reenactor"
    (folder / "1").mkdir(parents=True)
    if mode is not None:
        save_model(torch.jit.script(torch.nn.Identity()), folder / "1" / "model.pt", mode)
    return folder


def test_a_learned_mode_without_its_model_fails_saying_what_to_train(tmp_path):
    empty = _repository_reenactor(tmp_path / "empty")
    with pytest.raises(ReenactorModelError, match="no reenactor model") as missing:
        check_model_file(NEURAL_MODE, empty)
    assert "python -m reenact train reenactor" in str(missing.value)
    assert "--mode neural --checkpoint" in str(missing.value)
    geometric = _repository_reenactor(tmp_path / "geometric", GEOMETRIC_MODE)
    with pytest.raises(ReenactorModelError, match="is a geometric reenactor") as wrong:
        check_model_file(HYBRID_MODE, geometric)
    assert "'hybrid'" in str(wrong.value) and "--mode hybrid" in str(wrong.value)
    check_model_file(GEOMETRIC_MODE, geometric)
    check_model_file(GEOMETRIC_MODE, empty)  # no weights needed; nothing to contradict it
    with pytest.raises(ReenactorModelError, match="is a neural reenactor"):
        check_model_file(GEOMETRIC_MODE, _repository_reenactor(tmp_path / "n", NEURAL_MODE))


def test_exporting_a_learned_mode_without_checkpoint_says_what_to_train(tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert build_reenactor.main(["--mode", "neural", "--out", str(out)]) == 2
    assert "python -m reenact train reenactor" in capsys.readouterr().err
    assert not out.exists()


def _random_inputs(targets: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(targets)
    canvas, source, target, params = neural_modes.example_inputs(targets)
    canvas = torch.randint(0, 256, canvas.shape, dtype=torch.uint8, generator=generator)
    source = torch.rand(source.shape, generator=generator)
    target = torch.rand(target.shape, generator=generator)
    params[:, TRANS_SLICE.start : TRANS_SLICE.start + 2] = torch.tensor([W / 2, H / 2])
    return canvas, source, target, params


def test_served_neural_module_reads_pncc_and_returns_canvases():
    """An untrained warping network returns the source (zero flow); the enhancer adds a
    residual conditioned on the target PNCC, so different PNCC renders give different
    images, and the geometric channels are not read."""
    torch.manual_seed(0)
    served = neural_modes.ServedNeuralReenactor(NeuralReenactor(NARROW, 64, 48), 64, 48).eval()
    canvas, source, target, params = _random_inputs(3)
    with torch.inference_mode():
        out = served(canvas, source, target, params)
        assert out.shape == (3, H, W, 3) and out.dtype == torch.uint8
        target[..., : contract.N_GEOMETRIC_CHANNELS] = 0.0
        np.testing.assert_array_equal(served(canvas, source, target, params), out)
        target[..., contract.PNCC_FIRST :] = torch.flip(target[..., contract.PNCC_FIRST :], [0])
        assert not torch.equal(served(canvas, source, target, params), out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny training runs of both learned modes (a few steps each)."""
    root = tmp_path_factory.mktemp("modes")
    dataset = tiny_dataset(root)
    return {mode: tiny_run(dataset, root / mode, mode, steps=2) for mode in ("full", "hybrid")}


@pytest.mark.parametrize(("training_mode", "served"), [("full", "neural"), ("hybrid", "hybrid")])
def test_a_trained_run_exports_traced_equal_to_eager(runs, tmp_path, training_mode, served):
    out = tmp_path / "model.pt"
    argv = ["--mode", served, "--checkpoint", str(runs[training_mode]), "--out", str(out)]
    assert build_reenactor.main(argv) == 0
    assert read_model_mode(out) == served
    _, eager = neural_modes.served_module(runs[training_mode])
    traced = torch.jit.load(str(out))
    for targets in (1, 4):  # K is dynamic in the traced module
        inputs = _random_inputs(targets)
        with torch.inference_mode():
            expected, got = eager(*inputs), traced(*inputs)
        assert got.shape == (targets, H, W, 3)
        # same kernels, same order: uint8 results equal up to a grey level where a float sum
        # lands on a rounding boundary
        assert (expected.int() - got.int()).abs().max() <= 1
    wrong = "hybrid" if served == "neural" else "neural"
    argv[1] = wrong
    assert build_reenactor.main(argv) == 2  # a run of one mode is not exported as the other


def test_eval_runs_trained_checkpoints_as_served(runs, tmp_path):
    """``python -m reenact eval`` puts each learned run beside the geometric row, running it
    through the served module and the learned modes' renders."""
    photos = {p.name: p.image for p in corpus.human_photos()}
    pair = tmp_path / "pairs" / "astronaut_turn"
    pair.mkdir(parents=True)
    Image.fromarray(photos["astronaut"]).save(pair / "source.png")
    Image.fromarray(photos["turned_20deg"]).save(pair / "driving.png")
    table = tmp_path / "metrics.csv"
    argv = ["eval", str(tmp_path / "pairs"), "--no-csim", "--csv", str(table)]
    argv += ["--checkpoint", str(runs["full"]), "--checkpoint", str(runs["hybrid"])]
    assert main(argv) == 0
    rows = {r["mode"]: r for r in csv.DictReader(table.open()) if r["pair"] == "mean"}
    assert set(rows) == {"geometric", "neural:full", "neural:hybrid"}
    for row in rows.values():
        assert 5.0 < float(row["psnr"]) < 60.0 and 0.0 < float(row["ssim"]) <= 1.0
