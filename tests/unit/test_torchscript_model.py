"""The generic TorchScript runner in-process: batching, splitting, per-request errors."""

from __future__ import annotations

import numpy as np
import pytest

from reenact.serving.local_repo import build_local_repository
from tests import torchscript_fixtures
from tests.unit import fake_pb_utils as fake


@pytest.fixture
def runner(monkeypatch, tmp_path):
    pb = fake.install(monkeypatch)
    local = build_local_repository(
        tmp_path / "local", source=torchscript_fixtures.write_repository(tmp_path / "prod")
    )
    config = {
        "max_batch_size": 8,
        "input": [
            {"name": "X__0", "data_type": "TYPE_FP32"},
            {"name": "SHIFT__1", "data_type": "TYPE_FP32"},
        ],
        "output": [
            {"name": "Y__0", "data_type": "TYPE_FP32"},
            {"name": "TOTAL__1", "data_type": "TYPE_FP32"},
        ],
    }
    return pb, fake.load_model("affine", config=config, repository=local)


def request(pb, x, shift):
    return pb.InferenceRequest([pb.Tensor("X__0", x), pb.Tensor("SHIFT__1", shift)])


def test_batch_is_split_back_per_request(runner):
    pb, model = runner
    xs = [np.full((n, 3), n, np.float32) for n in (1, 2, 3)]
    shifts = [np.full((n, 1), 10 * n, np.float32) for n in (1, 2, 3)]
    responses = model.execute([request(pb, x, s) for x, s in zip(xs, shifts, strict=True)])
    for x, s, r in zip(xs, shifts, responses, strict=True):
        assert not r.has_error()
        np.testing.assert_allclose(r.output("Y__0"), 2 * x + s)
        assert r.output("TOTAL__1").shape == (x.shape[0], 1)


def test_one_bad_request_does_not_fail_the_others(runner):
    pb, model = runner
    good = request(pb, np.ones((1, 3), np.float32), np.zeros((1, 1), np.float32))
    bad = request(pb, np.ones((1, 3), np.float32), np.zeros((1, 2), np.float32))
    missing = pb.InferenceRequest([pb.Tensor("X__0", np.ones((1, 3), np.float32))])
    responses = model.execute([good, bad, missing, good])
    assert [r.has_error() for r in responses] == [False, True, True, False]
    assert "could not run" in responses[1].error().message()
    assert "missing input SHIFT__1" in responses[2].error().message()
    np.testing.assert_allclose(responses[3].output("Y__0"), 2.0)
