"""The server harness itself: a failed start-up is reported with the server's own log."""

from __future__ import annotations

import pytest

from reenact.serving.server import ServerConfig, ServerStartError, TritonServer

pytestmark = pytest.mark.e2e


def test_startup_failure_quotes_the_log(tmp_path):
    server = TritonServer(
        ServerConfig(
            models=("face_preprocess",),
            work_dir=tmp_path,
            extra_args=("--backend-config=python,no-such-option-value",),
        )
    )
    with pytest.raises(ServerStartError) as info:
        server.start()
    assert "end of" in str(info.value) and str(server.log_path) in str(info.value)
    assert server.returncode is None  # stopped, nothing left running


def test_two_servers_run_side_by_side(tmp_path):
    configs = [ServerConfig(models=("face_preprocess",), work_dir=tmp_path / n) for n in "ab"]
    with TritonServer(configs[0]) as a, TritonServer(configs[1]) as b:
        assert a.is_ready() and b.is_ready()
        assert {a.http_port, a.grpc_port}.isdisjoint({b.http_port, b.grpc_port})
        assert a.shm_prefix != b.shm_prefix
    assert a.exit_code == 0 and b.exit_code == 0
