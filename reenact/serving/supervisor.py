"""Keep tritonserver answering: watch its python-backend stubs, reload or restart, report health.

Triton 2.51's python backend never restarts a stub process that died: every later request to
that model fails with INTERNAL "Stub process '<model>_0_0' is not healthy" while
``/v2/health/ready`` and the model's readiness keep answering 200. This supervisor runs
tritonserver as its child::

    python -m reenact.serving.supervisor --health-port 8003 -- tritonserver --model-repository=...

and, every ``poll_interval_s``:

- compares the server's stub processes (its children named ``triton_python_backend_stub``; the
  command line names the instance, e.g. ``reenactor_0_0``) with those it saw when the server
  became ready: a stub that exited or turned zombie marks its model dead;
- runs the deep check of :mod:`reenact.serving.health` (a tiny real request) when its cached
  result is older than ``deep_check_interval_s``; an error naming an unhealthy stub marks that
  model dead;
- reloads dead models through the repository API (``POST /v2/repository/models/<m>/load``;
  explicit model control only). Ensembles and BLS callers need no reload: they call their steps
  by name, and reach the new instances at once;
- restarts the whole tritonserver when reloading fails ``reload_attempts`` times, when the server
  exits, or when the deep check fails ``deep_failures_before_restart`` times in a row for a
  reason other than a timeout; with exponential backoff, at most ``max_restarts`` times before it
  gives up (exit status 1, for the container runtime to act on).

SIGTERM and SIGINT are forwarded to tritonserver; the supervisor exits with its exit status and
removes the shared-memory regions its stubs left behind. ``/health/ready`` and ``/health/live``
are served on the supervisor's own port (see :class:`Supervisor.readiness`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reenact.serving import health

log = logging.getLogger("reenact.supervisor")

# the production entrypoint restricts tritonserver's admin APIs only for a supervisor that sends
# their key (reenact.deploy.entrypoint checks for this name)
ADMIN_KEY_ENV = health.ADMIN_KEY_ENV

STUB_BINARY = "triton_python_backend_stub"
SHM_DIR = Path("/dev/shm")
PROC_DIR = Path("/proc")


@dataclass(frozen=True)
class SupervisorConfig:
    """Every time limit and count of the supervisor, in one place."""

    poll_interval_s: float = 0.5  # stub watch period (a /proc scan: about a millisecond)
    startup_timeout_s: float = 120.0  # a (re)started tritonserver must be ready within this
    server_stop_timeout_s: float = 15.0  # SIGTERM to SIGKILL (tritonserver's own exit timeout + 5)
    reload_timeout_s: float = 60.0  # one repository load call (measured: 0.8-1.7 s here)
    reload_attempts: int = 2  # reload tries per failure before the server is restarted
    max_restarts: int = 3  # restarts without a stable period in between, then give up
    backoff_initial_s: float = 1.0  # wait before the 2nd reload or restart; doubles each time
    backoff_max_s: float = 30.0
    stable_after_s: float = 300.0  # healthy this long after a restart: the restart count resets
    deep_check_interval_s: float = 10.0  # the supervisor's own deep check period
    deep_check_max_age_s: float = 5.0  # /health/ready reuses a deep check result this young
    deep_check_timeout_s: float = 20.0  # one probe request (a busy server queues it)
    deep_failures_before_restart: int = 3  # consecutive non-timeout deep check failures
    stale_stub_grace_s: float = 30.0  # an old generation's stub still alive after a reload
    probe_image_timeout_s: float = 180.0  # painting the probe face once (imports torch)
    health_host: str = "127.0.0.1"
    health_port: int = 8003
    probe_image: Path | None = None  # None: build/health/probe_face_160.png

    def backoff_s(self, previous_failures: int) -> float:
        """Wait before a try that follows ``previous_failures`` failed ones: 0, then
        ``backoff_initial_s`` doubling up to ``backoff_max_s``."""
        if previous_failures <= 0:
            return 0.0
        return min(self.backoff_initial_s * 2 ** (previous_failures - 1), self.backoff_max_s)


# --- the server's command line ------------------------------------------------------------


@dataclass(frozen=True)
class ServerArgs:
    """What the supervisor needs to know from tritonserver's arguments."""

    http_url: str  # host:port to reach the HTTP endpoint from this machine
    explicit_model_control: bool
    shm_prefix: str | None  # the python backend's shm-region-prefix-name, when set


