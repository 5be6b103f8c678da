"""The server harness itself: a failed start-up is reported with the server's own log."""

from __future__ import annotations

import time

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


def test_supervised_server_reports_truthful_health(tmp_path):
    config = ServerConfig(models=("face_preprocess",), work_dir=tmp_path)
    with TritonServer(config) as server:
        status, body = server.health("ready")
        deadline = time.monotonic() + 30.0
        while status != 200 and time.monotonic() < deadline:  # the deep check's first request
            time.sleep(0.2)
            status, body = server.health("ready")
        assert status == 200 and body["ready"] is True
        assert body["checks"]["inference"]["detail"].startswith("face_preprocess: answered")
        live_status, live = server.health("live")
        assert live_status == 200 and live["server_running"] is True
    assert server.exit_code == 0
    assert server.health("live") == (None, {})  # the supervisor went with the server
