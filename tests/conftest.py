"""Shared fixtures: one real tritonserver for the whole end-to-end session."""

from __future__ import annotations

import pytest

from reenact.serving.server import ServerConfig, TritonServer


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory):
    """A real tritonserver serving every model of the local repository."""
    server = TritonServer(ServerConfig(work_dir=tmp_path_factory.mktemp("triton")))
    with server:
        yield server
    assert server.exit_code == 0, f"tritonserver did not stop cleanly\n{server.log_tail()}"
