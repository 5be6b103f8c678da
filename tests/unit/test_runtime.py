"""The environment the local tritonserver runs in."""

from __future__ import annotations

import sys
from pathlib import Path

from reenact.serving.runtime import SERVER_ENV, TritonRuntime

RUNTIME = TritonRuntime(*(Path("/nowhere"),) * 5)


def test_server_env_sets_threading_and_malloc_unless_told_otherwise():
    env = RUNTIME.server_env({"PATH": "/usr/bin"})
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert all(env[key] == value for key, value in SERVER_ENV.items())
    assert env["PATH"].split(":")[:2] == [str(Path(sys.executable).parent), "/usr/bin"]
    kept = RUNTIME.server_env({"PATH": "/usr/bin", "OMP_WAIT_POLICY": "ACTIVE"})
    assert kept["OMP_WAIT_POLICY"] == "ACTIVE"
