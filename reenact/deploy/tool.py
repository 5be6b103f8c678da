"""Build and run the production image through the Docker SDK (the ``docker`` package).

    python -m reenact.deploy build [--tag reenact:latest] [--build-arg KEY=VALUE ...]
    python -m reenact.deploy run   [--tag ...] [--name reenact] [--gpus all|N] [--wait]
    python -m reenact.deploy wait  [--timeout 600]
    python -m reenact.deploy logs  [--follow]
    python -m reenact.deploy stop

``build`` streams the build's output; its build arguments default to docker/versions.env (the
base image and its pinned packages). ``run`` starts the container with GPUs (a device request,
as ``docker run --gpus``), ports 8000-8003, a 1 GiB /dev/shm and ``--init``. ``wait`` polls the
supervisor's ``/health/ready`` until it answers 200, the container exits, or the time limit
passes. When no Docker engine answers, every command says so in one line and exits with 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reenact.serving.supervisor import http_status

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "docker" / "versions.env"
DOCKERFILE = "docker/Dockerfile"
PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002, "health": 8003}


class DeployError(RuntimeError):
    """A deployment step failed; the message says which and why."""


class EngineUnavailable(DeployError):
    """No Docker engine answered."""


@dataclass(frozen=True)
class DeployConfig:
    """The image, the container and how they are made."""

    tag: str = "reenact:latest"
    name: str = "reenact"
    context: Path = REPO_ROOT
    dockerfile: str = DOCKERFILE
    build_args: dict[str, str] = field(default_factory=dict)
    gpus: int = -1  # -1: all, as `docker run --gpus all`
    host: str = "127.0.0.1"  # where the published ports are reached from here
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))  # name → host port
    shm_size: str = "1g"
    environment: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 600.0  # first start: model loads and the deep check
    poll_interval_s: float = 2.0
    stop_timeout_s: int = 45  # tritonserver's exit timeout (30 s) + the supervisor's margin

    def health_url(self) -> str:
        return f"http://{self.host}:{self.ports['health']}/health/ready"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """``KEY=VALUE`` lines of docker/versions.env (comments and blank lines skipped)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise DeployError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip()
    return values


class Output(Protocol):
    def write(self, text: str, /) -> Any: ...


def connect(factory: Callable[[], Any] | None = None) -> Any:
    """A Docker client that answered a ping; EngineUnavailable when none does."""
    import docker

    try:
        client = (factory or docker.from_env)()
        client.ping()
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(f"no Docker engine reachable ({_first_line(exc)})") from exc
    except OSError as exc:
        raise EngineUnavailable(f"no Docker engine reachable ({_first_line(exc)})") from exc
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def build(client: Any, config: DeployConfig, out: Output) -> str:
    """Build ``config.tag`` from the repository, streaming the output; the image id."""
    stream = client.api.build(
        path=str(config.context),
        dockerfile=config.dockerfile,
        tag=config.tag,
        buildargs=config.build_args,
        rm=True,
        decode=True,
    )
    image_id = ""
    for chunk in stream:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message", chunk["error"])
            raise DeployError(f"build of {config.tag} failed: {detail.strip()}")
        if "stream" in chunk:
            out.write(chunk["stream"])
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = aux["ID"]
    return image_id


def run_options(config: DeployConfig) -> dict[str, Any]:
    """Keyword arguments of ``client.containers.run`` for the image."""
    from docker.types import DeviceRequest

    return {
        "name": config.name,
        "detach": True,
        "init": True,
        "shm_size": config.shm_size,
        "ports": {f"{PORTS[name]}/tcp": (config.host, port) for name, port in config.ports.items()},
        "device_requests": [DeviceRequest(count=config.gpus, capabilities=[["gpu"]])],
        "environment": dict(config.environment),
        "restart_policy": {"Name": "unless-stopped"},
        "stop_signal": "SIGTERM",
    }


def run(client: Any, config: DeployConfig) -> Any:
    """Start the container (an old one of the same name is removed first); the container."""
    import docker

    try:
        old = client.containers.get(config.name)
    except docker.errors.NotFound:
        old = None
    if old is not None:
        old.remove(force=True)
    try:
        return client.containers.run(config.tag, **run_options(config))
    except docker.errors.ImageNotFound as exc:
        raise DeployError(f"no image {config.tag}: run `make docker` first") from exc
    except docker.errors.APIError as exc:
        raise DeployError(f"cannot start {config.name}: {_first_line(exc)}") from exc


def wait_ready(
    client: Any,
    config: DeployConfig,
    status: Callable[[str, float], int | None] = http_status,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll ``/health/ready`` until 200; the seconds it took. DeployError when the container
    stops running or ``ready_timeout_s`` passes (the last log lines in the message)."""
    started = clock()
    container = client.containers.get(config.name)
    while True:
        if status(config.health_url(), config.poll_interval_s) == 200:
            return clock() - started
        container.reload()
        if container.status not in ("created", "running", "restarting"):
            raise DeployError(
                f"{config.name} is {container.status} before becoming ready:\n" + _tail(container)
            )
        if clock() - started >= config.ready_timeout_s:
            raise DeployError(
                f"{config.name} not ready after {config.ready_timeout_s:.0f} s "
                f"({config.health_url()}):\n" + _tail(container)
            )
        sleep(config.poll_interval_s)


def _tail(container: Any, lines: int = 30) -> str:
    return container.logs(tail=lines).decode(errors="replace")


def logs(client: Any, config: DeployConfig, out: Output, follow: bool) -> None:
    """Write the container's log (and go on following it with ``follow``)."""
    container = client.containers.get(config.name)
    chunks: Iterable[bytes] = container.logs(stream=True, follow=follow)
    for chunk in chunks:
        out.write(chunk.decode(errors="replace"))


def stop(client: Any, config: DeployConfig) -> bool:
    """Stop (SIGTERM, then SIGKILL after ``stop_timeout_s``) and remove; False if none ran."""
    import docker

    try:
        container = client.containers.get(config.name)
    except docker.errors.NotFound:
        return False
    container.stop(timeout=config.stop_timeout_s)
    container.remove()
    return True


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` → dict; DeployError on an item without ``=``."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DeployError(f"expected KEY=VALUE, got {item!r}")
        values[key] = value
    return values
