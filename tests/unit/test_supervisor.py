"""The supervisor's decisions, with fake processes and a fake server: which model is reloaded,
when the server is restarted instead, how long it waits, and what the health endpoints say."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reenact.serving import health, supervisor
from reenact.serving.supervisor import (
    RecoveryPolicy,
    Stub,
    SupervisorConfig,
    current_generation,
    list_stubs,
    model_of_instance,
    parse_server_args,
    stub_changes,
)

SERVER_PID = 4242


def stub(pid: int, instance: str, start: int = 100) -> Stub:
    return Stub(pid, instance, f"region_{pid}", start)


def write_process(proc: Path, pid: int, ppid: int, state: str, argv: list[str]) -> None:
    folder = proc / str(pid)
    folder.mkdir()
    # comm holds a space and a parenthesis: the parser must split after the last ")"
    rest = [state, str(ppid)] + ["0"] * 17 + [str(1000 + pid)]  # field 22 = start time
    (folder / "stat").write_text(f"{pid} (triton (stub)) " + " ".join(rest) + " 0 0\n")
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def stub_argv(instance: str, region: str) -> list[str]:
    return [
        "/x/backends/python/triton_python_backend_stub",
        f"/repo/{model_of_instance(instance)}/1/model.py",
        region,
        "1048576",
        "1048576",
        str(SERVER_PID),
        "/x/backends/python",
        "336",
        instance,
        "DEFAULT",
    ]


def test_list_stubs_reads_the_servers_live_stub_children(tmp_path):
    write_process(tmp_path, 10, SERVER_PID, "S", stub_argv("reenactor_0_0", "shm_a"))
    write_process(tmp_path, 11, SERVER_PID, "S", stub_argv("face_reenactment_0_1", "shm_b"))
    write_process(tmp_path, 12, SERVER_PID, "Z", [])  # a dead stub: zombie, empty cmdline
    write_process(tmp_path, 13, 1, "S", stub_argv("mesh_predictor_0_0", "shm_c"))  # not ours
    write_process(tmp_path, 14, SERVER_PID, "S", ["/usr/bin/sleep", "1"])  # not a stub
    (tmp_path / "self").mkdir()
    found = sorted(list_stubs(SERVER_PID, tmp_path), key=lambda s: s.pid)
    assert [(s.pid, s.instance, s.model, s.region) for s in found] == [
        (10, "reenactor_0_0", "reenactor", "shm_a"),
        (11, "face_reenactment_0_1", "face_reenactment", "shm_b"),
    ]
    assert found[0].start_ticks == 1010


def test_instance_names_map_to_their_model():
    assert model_of_instance("reenactor_0_0") == "reenactor"
    assert model_of_instance("face_reenactment_0_1") == "face_reenactment"
    assert model_of_instance("mesh_predictor_12_3") == "mesh_predictor"
    assert model_of_instance("odd_name") == "odd_name"


def test_a_dead_stub_marks_its_model_and_only_that_one():
    baseline = {s.instance: s for s in (stub(1, "reenactor_0_0"), stub(2, "face_mesh_x_0_0"))}
    changes = stub_changes(baseline, [stub(2, "face_mesh_x_0_0")])
    assert changes.dead_models == {"reenactor"} and not changes.replaced
    assert "pid 1" in changes.describe()
    assert stub_changes(baseline, baseline.values()).dead == {}


def test_a_stub_restarted_by_someone_else_is_replaced_not_dead():
    baseline = {"reenactor_0_0": stub(1, "reenactor_0_0", start=100)}
    changes = stub_changes(baseline, [stub(9, "reenactor_0_0", start=200)])
    assert changes.replaced == {"reenactor_0_0": "pid 1 → 9"} and not changes.dead


def test_the_newest_stub_of_an_instance_is_current_the_older_is_stale():
    old, new = stub(5, "face_preprocess_0_1", start=100), stub(8, "face_preprocess_0_1", start=300)
    other = stub(6, "reenactor_0_0", start=200)
    current, older = current_generation([new, other, old])
    assert current == {"face_preprocess_0_1": new, "reenactor_0_0": other}
    assert older == [old]


def test_server_arguments_in_both_spellings():
    args = parse_server_args(
        [
            "--model-repository=/m",
            "--http-address",
            "0.0.0.0",
            "--http-port=8100",
            "--model-control-mode",
            "explicit",
            "--backend-config=python,shm-region-prefix-name=reenact_ab_",
            "--backend-config=python,shm-default-byte-size=1",
        ]
    )
    assert args == supervisor.ServerArgs("127.0.0.1:8100", True, "reenact_ab_")
    default = parse_server_args(["--model-repository=/m"])
    assert default == supervisor.ServerArgs("127.0.0.1:8000", False, None)


def test_backoff_doubles_from_the_second_try_up_to_the_cap():
    config = SupervisorConfig(backoff_initial_s=1.0, backoff_max_s=5.0)
    assert [config.backoff_s(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_reload_first_then_restart_then_give_up():
    config = SupervisorConfig(reload_attempts=2, max_restarts=2, backoff_initial_s=1.0)
    policy = RecoveryPolicy(config, explicit_model_control=True)
    first = policy.next_action({"reenactor"})
    assert (first.kind, first.models, first.delay_s) == ("reload", ("reenactor",), 0.0)
    policy.reload_failed()
    second = policy.next_action({"reenactor"})
    assert (second.kind, second.delay_s) == ("reload", 1.0)
    policy.reload_failed()
    assert policy.next_action({"reenactor"}).kind == "restart"
    policy.restart_started(now=0.0)
    # a restart clears the reload count: the next failure is reloaded again
    assert policy.next_action({"reenactor"}).kind == "reload"
    restart = policy.next_action(set(), restart=True)
    assert (restart.kind, restart.delay_s) == ("restart", 1.0)
    policy.restart_started(now=1.0)
    assert policy.next_action(set(), restart=True).kind == "give_up"


def test_without_explicit_model_control_only_restarts_help():
    policy = RecoveryPolicy(SupervisorConfig(), explicit_model_control=False)
    assert policy.next_action({"reenactor"}).kind == "restart"


def test_restarts_are_forgiven_only_after_a_stable_period():
    config = SupervisorConfig(max_restarts=1, stable_after_s=300.0)
    policy = RecoveryPolicy(config, explicit_model_control=True)
    policy.restart_started(now=1000.0)
    policy.healthy(now=1100.0)
    assert policy.next_action(set(), restart=True).kind == "give_up"
    policy.healthy(now=1300.0)
    assert policy.next_action(set(), restart=True).kind == "restart"


MODELS = {
    "face_reenactment": ["mesh_predictor", "reenactor"],
    "face_mesh": ["face_preprocess", "mesh_predictor", "face_postprocess"],
}


def test_probes_reach_every_model_with_as_few_requests_as_the_order_allows():
    everything = [*MODELS, "face_preprocess", "mesh_predictor", "face_postprocess", "reenactor"]
    chosen, unreached = health.plan_probes(everything, lambda m: MODELS.get(m, []))
    assert [r.model for r in chosen] == ["face_reenactment", "face_mesh"] and not unreached
    chosen, unreached = health.plan_probes(
        ["face_reenactment", "mesh_predictor", "reenactor"], lambda m: MODELS.get(m, [])
    )
    assert [r.model for r in chosen] == ["face_reenactment"] and not unreached
    chosen, unreached = health.plan_probes(["face_preprocess", "other"], lambda m: [])
    assert [r.model for r in chosen] == ["face_preprocess"] and unreached == {"other"}


def test_dependencies_from_a_json_model_config():
    ensemble = {"ensemble_scheduling": {"step": [{"model_name": "a"}, {"model_name": "b"}]}}
    bls = {"parameters": {"depends_on": {"string_value": "mesh_predictor, reenactor"}}}
    assert health.config_dependencies(ensemble) == ["a", "b"]
    assert health.config_dependencies(bls) == ["mesh_predictor", "reenactor"]
    assert health.config_dependencies({}) == []


def test_deep_check_is_cached_and_runs_one_at_a_time():
    calls = []

    def slow_probe() -> health.CheckResult:
        calls.append(time.monotonic())
        time.sleep(0.2)
        return health.CheckResult(True, "fine")

    check = health.DeepCheck(slow_probe, max_age_s=60.0)
    threads = [threading.Thread(target=check.result) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1  # the waiting callers took the one fresh result
    check.invalidate()
    assert check.result().ok and len(calls) == 2
    check.result(max_age_s=0.0)
    assert len(calls) == 3


class DeadStubTriton(http.server.BaseHTTPRequestHandler):
    """Answers every inference like tritonserver 2.51 after the reenactor stub was killed."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(
            {"error": "reenactor failed: Stub process 'reenactor_0_0' is not healthy."}
        ).encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_stub_named_unhealthy_in_an_error_is_reported():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DeadStubTriton)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request = health.ProbeRequest("face_reenactment", "FACE_BOX")
    try:
        result = health.infer_http(f"127.0.0.1:{server.server_address[1]}", request, b"x", 5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.ok and result.unhealthy_instance == "reenactor_0_0"
    assert "HTTP 500" in result.detail and not result.timed_out


def test_health_endpoints_answer_200_or_503_with_json():
    state = {"ok": True}

    def ready() -> tuple[bool, dict]:
        return state["ok"], {"ready": state["ok"], "failed": None if state["ok"] else "stubs"}

    server = health.HealthServer("127.0.0.1", 0, ready, lambda: (True, {"live": True})).start()
    base = f"http://127.0.0.1:{server.port}/health"
    try:
        with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:
            assert response.status == 200 and json.loads(response.read())["ready"] is True
        state["ok"] = False
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/ready", timeout=5)
        assert info.value.code == 503 and json.loads(info.value.read())["failed"] == "stubs"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nothing", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()


class FakeProcess:
    pid = SERVER_PID

    def poll(self) -> int | None:
        return None


class Posted(list):
    """URLs POSTed to, in order, and the headers each carried (``headers``)."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, str]] = []


def make_supervisor(
    monkeypatch, live: list[Stub], deep_results: list[health.CheckResult], on_post=None
):
    """A supervisor whose server is FakeProcess with ``live`` stubs, whose deep checks return
    ``deep_results`` in turn (the last one from then on); HTTP POSTs are recorded and followed
    by ``on_post()``."""
    posted = Posted()

    def fake_status(
        url: str, timeout_s: float, data: bytes | None = None, headers: dict | None = None
    ) -> int:
        if data is not None:
            posted.append(url)
            posted.headers.append(dict(headers or {}))
            if on_post is not None:
                on_post()
        return 200

    def next_deep() -> health.CheckResult:
        return deep_results.pop(0) if len(deep_results) > 1 else deep_results[0]

    monkeypatch.setattr(supervisor, "list_stubs", lambda pid: list(live))
    monkeypatch.setattr(supervisor, "http_status", fake_status)
    config = SupervisorConfig(health_port=0, backoff_initial_s=0.0)
    sup = supervisor.Supervisor(["tritonserver", "--model-control-mode=explicit"], config)
    sup.health.stop()
    sup.process = FakeProcess()  # type: ignore[assignment]
    sup.deep = health.DeepCheck(next_deep, max_age_s=60.0)
    sup._take_baseline()
    sup.state = "serving"
    return sup, posted


RELOAD_URL = "http://127.0.0.1:8000/v2/repository/models/{}/load"


def test_a_dead_stub_reloads_its_model_and_nothing_else(monkeypatch):
    live = [
        stub(1, "reenactor_0_0"),
        stub(2, "face_reenactment_0_0"),
        stub(3, "mesh_predictor_0_0"),
    ]
    restarted = stub(7, "reenactor_0_0", start=500)  # what the reload starts
    answered = [health.CheckResult(True, "answered")]
    sup, posted = make_supervisor(monkeypatch, live, answered, lambda: live.append(restarted))
    assert sup.readiness()[0]
    del live[0]
    ready, body = sup.readiness()
    assert not ready and body["failed"] == "stubs"
    assert "reenactor_0_0" in body["checks"]["stubs"]["detail"]
    sup._tick()
    assert posted == [RELOAD_URL.format("reenactor")]
    assert sup.state == "serving" and sup.baseline["reenactor_0_0"].pid == 7
    assert sup.readiness()[0]


def test_reloads_carry_the_admin_key_when_the_admin_api_is_restricted(monkeypatch):
    monkeypatch.setenv(health.ADMIN_KEY_ENV, "s3cret")
    monkeypatch.setenv(health.ADMIN_HEADER_ENV, "x-test-admin")
    live = [stub(1, "reenactor_0_0"), stub(2, "face_reenactment_0_0")]
    failing = health.CheckResult(False, "INTERNAL", unhealthy_instance="reenactor_0_0")
    sup, posted = make_supervisor(monkeypatch, live, [failing, health.CheckResult(True, "ok")])
    sup._deep_check_tick()
    assert posted == [RELOAD_URL.format("reenactor")]
    assert posted.headers == [{"x-test-admin": "s3cret"}]
    monkeypatch.delenv(health.ADMIN_KEY_ENV)
    assert health.admin_headers() == {}  # no key: the APIs are open, no header is sent


def test_an_unhealthy_stub_named_by_the_deep_check_is_reloaded(monkeypatch):
    live = [stub(1, "reenactor_0_0"), stub(2, "face_reenactment_0_0")]
    failing = health.CheckResult(False, "INTERNAL", unhealthy_instance="reenactor_0_0")
    sup, posted = make_supervisor(monkeypatch, live, [failing, health.CheckResult(True, "ok")])
    sup._deep_check_tick()
    assert posted == [RELOAD_URL.format("reenactor")] and sup.state == "serving"


def test_a_reload_that_does_not_heal_is_retried_then_the_server_restarted(monkeypatch):
    live = [stub(1, "reenactor_0_0")]
    failing = health.CheckResult(False, "INTERNAL", unhealthy_instance="reenactor_0_0")
    sup, posted = make_supervisor(monkeypatch, live, [failing])
    restarts = []
    monkeypatch.setattr(sup, "_restart", lambda: restarts.append(1) or True)
    sup._deep_check_tick()
    assert posted == [RELOAD_URL.format("reenactor")] * SupervisorConfig().reload_attempts
    assert restarts == [1]


def test_stubs_left_behind_are_killed_but_not_a_reused_pid(tmp_path):
    left, reused = (subprocess.Popen(["sleep", "30"]) for _ in range(2))
    try:
        write_process(tmp_path, left.pid, 1, "S", stub_argv("reenactor_0_0", "shm_left"))
        write_process(tmp_path, reused.pid, 1, "S", ["sleep", "30", "other"])
        stubs = [Stub(left.pid, "reenactor_0_0", "shm_left", 1), Stub(reused.pid, "x_0_0", "r", 1)]
        assert supervisor.kill_orphaned_stubs(stubs, tmp_path) == [left.pid]
        assert left.wait(5) == -9 and reused.poll() is None
    finally:
        for process in (left, reused):
            process.kill()
            process.wait()