def _option_values(args: Sequence[str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        if "=" in arg:
            name, value = arg.split("=", 1)
        else:
            following = args[i + 1] if i + 1 < len(args) else ""
            name, value = arg, ("" if following.startswith("--") else following)
        values.setdefault(name, []).append(value)
    return values


def parse_server_args(args: Sequence[str]) -> ServerArgs:
    """Read the HTTP address, the model control mode and the shm prefix from tritonserver's
    arguments (``--name=value`` or ``--name value``; the last occurrence wins)."""
    options = _option_values(args)
    host = options.get("--http-address", ["127.0.0.1"])[-1]
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    port = options.get("--http-port", ["8000"])[-1]
    mode = options.get("--model-control-mode", ["none"])[-1]
    prefix = None
    for value in options.get("--backend-config", []):
        backend, _, setting = value.partition(",")
        key, _, shm = setting.partition("=")
        if backend == "python" and key == "shm-region-prefix-name":
            prefix = shm
    return ServerArgs(f"{host}:{port}", mode == "explicit", prefix)


# --- stub processes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stub:
    """A running python-backend stub process of the server."""

    pid: int
    instance: str  # model instance name, e.g. reenactor_0_0 (<model>_<group>_<index>)
    region: str  # its shared-memory region's name under /dev/shm
    start_ticks: int  # process start time in clock ticks since boot (orders generations)

    @property
    def model(self) -> str:
        return model_of_instance(self.instance)


def model_of_instance(instance: str) -> str:
    """``reenactor_0_0`` → ``reenactor`` (Triton names instances <model>_<group>_<index>)."""
    parts = instance.rsplit("_", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0]
    return instance


def _read_stat(proc: Path) -> tuple[str, int, int] | None:
    """(state, parent pid, start ticks) of a /proc/<pid> folder, None if it vanished."""
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state ppid ... starttime
    return fields[0], int(fields[1]), int(fields[19])


def list_stubs(server_pid: int, proc_dir: Path = PROC_DIR) -> list[Stub]:
    """The live (not zombie) stub processes whose parent is ``server_pid``.

    A stub's command line is: stub model.py region shm-size shm-growth parent-pid backend-dir
    message-queue-size instance-name kind."""
    stubs = []
    for proc in proc_dir.iterdir():
        if not proc.name.isdigit():
            continue
        stat = _read_stat(proc)
        if stat is None or stat[1] != server_pid or stat[0] == "Z":
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) < 9 or not argv[0].decode(errors="replace").endswith(STUB_BINARY):
            continue
        stubs.append(Stub(int(proc.name), argv[8].decode(), argv[2].decode(), stat[2]))
    return stubs


def current_generation(live: Iterable[Stub]) -> tuple[dict[str, Stub], list[Stub]]:
    """Split live stubs into the newest one per instance name and the older ones (stubs of a
    model generation that a reload replaced but Triton never finished unloading)."""
    newest: dict[str, Stub] = {}
    older: list[Stub] = []
    for stub in sorted(live, key=lambda s: (s.start_ticks, s.pid)):
        if stub.instance in newest:
            older.append(newest[stub.instance])
        newest[stub.instance] = stub
    return newest, older


@dataclass(frozen=True)
class StubChanges:
    """How the live stubs differ from the baseline."""

    dead: dict[str, str] = field(default_factory=dict)  # instance → what happened
    replaced: dict[str, str] = field(default_factory=dict)  # instance → old and new pid

    @property
    def dead_models(self) -> set[str]:
        return {model_of_instance(i) for i in self.dead}

    def describe(self) -> str:
        return "; ".join(f"{instance}: {what}" for instance, what in self.dead.items())


def stub_changes(baseline: dict[str, Stub], live: Iterable[Stub]) -> StubChanges:
    """Compare live stubs with ``baseline`` (instance → stub). A baseline stub whose process is
    gone or a zombie is dead unless a newer process of the same instance runs (replaced: the
    model was reloaded by someone else)."""
    live = list(live)
    live_pids = {s.pid for s in live}
    newest, _ = current_generation(live)
    changes = StubChanges()
    for instance, stub in baseline.items():
        if stub.pid in live_pids:
            continue
        successor = newest.get(instance)
        if successor is not None and successor.start_ticks >= stub.start_ticks:
            changes.replaced[instance] = f"pid {stub.pid} → {successor.pid}"
        else:
            changes.dead[instance] = f"stub pid {stub.pid} exited"
    return changes


# --- what to do about it ------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    kind: Literal["reload", "restart", "give_up"]
    models: tuple[str, ...] = ()
    delay_s: float = 0.0


class RecoveryPolicy:
    """Decides between reloading models, restarting the server and giving up; no side effects."""

    def __init__(self, config: SupervisorConfig, explicit_model_control: bool) -> None:
        self.config = config
        self.explicit = explicit_model_control
        self.reload_failures = 0
        self.restarts = 0
        self.last_restart_at: float | None = None

    def next_action(self, dead_models: Iterable[str], restart: bool = False) -> Action:
        """What to try next for ``dead_models`` (empty, or ``restart``: the server as a whole)."""
        models = tuple(sorted(set(dead_models)))
        can_reload = self.explicit and models and not restart
        if can_reload and self.reload_failures < self.config.reload_attempts:
            return Action("reload", models, self.config.backoff_s(self.reload_failures))
        if self.restarts < self.config.max_restarts:
            return Action("restart", models, self.config.backoff_s(self.restarts))
        return Action("give_up", models)

    def reload_failed(self) -> None:
        self.reload_failures += 1

    def restart_started(self, now: float) -> None:
        self.restarts += 1
        self.reload_failures = 0
        self.last_restart_at = now

    def recovered(self) -> None:
        """The server answers again: the next failure starts with a reload."""
        self.reload_failures = 0

    def healthy(self, now: float) -> None:
        """A passing deep check: restarts are forgiven once the server has been stable."""
        self.reload_failures = 0
        stable_since = self.last_restart_at
        if stable_since is not None and now - stable_since >= self.config.stable_after_s:
            self.restarts = 0
            self.last_restart_at = None


# --- the supervisor -----------------------------------------------------------------------

State = Literal["starting", "serving", "recovering", "restarting", "stopping", "failed"]


class Supervisor:
    """Runs tritonserver (``server_cmd``) as a child and keeps it answering; see the module."""

    def __init__(self, server_cmd: Sequence[str], config: SupervisorConfig | None = None) -> None:
        self.config = config or SupervisorConfig()
        self.server_cmd = list(server_cmd)
        self.server = parse_server_args(self.server_cmd[1:])
        self.policy = RecoveryPolicy(self.config, self.server.explicit_model_control)
        self.state: State = "starting"
        self.detail = "tritonserver starting"
        self.process: subprocess.Popen[bytes] | None = None
        self.baseline: dict[str, Stub] = {}
        self.exit_code: int | None = None
        self._stop = threading.Event()
        self._stale: list[tuple[float, Stub]] = []  # old-generation stubs and when to kill them
        self._regions: set[str] = set()  # every shm region a stub of ours used
        self._pending_unlink: set[str] = set()  # regions of stubs known dead
        self._deep_failures = 0
        self._image: bytes | None = None
        probe = self.config.probe_image or health.default_probe_image_path()
        self._probe_path = probe
        self.deep = health.DeepCheck(
            health.server_probes(
                self.server.http_url, self._probe_image, self.config.deep_check_timeout_s
            ),
            self.config.deep_check_max_age_s,
        )
        self.health = health.HealthServer(
            self.config.health_host, self.config.health_port, self.readiness, self.liveness
        )

    # health endpoints

    def readiness(self) -> tuple[bool, dict]:
        """Ready only while every check passes, in order: the supervisor is serving (not
        starting or recovering), every stub of the baseline runs, tritonserver's own readiness,
        and a real inference (cached ``deep_check_max_age_s``)."""
        checks: dict[str, dict] = {}
        for name, check in (
            ("supervisor", self._state_check),
            ("stubs", self._stubs_check),
            ("server", self._server_check),
            ("inference", self.deep.result),
        ):
            result = check()
            checks[name] = result.as_json()
            if not result.ok:
                return False, {"ready": False, "failed": name, "checks": checks}
        return True, {"ready": True, "failed": None, "checks": checks}

    def liveness(self) -> tuple[bool, dict]:
        """Alive while the supervisor has not given up and tritonserver runs (or is being
        restarted by it)."""
        process = self.process
        running = process is not None and process.poll() is None
        alive = self.state != "failed" and (running or self.state in ("starting", "restarting"))
        body = {"live": alive, "state": self.state, "server_running": running}
        return alive, body

    def _state_check(self) -> health.CheckResult:
        return health.CheckResult(self.state == "serving", f"{self.state}: {self.detail}")

    def _stubs_check(self) -> health.CheckResult:
        if self.process is None:
            return health.CheckResult(False, "no server process")
        changes = stub_changes(self.baseline, list_stubs(self.process.pid))
        if changes.dead:
            return health.CheckResult(
                False, "; ".join(f"{i}: {r}" for i, r in changes.dead.items())
            )
        return health.CheckResult(True, f"{len(self.baseline)} stubs running")

    def _server_check(self) -> health.CheckResult:
        ok = http_status(f"http://{self.server.http_url}/v2/health/ready", 2.0) == 200
        return health.CheckResult(ok, "/v2/health/ready " + ("200" if ok else "not 200"))

    def _probe_image(self) -> bytes:
        if self._image is None:
            self._image = health.ensure_probe_image(
                self._probe_path, self.config.probe_image_timeout_s
            )
        return self._image

    # life cycle

    def run(self) -> int:
        """Start the server, supervise it until told to stop; the exit status."""
        self.health.start()
        log.info(
            "health endpoints on http://%s:%d/health/{ready,live}",
            self.config.health_host,
            self.health.port,
        )
        threading.Thread(target=self._warm_probe_image, daemon=True).start()
        try:
            first = self._start_server()
            if first is not None:
                return first
            while not self._stop.is_set():
                self._tick()
                self._stop.wait(self.config.poll_interval_s)
            return self._shutdown()
        finally:
            self.health.stop()

    def request_stop(self, signum: int | None = None) -> None:
        """Stop supervising and pass SIGTERM on to tritonserver (signal handler safe)."""
        self._stop.set()
        self.state = "stopping"
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    def _warm_probe_image(self) -> None:
        try:
            self._probe_image()
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("cannot paint the probe face (%s): the deep check will fail", exc)

    def _start_server(self) -> int | None:
        """First start: None once ready, else the exit status to leave with (a server that
        never became ready is not restarted: its configuration is wrong)."""
        if self._launch_and_wait():
            return None
        if self._stop.is_set():
            return self._shutdown()
        code = self._stop_server()
        log.error("tritonserver did not become ready (exit status %s)", code)
        self._cleanup_regions(final=True)
        return code if code else 1

    def _launch_and_wait(self) -> bool:
        """Start tritonserver; wait until it is ready and take the stub baseline."""
        self.process = subprocess.Popen(self.server_cmd)
        log.info("tritonserver started (pid %d)", self.process.pid)
        deadline = time.monotonic() + self.config.startup_timeout_s
        url = f"http://{self.server.http_url}/v2/health/ready"
        while time.monotonic() < deadline and not self._stop.is_set():
            if self.process.poll() is not None:
                return False
            if http_status(url, 2.0) == 200:
                self._take_baseline()
                self._set_state("serving", "tritonserver ready")
                return True
            self._stop.wait(0.2)
        return False

    def _take_baseline(self) -> None:
        assert self.process is not None
        newest, older = current_generation(list_stubs(self.process.pid))
        self.baseline = newest
        self._regions.update(s.region for s in newest.values())
        now = time.monotonic()
        known = {s.pid for _, s in self._stale}
        for stub in older:
            if stub.pid not in known:
                self._stale.append((now + self.config.stale_stub_grace_s, stub))
        log.info("watching %d stubs: %s", len(newest), ", ".join(sorted(newest)))

    def _set_state(self, state: State, detail: str) -> None:
        if self._stop.is_set() and state != "failed":
            return
        self.state, self.detail = state, detail

    def _tick(self) -> None:
        assert self.process is not None
        reap_orphans(self.process.pid)
        code = self.process.poll()
        if code is not None:
            self._recover(set(), f"tritonserver exited with status {code}", restart=True)
            return
        changes = stub_changes(self.baseline, list_stubs(self.process.pid))
        if changes.replaced:
            log.info("stubs replaced outside the supervisor: %s", changes.replaced)
            self._take_baseline()
            self.deep.invalidate()
        if changes.dead:
            self._regions_dead(changes.dead)
            self._recover(
                changes.dead_models, "; ".join(f"{i}: {r}" for i, r in changes.dead.items())
            )
            return
        self._kill_stale_stubs()
        self._cleanup_regions()
        self._deep_check_tick()

    def _deep_check_tick(self) -> None:
        result = self.deep.result(self.config.deep_check_interval_s)
        if result.ok:
            self._deep_failures = 0
            self.policy.healthy(time.monotonic())
            return
        self._deep_failures += 1
        log.warning("deep check failed (%d in a row): %s", self._deep_failures, result.detail)
        if result.unhealthy_instance:
            model = model_of_instance(result.unhealthy_instance)
            self._recover({model}, result.detail)
        elif not result.timed_out and (
            self._deep_failures >= self.config.deep_failures_before_restart
        ):
            self._recover(set(), result.detail, restart=True)

    def _recover(self, models: set[str], reason: str, restart: bool = False) -> None:
        """Reload ``models`` or restart the server until it answers, or give up."""
        log.warning("recovering (%s)", reason)
        self._set_state("recovering", reason)
        self.deep.invalidate()
        while not self._stop.is_set():
            action = self.policy.next_action(models, restart=restart)
            if action.kind == "give_up":
                log.error("giving up after %d restarts: %s", self.policy.restarts, reason)
                self._set_state("failed", f"gave up: {reason}")
                self.exit_code = 1
                self._stop.set()
                return
            if action.delay_s:
                log.info("waiting %.1f s before the next %s", action.delay_s, action.kind)
                self._stop.wait(action.delay_s)
                if self._stop.is_set():
                    return
            if action.kind == "reload" and self._reload(action.models):
                return
            if action.kind == "restart" and self._restart():
                return

    def _reload(self, models: Sequence[str]) -> bool:
        started = time.monotonic()
        for model in models:
            url = f"http://{self.server.http_url}/v2/repository/models/{model}/load"
            status = http_status(
                url, self.config.reload_timeout_s, data=b"{}", headers=health.admin_headers()
            )
            if status != 200:
                log.error("reloading %s failed (HTTP %s)", model, status)
                self.policy.reload_failed()
                return False
        self._take_baseline()
        self.deep.invalidate()
        result = self.deep.result()
        if not result.ok:
            log.error("after reloading %s the deep check fails: %s", models, result.detail)
            self.policy.reload_failed()
            return False
        log.info(
            "reloaded %s in %.1f s; inference answers",
            ", ".join(models),
            time.monotonic() - started,
        )
        self.policy.recovered()
        self._set_state("serving", f"reloaded {', '.join(models)}")
        return True

    def _restart(self) -> bool:
        self.policy.restart_started(time.monotonic())
        log.warning(
            "restarting tritonserver (restart %d of at most %d)",
            self.policy.restarts,
            self.config.max_restarts,
        )
        self._set_state("restarting", self.detail)
        self._stop_server()
        self._cleanup_regions(final=True)
        self._stale.clear()
        if not self._launch_and_wait():
            log.error("restarted tritonserver did not become ready")
            return False
        self.deep.invalidate()
        self.policy.recovered()
        return True

    def _regions_dead(self, dead: dict[str, str]) -> None:
        """Remember the shm regions of dead stubs: Triton does not unlink them."""
        for instance in dead:
            stub = self.baseline.get(instance)
            if stub is not None:
                self._pending_unlink.add(stub.region)

    def _kill_stale_stubs(self) -> None:
        """SIGKILL old-generation stubs still alive ``stale_stub_grace_s`` after a reload:
        Triton never finishes unloading a generation one of whose stubs died, and keeps the
        others running (the python backend ignores their SIGTERM)."""
        now = time.monotonic()
        due = [s for t, s in self._stale if t <= now]
        self._stale = [(t, s) for t, s in self._stale if t > now]
        for stub in due:
            if _read_stat(PROC_DIR / str(stub.pid)) is None:
                continue
            log.info("killing %s (pid %d) of a replaced generation", stub.instance, stub.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(stub.pid, signal.SIGKILL)
            self._pending_unlink.add(stub.region)

    def _cleanup_regions(self, final: bool = False) -> None:
        """Unlink shm regions of stubs that are gone (all of ours when ``final``)."""
        if final:
            names = set(self._regions)
            if self.server.shm_prefix:
                names |= {p.name for p in SHM_DIR.glob(f"{self.server.shm_prefix}*")}
        else:
            live = {s.region for s in self.baseline.values()}
            names = self._pending_unlink - live
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (SHM_DIR / name).unlink()
        self._pending_unlink.difference_update(names)

    def _stop_server(self) -> int | None:
        """SIGTERM, then SIGKILL after ``server_stop_timeout_s``; the exit status."""
        process = self.process
        if process is None:
            return None
        stubs = list_stubs(process.pid)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.config.server_stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver ignored SIGTERM: killing it")
                process.kill()
                process.wait()
        kill_orphaned_stubs(stubs)
        code = process.returncode
        return 128 + abs(code) if code < 0 else code  # killed by a signal: shell style

    def _shutdown(self) -> int:
        self._set_state("stopping", "stopping")
        code = self._stop_server()
        self._cleanup_regions(final=True)
        log.info("tritonserver stopped (exit status %s)", code)
        if self.exit_code is not None:
            return self.exit_code
        return code or 0


def kill_orphaned_stubs(stubs: Iterable[Stub], proc_dir: Path = PROC_DIR) -> list[int]:
    """SIGKILL the stubs of an exited server that still run (a server that exits on its exit
    timeout leaves them to notice their parent is gone on their own); the pids killed. A pid
    counts only while its command line still names the stub's region (no reused pid is hit)."""
    killed = []
    for stub in stubs:
        try:
            argv = (proc_dir / str(stub.pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[2].decode(errors="replace") == stub.region:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stub.pid, signal.SIGKILL)
                killed.append(stub.pid)
    if killed:
        log.info("killed %d stubs left behind by tritonserver", len(killed))
    return killed


def http_status(
    url: str, timeout_s: float, data: bytes | None = None, headers: dict[str, str] | None = None
) -> int | None:
    """The HTTP status of a GET (POST with ``data``), None when there is no answer."""
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def reap_orphans(server_pid: int) -> None:
    """As PID 1 (a container's entrypoint) collect exited orphans, never the server itself."""
    if os.getpid() != 1:
        return
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in (0, server_pid):
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run tritonserver, heal dead python-backend stubs, serve truthful health.",
        usage="%(prog)s [options] -- tritonserver [tritonserver arguments]",
    )
    defaults = SupervisorConfig()
    parser.add_argument("--health-host", default=defaults.health_host)
    parser.add_argument("--health-port", type=int, default=defaults.health_port)
    parser.add_argument("--probe-image", type=Path, default=None)
    parser.add_argument("--server-stop-timeout", type=float, default=defaults.server_stop_timeout_s)
    parser.add_argument("server_cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.server_cmd[1:] if args.server_cmd[:1] == ["--"] else args.server_cmd
    if not command:
        parser.error("no tritonserver command after --")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s"
    )
    config = SupervisorConfig(
        health_host=args.health_host,
        health_port=args.health_port,
        probe_image=args.probe_image,
        server_stop_timeout_s=args.server_stop_timeout,
    )
    supervisor = Supervisor(command, config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda num, frame: supervisor.request_stop(num))
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
