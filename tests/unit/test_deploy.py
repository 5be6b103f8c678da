"""reenact.deploy: the Docker SDK tool against a fake client, the entrypoint's command line, and
the one-line answer when no Docker engine answers (real here: this machine has none)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

docker = pytest.importorskip("docker")

from reenact.deploy import entrypoint, tool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class FakeContainer:
    def __init__(self, statuses: list[str], log: bytes = b"line 1\nline 2\n") -> None:
        self.statuses = statuses
        self.status = statuses[0]
        self.log = log
        self.short_id = "abc123"
        self.calls: list[tuple] = []

    def reload(self) -> None:
        self.status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def logs(self, **kwargs):
        self.calls.append(("logs", kwargs))
        if kwargs.get("stream"):
            return iter([self.log[:7], self.log[7:]])
        return self.log

    def stop(self, timeout: int) -> None:
        self.calls.append(("stop", timeout))

    def remove(self, force: bool = False) -> None:
        self.calls.append(("remove", force))


class FakeContainers:
    def __init__(self, existing: FakeContainer | None) -> None:
        self.existing = existing
        self.started: list[tuple[str, dict]] = []

    def get(self, name: str) -> FakeContainer:
        if self.existing is None:
            raise docker.errors.NotFound(f"no container {name}")
        return self.existing

    def run(self, image: str, **options) -> FakeContainer:
        self.started.append((image, options))
        self.existing = FakeContainer(["running"])
        return self.existing


class FakeAPI:
    def __init__(self, chunks: list[dict]) -> None:
        self.chunks = chunks
        self.build_kwargs: dict = {}

    def build(self, **kwargs):
        self.build_kwargs = kwargs
        return iter(self.chunks)


class FakeClient:
    def __init__(self, chunks=(), existing: FakeContainer | None = None) -> None:
        self.api = FakeAPI(list(chunks))
        self.containers = FakeContainers(existing)


class Collect:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def test_build_streams_output_and_passes_versions_as_build_args():
    versions = tool.read_versions()
    config = tool.DeployConfig(build_args=versions)
    client = FakeClient(
        [
            {"stream": "Step 1/9 : ARG BASE_IMAGE\n"},
            {"aux": {"ID": "sha256:42"}},
            {"stream": "ok\n"},
        ]
    )
    out = Collect()
    assert tool.build(client, config, out) == "sha256:42"
    assert out.text == "Step 1/9 : ARG BASE_IMAGE\nok\n"
    kwargs = client.api.build_kwargs
    assert kwargs["dockerfile"] == "docker/Dockerfile"
    assert Path(kwargs["path"]) == ROOT
    assert kwargs["buildargs"]["BASE_IMAGE"] == "nvcr.io/nvidia/tritonserver"
    assert kwargs["decode"] is True


def test_build_error_names_the_failure():
    client = FakeClient(
        [{"stream": "Step 1\n"}, {"error": "boom", "errorDetail": {"message": "RUN failed: 1\n"}}]
    )
    with pytest.raises(tool.DeployError, match="RUN failed: 1"):
        tool.build(client, tool.DeployConfig(), Collect())


def test_read_versions_refuses_a_line_without_equals(tmp_path):
    bad = tmp_path / "versions.env"
    bad.write_text("# comment\nBASE_IMAGE=x\nnot an assignment\n")
    with pytest.raises(tool.DeployError, match=r"versions\.env:3"):
        tool.read_versions(bad)


def test_run_asks_for_gpus_ports_shm_and_init_and_replaces_an_old_container():
    old = FakeContainer(["exited"])
    client = FakeClient(existing=old)
    tool.run(client, tool.DeployConfig(gpus=2))
    assert ("remove", True) in old.calls
    image, options = client.containers.started[0]
    assert image == "reenact:latest"
    request = options["device_requests"][0]
    assert isinstance(request, docker.types.DeviceRequest)
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
    assert options["ports"] == {
        "8000/tcp": ("127.0.0.1", 8000),
        "8001/tcp": ("127.0.0.1", 8001),
        "8002/tcp": ("127.0.0.1", 8002),
        "8003/tcp": ("127.0.0.1", 8003),
    }
    assert options["init"] is True and options["shm_size"] == "1g" and options["detach"] is True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_polls_health_ready_until_200():
    client = FakeClient(existing=FakeContainer(["running"]))
    answers = iter([None, 503, 503, 200])
    urls = []

    def status(url, timeout):
        urls.append(url)
        return next(answers)

    clock = Clock()
    config = tool.DeployConfig(poll_interval_s=2.0)
    assert tool.wait_ready(client, config, status, clock, clock.sleep) == 6.0
    assert set(urls) == {"http://127.0.0.1:8003/health/ready"}


def test_wait_fails_with_the_log_when_the_container_exits():
    container = FakeContainer(["running", "exited"], log=b"tritonserver: model load failed\n")
    clock = Clock()
    with pytest.raises(tool.DeployError, match=r"exited(.|\n)*model load failed"):
        tool.wait_ready(
            FakeClient(existing=container),
            tool.DeployConfig(),
            lambda u, t: 503,
            clock,
            clock.sleep,
        )


def test_wait_gives_up_after_its_time_limit():
    clock = Clock()
    config = tool.DeployConfig(ready_timeout_s=10.0, poll_interval_s=2.0)
    with pytest.raises(tool.DeployError, match="not ready after 10 s"):
        tool.wait_ready(
            FakeClient(existing=FakeContainer(["running"])),
            config,
            lambda u, t: 503,
            clock,
            clock.sleep,
        )
    assert clock.now == 10.0


def test_logs_and_stop():
    container = FakeContainer(["running"], log=b"hello, world\n")
    client = FakeClient(existing=container)
    out = Collect()
    tool.logs(client, tool.DeployConfig(), out, follow=True)
    assert out.text == "hello, world\n"
    assert ("logs", {"stream": True, "follow": True}) in container.calls
    assert tool.stop(client, tool.DeployConfig()) is True
    assert container.calls[-2:] == [("stop", 45), ("remove", False)]
    assert tool.stop(FakeClient(), tool.DeployConfig()) is False


def test_no_engine_is_one_line_and_exit_status_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    done = subprocess.run(
        [sys.executable, "-m", "reenact.deploy", "stop"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Docker engine reachable" in lines[0]


# --- the image's entrypoint ------------------------------------------------------------------

SERVER = ["tritonserver", "--model-repository=/m", "--model-control-mode=explicit"]


def test_entrypoint_restricts_admin_apis_with_the_key_it_hands_the_supervisor():
    env = {"REENACT_ADMIN_KEY": "s3cret", "PATH": "/bin"}
    launch = entrypoint.plan_launch(
        ["--health-port=8003"], SERVER, env, supported=True, python="py"
    )
    assert launch.restricted
    cut = launch.argv.index("--")
    assert launch.argv[:cut] == ("py", "-m", "reenact.serving.supervisor", "--health-port=8003")
    server = launch.argv[cut + 1 :]
    assert server[:3] == tuple(SERVER)
    apis = "model-repository,shared-memory,trace,logging"
    assert f"--http-restricted-api={apis}:x-reenact-admin=s3cret" in server
    assert f"--grpc-restricted-protocol={apis}:x-reenact-admin=s3cret" in server
    assert launch.env["REENACT_ADMIN_KEY"] == "s3cret"
    assert launch.env["REENACT_ADMIN_HEADER"] == "x-reenact-admin"


def test_entrypoint_makes_a_random_key_when_none_is_given():
    first = entrypoint.plan_launch([], SERVER, {}, supported=True, python="py")
    second = entrypoint.plan_launch([], SERVER, {}, supported=True, python="py")
    key = first.env["REENACT_ADMIN_KEY"]
    assert len(key) >= 32 and key != second.env["REENACT_ADMIN_KEY"]
    assert any(arg.endswith(f"x-reenact-admin={key}") for arg in first.argv)


def test_entrypoint_leaves_the_apis_open_for_a_supervisor_without_the_header():
    launch = entrypoint.plan_launch([], SERVER, {}, supported=False, python="py")
    assert not launch.restricted
    assert not any("restricted" in arg for arg in launch.argv)
    forced = entrypoint.plan_launch(
        [], SERVER, {"REENACT_RESTRICT_ADMIN_API": "1"}, supported=False, python="py"
    )
    assert forced.restricted and any("--http-restricted-api=" in a for a in forced.argv)
    with pytest.raises(ValueError, match="auto, 1 or 0"):
        entrypoint.plan_launch([], SERVER, {"REENACT_RESTRICT_ADMIN_API": "maybe"}, True)


def test_entrypoint_keeps_restriction_flags_given_on_the_command_line():
    given = [*SERVER, "--http-restricted-api=model-repository:h=v"]
    launch = entrypoint.plan_launch([], given, {}, supported=False, python="py")
    assert launch.restricted
    assert sum("restricted" in arg for arg in launch.argv) == 1


def test_entrypoint_refuses_a_key_that_would_break_the_option():
    with pytest.raises(ValueError, match="without"):
        entrypoint.plan_launch([], SERVER, {"REENACT_ADMIN_KEY": "a=b"}, supported=True)


def test_dockerfile_runs_the_entrypoint_with_the_supervisors_options():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert '"reenact.deploy.entrypoint"' in text
    assert entrypoint.split_args(["--health-port=8003", "--", "tritonserver", "--x"]) == (
        ["--health-port=8003"],
        ["tritonserver", "--x"],
    )
