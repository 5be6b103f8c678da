"""A learned reenactor served through face_reenactment by a real tritonserver.

A plumbing check, not a quality check: the reenactor is the narrow neural network trained for a
few steps on a three-photo dataset at 32 x 24 pixels (tests.neural_runs), exported by
export/build_reenactor.py into a copy of the repository whose face_reenactment names the neural
mode. The client sends the same request as in geometric mode and gets the same tensors back;
the images equal those of the same model run in this process. A repository that names the
neural mode but holds the geometric model does not load, and says what to train.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export import build_reenactor
from reenact.client import ReenactClient
from reenact.pipeline import local_reenactment
from reenact.reenactment import ReenactmentConfig, ReenactOptions
from reenact.serving.local_repo import PRODUCTION_REPOSITORY
from reenact.serving.server import ServerConfig, ServerStartError, TritonServer
from tests import images
from tests.neural_runs import tiny_dataset, tiny_run

pytestmark = pytest.mark.e2e

PHOTO = images.encode(images.astronaut(), "JPEG", quality=95)
EMOTIONS = ("happy", "sad", "surprised")
MODE_LINE = 'key: "reenactor_mode" value { string_value: "geometric" }'


def repository_in_mode(root: Path, mode: str, reenactor_file: Path | None) -> Path:
    """A copy of the production repository (files linked) whose face_reenactment names
    ``mode``, with ``reenactor_file`` as the reenactor's model when given."""
    repository = root / "model_repository"
    shutil.copytree(
        PRODUCTION_REPOSITORY,
        repository,
        copy_function=os.symlink,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    config = repository / "face_reenactment" / "config.pbtxt"
    text = config.read_text()
    assert MODE_LINE in text
    config.unlink()
    config.write_text(text.replace(MODE_LINE, MODE_LINE.replace("geometric", mode)))
    if reenactor_file is not None:
        model = repository / "reenactor" / "1" / "model.pt"
        model.unlink()
        shutil.copy(reenactor_file, model)
    return repository


@pytest.fixture(scope="module")
def neural_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("neural_run")
    run = tiny_run(tiny_dataset(root), root / "run", "full", steps=4)
    out = root / "model.pt"
    argv = ["--mode", "neural", "--checkpoint", str(run / "last.pt"), "--out", str(out)]
    assert build_reenactor.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def neural_server(tmp_path_factory, neural_model):
    root = tmp_path_factory.mktemp("neural_triton")
    repository = repository_in_mode(root, "neural", neural_model)
    config = ServerConfig(
        models=("face_reenactment",), source_repository=repository, work_dir=root / "work"
    )
    with TritonServer(config) as server:
        yield server


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_neural_mode_serves_the_same_contract(neural_server, neural_model, protocol):
    url = neural_server.grpc_url if protocol == "grpc" else neural_server.http_url
    with ReenactClient(url, protocol=protocol) as client:
        result = client.reenact(PHOTO, emotions=list(EMOTIONS), output_format="png")
    assert result.emotions == list(EMOTIONS)
    assert result.target_params.shape == (len(EMOTIONS), 162)
    served = np.stack([decode(data) for data in result.images])
    assert served.shape == (len(EMOTIONS), 512, 384, 3)
    config = ReenactmentConfig(reenactor_mode="neural")
    local = local_reenactment(config, reenactor_file=neural_model)
    options = local.options.parse(
        emotions=np.array([e.encode() for e in EMOTIONS], dtype=object),
        output_format=np.array([b"png"], dtype=object),
    )
    assert isinstance(options, ReenactOptions)
    expected = np.stack([decode(data) for data in local(PHOTO, options).images])
    # the same TorchScript module on the same inputs in both processes: equal up to a grey
    # level where a float sum of a different thread split lands on a rounding boundary
    assert np.abs(served.astype(int) - expected).max() <= 1
    # the outputs are the network's, not the geometric reenactor's: a 32 x 24 network's output
    # enlarged 16 times has no detail finer than its pixels
    assert np.abs(np.diff(served.astype(int), axis=2)).mean() < 2.0


def test_neural_mode_without_its_model_does_not_load(tmp_path):
    repository = repository_in_mode(tmp_path, "neural", None)  # the geometric model.pt
    config = ServerConfig(
        models=("face_reenactment",),
        source_repository=repository,
        work_dir=tmp_path / "work",
        startup_timeout_s=90.0,
    )
    with pytest.raises(ServerStartError) as failed:
        TritonServer(config).start()
    log = str(failed.value)
    assert "reenactor_mode is 'neural'" in log
    assert "python -m reenact train reenactor" in log
