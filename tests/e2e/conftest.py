"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient


@pytest.fixture(params=["grpc", "http"])
def client(request, triton_server):
    """(tritonclient module, connected client) for each protocol; closed after the test, so no
    open HTTP connection holds up the server's shutdown."""
    module = grpcclient if request.param == "grpc" else httpclient
    url = triton_server.grpc_url if request.param == "grpc" else triton_server.http_url
    conn = module.InferenceServerClient(url)
    yield module, conn
    conn.close()
