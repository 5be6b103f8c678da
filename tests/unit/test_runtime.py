"""The environment the local tritonserver runs in."""

from __future__ import annotations

import sys
from pathlib import Path

from reenact.serving.runtime import TritonRuntime

RUNTIME = TritonRuntime(*(Path("/nowhere"),) * 5)


def test_server_waits_passively_unless_told_otherwise():
    env = RUNTIME.server_env({"PATH": "/usr/bin"})
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["PATH"].split(":")[:2] == [str(Path(sys.executable).parent), "/usr/bin"]
    kept = RUNTIME.server_env({"PATH": "/usr/bin", "OMP_WAIT_POLICY": "ACTIVE"})
    assert kept["OMP_WAIT_POLICY"] == "ACTIVE"
