"""The generic TorchScript runner behind a real tritonserver: a production-style
``pytorch_libtorch`` model served on the local target with the same tensor names."""

from __future__ import annotations

import concurrent.futures
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from reenact.serving.server import ServerConfig, TritonServer
from tests import torchscript_fixtures

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def affine_server(tmp_path_factory):
    root = torchscript_fixtures.write_repository(tmp_path_factory.mktemp("prod"))
    config = ServerConfig(source_repository=root, work_dir=tmp_path_factory.mktemp("local"))
    with TritonServer(config) as server:
        yield server


def infer(url: str, x: np.ndarray, shift: np.ndarray):
    client = grpcclient.InferenceServerClient(url)
    inputs = [grpcclient.InferInput("X__0", list(x.shape), "FP32")]
    inputs.append(grpcclient.InferInput("SHIFT__1", list(shift.shape), "FP32"))
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(shift)
    result = client.infer("affine", inputs)
    return result.as_numpy("Y__0"), result.as_numpy("TOTAL__1")


def test_outputs_follow_the_module(affine_server):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    shift = np.array([[1.0], [-1.0]], np.float32)
    y, total = infer(affine_server.grpc_url, x, shift)
    np.testing.assert_allclose(y, 2 * x + shift)
    np.testing.assert_allclose(total[:, 0], (2 * x + shift).sum(1))


def counters(server) -> dict[str, float]:
    """Triton's cumulative request and execution counts for the affine model."""
    with urllib.request.urlopen(server.metrics_url, timeout=5) as resp:
        lines = resp.read().decode().splitlines()
    found = {}
    for line in lines:
        for name in ("nv_inference_request_success", "nv_inference_exec_count"):
            if line.startswith(name + "{") and 'model="affine"' in line:
                found[name] = float(line.rsplit(" ", 1)[1])
    return found


def test_concurrent_requests_are_batched_and_split_back(affine_server):
    before = counters(affine_server)
    rng = np.random.default_rng(0)
    cases = [
        (rng.normal(size=(1, 3)).astype(np.float32), np.full((1, 1), k, np.float32))
        for k in range(16)
    ]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: infer(affine_server.grpc_url, *c), cases))
    for (x, shift), (y, _) in zip(cases, results, strict=True):
        np.testing.assert_allclose(y, 2 * x + shift, rtol=1e-6)
    after = counters(affine_server)
    requests = after["nv_inference_request_success"] - before["nv_inference_request_success"]
    executions = after["nv_inference_exec_count"] - before["nv_inference_exec_count"]
    assert requests == len(cases)
    assert executions < requests, "the dynamic batcher never ran two requests together"


def test_wrong_shape_is_refused_and_server_goes_on(affine_server):
    with pytest.raises(InferenceServerException):
        infer(affine_server.grpc_url, np.zeros((1, 4), np.float32), np.zeros((1, 1), np.float32))
    y, _ = infer(affine_server.grpc_url, np.ones((1, 3), np.float32), np.zeros((1, 1), np.float32))
    np.testing.assert_allclose(y, 2.0)
