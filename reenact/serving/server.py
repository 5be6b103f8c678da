"""Run a real ``tritonserver`` on the local target of the repository.

One harness for the tests (a session fixture), ``make serve`` and ``make demo``::

    with TritonServer(ServerConfig(models=("face_preprocess",))) as server:
        client = tritonclient.grpc.InferenceServerClient(server.grpc_url)

Each server gets its own free ports, its own shared-memory prefix and its own generated
repository; it is started with explicit model control and complete configs,
polled for readiness within a time limit, and stopped with SIGTERM then SIGKILL. Its log is
kept in a file and quoted in the error when start-up fails.

By default the server runs under :mod:`reenact.serving.supervisor` (``supervise=True``): the
harness starts the supervisor, which starts tritonserver, reloads a model whose stub process died
and serves truthful health on its own port (``server.health_url``: ``/health/ready``,
``/health/live``). The supervisor's log lines go to the same log file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from reenact.assets import build_dir
from reenact.serving import local_repo, runtime

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 6000


class ServerStartError(RuntimeError):
    """tritonserver did not become ready; the message holds the end of its log."""


@dataclass(frozen=True)
class ServerConfig:
    """How to start one local server. Ports of 0 are picked free at start."""

    models: tuple[str, ...] | None = None  # None: every model of the repository
    source_repository: Path = local_repo.PRODUCTION_REPOSITORY
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    host: str = "127.0.0.1"
    work_dir: Path | None = None  # None: a fresh folder under build/triton
    startup_timeout_s: float = 120.0
    stop_timeout_s: float = 15.0
    log_verbose: int = 0
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    supervise: bool = True  # run tritonserver under reenact.serving.supervisor
    health_port: int = 0  # the supervisor's /health/ready and /health/live


SUPERVISOR_STOP_MARGIN_S = 5.0
"""The harness waits this much longer than ``stop_timeout_s`` for the supervisor, which itself
waits ``stop_timeout_s`` for tritonserver, before it kills the whole process group."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class TritonServer:
    """A ``tritonserver`` process serving the local repository; a context manager."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self.exit_code: int | None = None
        self.startup_seconds = float("nan")
        self.http_port = self.config.http_port or free_port(self.config.host)
        self.grpc_port = self.config.grpc_port or free_port(self.config.host)
        self.metrics_port = self.config.metrics_port or free_port(self.config.host)
        self.health_port = self.config.health_port or free_port(self.config.host)
        root = build_dir() / "triton"
        root.mkdir(parents=True, exist_ok=True)
        self.work_dir = self.config.work_dir or Path(tempfile.mkdtemp(prefix="server-", dir=root))
        self.repository = self.work_dir / "model_repository"
        self.log_path = self.work_dir / "tritonserver.log"
        self.shm_prefix = f"reenact_{uuid.uuid4().hex[:12]}_"

    @property
    def http_url(self) -> str:
        return f"{self.config.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.config.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.config.host}:{self.metrics_port}/metrics"

    @property
    def health_url(self) -> str:
        """The supervisor's health base URL (``/ready``, ``/live`` below it)."""
        return f"http://{self.config.host}:{self.health_port}/health"

    @property
    def pid(self) -> int | None:
        """The process the harness started: the supervisor, or tritonserver unsupervised."""
        return None if self._process is None else self._process.pid

    def command(self, rt: runtime.TritonRuntime, models: list[str]) -> list[str]:
        """The tritonserver command line."""
        cmd = [
            str(rt.server_bin),
            f"--model-repository={self.repository}",
            f"--backend-directory={rt.backend_dir}",
            f"--http-address={self.config.host}",
            f"--grpc-address={self.config.host}",
            f"--metrics-address={self.config.host}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--model-control-mode=explicit",
            "--disable-auto-complete-config",
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--log-verbose={self.config.log_verbose}",
            "--exit-timeout-secs=10",
        ]
        cmd += [f"--load-model={m}" for m in models]
        return cmd + list(self.config.extra_args)

    def launch_command(self, rt: runtime.TritonRuntime, models: list[str]) -> list[str]:
        """What the harness runs: tritonserver under the supervisor, or tritonserver alone."""
        server = self.command(rt, models)
        if not self.config.supervise:
            return server
        return [
            sys.executable,
            "-m",
            "reenact.serving.supervisor",
            f"--health-host={self.config.host}",
            f"--health-port={self.health_port}",
            f"--server-stop-timeout={self.config.stop_timeout_s}",
            "--",
            *server,
        ]

    def start(self) -> TritonServer:
        """Build the repository, start the server and wait until it is ready."""
        rt = runtime.prepare()
        requested = list(self.config.models) if self.config.models is not None else None
        local_repo.build_local_repository(self.repository, requested, self.config.source_repository)
        models = local_repo.model_names(self.repository)
        self._log_file = self.log_path.open("wb")
        started = time.monotonic()
        self._process = subprocess.Popen(
            self.launch_command(rt, models),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=rt.server_env(),
            start_new_session=True,
        )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("tritonserver ready in %.1f s (log: %s)", self.startup_seconds, self.log_path)
        if self.config.supervise:
            log.info("supervisor health: %s/ready, %s/live", self.health_url, self.health_url)
        return self

    def is_ready(self) -> bool:
        """Whether the server answers 200 on /v2/health/ready."""
        url = f"http://{self.http_url}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def health(self, kind: str = "ready") -> tuple[int | None, dict]:
        """The supervisor's ``/health/<kind>`` answer: (HTTP status or None, JSON body)."""
        url = f"{self.health_url}/{kind}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None, {}

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        while time.monotonic() - started < self.config.startup_timeout_s:
            if self._process.poll() is not None:
                raise ServerStartError(
                    f"tritonserver exited with code {self._process.returncode} during start-up.\n"
                    + self.log_tail()
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        raise ServerStartError(
            f"tritonserver not ready after {self.config.startup_timeout_s:.0f} s.\n"
            + self.log_tail()
        )

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server log."""
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return f"--- end of {self.log_path} ---\n{text[-chars:]}"

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL of the whole process group (server, stubs and supervisor) after
        ``stop_timeout_s`` (plus a margin when supervised); returns the exit code."""
        proc, self._process = self._process, None
        margin = SUPERVISOR_STOP_MARGIN_S if self.config.supervise else 0.0
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.config.stop_timeout_s + margin)
            except subprocess.TimeoutExpired:
                log.warning(
                    "tritonserver ignored SIGTERM for %.0f s: killing it",
                    self.config.stop_timeout_s + margin,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if proc is not None:
            self.exit_code = proc.returncode
        return self.exit_code

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(argv: list[str] | None = None) -> int:
    """``make serve``: run a server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Serve the local model repository with Triton.")
    parser.add_argument("--models", nargs="*", default=None, help="models to load (default: all)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--health-port", type=int, default=8003, help="supervisor health port")
    parser.add_argument("--no-supervisor", action="store_true", help="run tritonserver alone")
    parser.add_argument("--log-verbose", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = ServerConfig(
        models=tuple(args.models) if args.models else None,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        host=args.host,
        work_dir=build_dir() / "triton" / "serve",
        log_verbose=args.log_verbose,
        supervise=not args.no_supervisor,
        health_port=args.health_port,
    )
    server = TritonServer(config)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with server:
        log.info(
            "reenact serving (ready in %.1f s)\n  HTTP:    http://%s\n  gRPC:    %s\n"
            "  metrics: %s\n  health:  %s/ready (supervisor)\n  log:     %s\nCtrl-C stops it.",
            server.startup_seconds,
            server.http_url,
            server.grpc_url,
            server.metrics_url,
            server.health_url if config.supervise else "(not supervised)",
            server.log_path,
        )
        while not stop and server.returncode is None:
            time.sleep(0.2)
        if server.returncode is not None:
            log.error("tritonserver exited with code %s\n%s", server.returncode, server.log_tail())
            return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(serve())
