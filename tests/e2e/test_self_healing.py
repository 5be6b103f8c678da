"""A killed reenactor stub heals: requests fail only until the supervisor reloads the model, and its
readiness says so. Runs its own server (face_reenactment and its BLS callees)."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from reenact.client import ReenactClient, ReenactError
from reenact.serving.server import ServerConfig, TritonServer
from reenact.serving.supervisor import list_stubs
from tests import images

pytestmark = pytest.mark.e2e

PHOTO = images.encode(images.astronaut(), "JPEG", quality=90)
HEAL_LIMIT_S = 60.0  # from the kill to requests succeeding again and readiness true
DETECT_LIMIT_S = 2.0  # kill to readiness false: 4 stub polls of 0.5 s
WARM_UP_S = 1.5  # requests succeeding before the kill


@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    ok: bool
    error: str = ""


def send_requests(url: str, attempts: list[Attempt], stop: threading.Event) -> None:
    """One emotion per request, back to back, until ``stop`` or ``HEAL_LIMIT_S`` x 2."""
    deadline = time.monotonic() + 2 * HEAL_LIMIT_S
    with ReenactClient(url) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                client.reenact(PHOTO, emotions=["happy"])
                attempts.append(Attempt(started, time.monotonic(), True))
            except ReenactError as exc:
                attempts.append(Attempt(started, time.monotonic(), False, str(exc)))
                time.sleep(0.05)


def poll_readiness(server: TritonServer, samples: list[tuple[float, int | None]], stop) -> None:
    deadline = time.monotonic() + 2 * HEAL_LIMIT_S
    while not stop.is_set() and time.monotonic() < deadline:
        status, _ = server.health("ready")
        samples.append((time.monotonic(), status))
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and int(fields[1]) == pid:
            found.append(int(proc.name))
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if state != "Z" and text in cmdline:
            found.append(int(proc.name))
    return found


def wait_until_ready(server: TritonServer, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        status, body = server.health("ready")
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"supervisor not ready after {limit_s} s: {body}")


def test_killed_reenactor_stub_heals_and_readiness_tells(tmp_path):
    config = ServerConfig(
        models=("face_reenactment",),
        work_dir=tmp_path,
        # the generation whose stub died never finishes unloading: keep the stop short
        extra_args=("--exit-timeout-secs=3",),
    )
    attempts: list[Attempt] = []
    samples: list[tuple[float, int | None]] = []
    stop = threading.Event()
    with TritonServer(config) as server:
        wait_until_ready(server, 30.0)
        (triton_pid,) = children(server.pid)
        threads = [
            threading.Thread(target=send_requests, args=(server.grpc_url, attempts, stop)),
            threading.Thread(target=poll_readiness, args=(server, samples, stop)),
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(WARM_UP_S)
            (reenactor,) = [s for s in list_stubs(triton_pid) if s.model == "reenactor"]
            killed_at = time.monotonic()
            os.kill(reenactor.pid, signal.SIGKILL)
            wait_for_healing(attempts, samples, killed_at)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        report = check_timeline(attempts, samples, killed_at)
    print(report)
    assert server.exit_code is not None
    assert processes_mentioning(str(tmp_path)) == [], "tritonserver or stubs left running"
    assert list(Path("/dev/shm").glob(f"{server.shm_prefix}*")) == []


def wait_for_healing(attempts: list[Attempt], samples, killed_at: float) -> None:
    """Until readiness was false and is true again, and 3 requests started since succeeded."""
    while time.monotonic() - killed_at < HEAL_LIMIT_S:
        ready_again = first_ready_after_outage(samples, killed_at)
        if ready_again is not None and sum(a.started > ready_again for a in attempts) >= 3:
            return
        time.sleep(0.2)


def first_ready_after_outage(samples, killed_at: float) -> float | None:
    outage = [t for t, status in samples if t > killed_at and status != 200]
    if not outage:
        return None
    return next((t for t, status in samples if t > outage[0] and status == 200), None)


def check_timeline(attempts: list[Attempt], samples, killed_at: float) -> str:
    outage = [t for t, status in samples if t > killed_at and status != 200]
    assert outage, "readiness never went false after the stub was killed"
    assert outage[0] - killed_at < DETECT_LIMIT_S
    ready_again = first_ready_after_outage(samples, killed_at)
    assert ready_again is not None and ready_again - killed_at < HEAL_LIMIT_S
    before = [a for a in attempts if a.ended < killed_at]
    assert before and all(a.ok for a in before)
    failures = [a for a in attempts if not a.ok]
    assert all("not healthy" in a.error or "reenactor" in a.error for a in failures), failures
    # readiness true again means it works: every request sent after that succeeded
    after = [a for a in attempts if a.started >= ready_again]
    assert len(after) >= 3 and all(a.ok for a in after), after
    # and every failure happened between the kill and readiness coming back
    assert all(a.ended >= killed_at and a.started < ready_again for a in failures)
    first_success = min(a.ended for a in attempts if a.ok and a.started > killed_at)
    assert first_success - killed_at < HEAL_LIMIT_S
    return (
        f"kill → readiness false {outage[0] - killed_at:.2f} s, → readiness true "
        f"{ready_again - killed_at:.2f} s; {len(failures)} failed requests; kill → first "
        f"success {first_success - killed_at:.2f} s"
    )
