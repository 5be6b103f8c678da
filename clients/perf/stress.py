"""Load and fault benchmark of a local Triton server: a mix of good and hostile requests at a
fixed concurrency, then a killed reenactor stub under the same load.

    python -m clients.perf.stress [--duration 60] [--concurrency 8] [--bad-every 4]

It starts its own server (every model, under the supervisor, on 127.0.0.1) and runs:

1. **load** (``--duration`` s): ``--concurrency`` threads, each with its own gRPC client, send
   requests back to back. Every ``--bad-every``-th request is hostile (the next case of
   ``tests.hostile.all_cases()``, which must be refused with INVALID_ARG); the others are good
   ``face_reenactment`` requests (the astronaut as JPEG, ``--emotions``, 2 by default, so that a
   request costs about a fifth of the 15-emotion default and the 2-core node stays responsive).
2. **fault**: the same load; after ``kill_after_s`` the ``reenactor`` stub gets SIGKILL, and the
   load goes on until ``/health/ready`` was false and is true again and good requests started
   after that succeeded (at most ``fault_limit_s``), then ``after_recovery_s`` more.
3. **after**: the load stops; the server idles ``idle_after_s`` and is stopped.

Threads with tritonclient rather than perf_analyzer: each request's outcome (gRPC status and
timing) is needed to tell the bad requests' refusals from the good requests' failures and to
place every failure against the kill and the readiness timeline; perf_analyzer sends one input
set and reports aggregated counts.

It prints requests sent, good requests failed (inside and outside the fault window, which runs
from the kill until readiness is true again), hostile requests refused with INVALID_ARG, latency
percentiles of good requests in the load phase, the server's RSS (tritonserver and every stub,
from ``/proc``) before, every ``sample_every_s`` and after, with the least-squares slope of the
load phase's second half, shared-memory files left after the stop, and for the fault the time
from the kill to readiness false, readiness true and the first good success, then the
per-process memory (as ``make memory`` prints it) before the load and after the run. The summary
is :func:`summarize` (pure, unit-tested) and :func:`format_report`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from clients.perf import memory
from reenact.serving.server import ServerConfig, TritonServer
from reenact.serving.supervisor import SHM_DIR, list_stubs

log = logging.getLogger(__name__)

MODEL = "face_reenactment"
REFUSED = "StatusCode.INVALID_ARGUMENT"
OK = "OK"
WRONG_OUTPUT = "WRONG_OUTPUT"  # answered, but not with one image per emotion
FAULT_MODEL = "reenactor"


@dataclass(frozen=True)
class StressConfig:
    """The load, the fault and the sampling; times in seconds."""

    duration_s: float = 60.0  # the load phase
    concurrency: int = 8
    bad_every: int = 4  # every bad_every-th request is hostile
    emotions: tuple[str, ...] = ("happy", "sad")
    kill_after_s: float = 5.0  # into the fault phase
    fault_limit_s: float = 60.0  # kill → recovered, at most
    after_recovery_s: float = 5.0  # load kept after recovery
    idle_after_s: float = 10.0  # idle before the last RSS sample
    sample_every_s: float = 10.0  # RSS
    health_every_s: float = 0.2  # /health/ready
    request_timeout_s: float = 60.0
    warm_up_requests: int = 2


@dataclass(frozen=True)
class Attempt:
    """One request: monotonic start and end, good or hostile, and its outcome (``OK`` or the
    gRPC status, e.g. ``StatusCode.INVALID_ARGUMENT``)."""

    started: float
    ended: float
    good: bool
    status: str
    case: str = ""  # the hostile case's name

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class RssSample:
    at: float  # monotonic seconds
    phase: str  # before, load, fault, after
    rss_mib: float  # tritonserver + stubs
    processes: int


@dataclass(frozen=True)
class FaultSummary:
    """Seconds from the kill; None where it never happened within the run."""

    not_ready_after_s: float | None  # first /health/ready != 200
    ready_again_after_s: float | None  # first 200 after that
    first_success_after_s: float | None  # first good request started after the kill to succeed
    good_failed: int  # good requests failed inside the fault window

    @property
    def not_ready_for_s(self) -> float | None:
        if self.not_ready_after_s is None or self.ready_again_after_s is None:
            return None
        return self.ready_again_after_s - self.not_ready_after_s


@dataclass(frozen=True)
class StressReport:
    sent: int
    good_sent: int
    good_failed_outside_fault: int
    good_failure_statuses: dict[str, int]
    bad_sent: int
    bad_refused: int  # with INVALID_ARG
    bad_other: dict[str, int]  # status → count, for hostile requests not refused with INVALID_ARG
    load_good_per_s: float
    latency_ms: dict[int, float]  # percentile → ms, good requests of the load phase
    rss_series: tuple[RssSample, ...]
    rss_trend_mib_per_min: float | None  # second half of the load phase
    not_ready_outside_fault: int  # /health/ready samples != 200 outside the fault window
    fault: FaultSummary | None
    leftover_shm_files: int
    started: float = 0.0  # monotonic origin for printed times


# --- the report: pure functions -------------------------------------------------------------

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile: the smallest value with at least q % of the values
    at or below it. NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(np.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The slope of the least-squares line through (xs, ys); None for fewer than 2 distinct xs."""
    x = np.asarray(xs, np.float64)
    y = np.asarray(ys, np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx * dx).sum())


def rss_trend(samples: Sequence[RssSample], phase: str = "load") -> float | None:
    """MiB per minute: the least-squares slope of RSS over the second half (by time) of the
    ``phase`` samples, once the first requests' allocations are done."""
    series = [s for s in samples if s.phase == phase]
    if len(series) < 2:
        return None
    middle = (series[0].at + series[-1].at) / 2
    late = [s for s in series if s.at >= middle]
    slope = least_squares_slope([s.at for s in late], [s.rss_mib for s in late])
    return None if slope is None else slope * 60.0


def fault_window(
    readiness: Sequence[tuple[float, int | None]], killed_at: float
) -> tuple[float | None, float | None]:
    """(first /health/ready sample after the kill that is not 200, first 200 after it)."""
    outage = next((t for t, status in readiness if t > killed_at and status != 200), None)
    if outage is None:
        return None, None
    back = next((t for t, status in readiness if t > outage and status == 200), None)
    return outage, back


def in_fault_window(attempt: Attempt, killed_at: float | None, window_end: float | None) -> bool:
    """Whether ``attempt`` overlaps [kill, readiness back) (open-ended when it never came back)."""
    if killed_at is None or attempt.ended < killed_at:
        return False
    return window_end is None or attempt.started < window_end


def summarize_fault(
    attempts: Sequence[Attempt],
    readiness: Sequence[tuple[float, int | None]],
    killed_at: float,
) -> FaultSummary:
    outage, back = fault_window(readiness, killed_at)
    successes = [a.ended for a in attempts if a.good and a.ok and a.started > killed_at]
    failed = [a for a in attempts if a.good and not a.ok and in_fault_window(a, killed_at, back)]
    return FaultSummary(
        not_ready_after_s=None if outage is None else outage - killed_at,
        ready_again_after_s=None if back is None else back - killed_at,
        first_success_after_s=min(successes) - killed_at if successes else None,
        good_failed=len(failed),
    )


def summarize(
    attempts: Sequence[Attempt],
    readiness: Sequence[tuple[float, int | None]],
    rss: Sequence[RssSample],
    load_window: tuple[float, float],
    killed_at: float | None,
    leftover_shm_files: int,
) -> StressReport:
    """Every figure of the run. ``load_window``: (start, end) of the load phase, monotonic."""
    window_end = fault_window(readiness, killed_at)[1] if killed_at is not None else None
    good = [a for a in attempts if a.good]
    bad = [a for a in attempts if not a.good]
    good_failed_outside = [
        a for a in good if not a.ok and not in_fault_window(a, killed_at, window_end)
    ]
    load_start, load_end = load_window
    load_good = [a for a in good if a.ok and load_start <= a.started < load_end]
    latencies = [1000.0 * (a.ended - a.started) for a in load_good]
    not_ready_outside = [
        t
        for t, status in readiness
        if status != 200
        and not (
            killed_at is not None and killed_at <= t and (window_end is None or t <= window_end)
        )
    ]
    return StressReport(
        sent=len(attempts),
        good_sent=len(good),
        good_failed_outside_fault=len(good_failed_outside),
        good_failure_statuses=dict(Counter(a.status for a in good if not a.ok)),
        bad_sent=len(bad),
        bad_refused=sum(a.status == REFUSED for a in bad),
        bad_other=dict(Counter(f"{a.case}: {a.status}" for a in bad if a.status != REFUSED)),
        load_good_per_s=len(load_good) / max(load_end - load_start, 1e-9),
        latency_ms={q: percentile(latencies, q) for q in PERCENTILES},
        rss_series=tuple(rss),
        rss_trend_mib_per_min=rss_trend(rss),
        not_ready_outside_fault=len(not_ready_outside),
        fault=None if killed_at is None else summarize_fault(attempts, readiness, killed_at),
        leftover_shm_files=leftover_shm_files,
        started=load_start,
    )


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def format_report(report: StressReport) -> str:
    """The printed summary."""
    lat = ", ".join(f"p{q} {ms:.0f} ms" for q, ms in report.latency_ms.items())
    lines = [
        f"requests sent: {report.sent} ({report.good_sent} good, {report.bad_sent} hostile)",
        f"good requests failed outside the fault window: {report.good_failed_outside_fault}"
        + (
            f" (all failures by status: {report.good_failure_statuses})"
            if report.good_failure_statuses
            else ""
        ),
        f"hostile requests refused with INVALID_ARG: {report.bad_refused} of {report.bad_sent}",
    ]
    lines += [
        f"  not refused with INVALID_ARG: {case}: {n}" for case, n in report.bad_other.items()
    ]
    lines += [
        f"load phase: {report.load_good_per_s:.2f} good requests/s; latency {lat}",
        f"/health/ready not 200 outside the fault window: {report.not_ready_outside_fault} samples",
        "server RSS (tritonserver + stubs):",
    ]
    lines += [
        f"  {s.at - report.started:+7.1f} s  {s.phase:<6} {s.rss_mib:8.1f} MiB  "
        f"({s.processes} processes)"
        for s in report.rss_series
    ]
    trend = report.rss_trend_mib_per_min
    lines.append(
        "RSS trend, second half of the load phase: "
        + ("n/a" if trend is None else f"{trend:+.1f} MiB/min")
    )
    if report.fault is not None:
        f = report.fault
        lines += [
            f"fault ({FAULT_MODEL} stub SIGKILLed): /health/ready false after "
            f"{_seconds(f.not_ready_after_s)}, true again after {_seconds(f.ready_again_after_s)} "
            f"(false for {_seconds(f.not_ready_for_s)}); first good success after "
            f"{_seconds(f.first_success_after_s)}; {f.good_failed} good requests failed in the "
            "window",
        ]
    lines.append(f"shared-memory files left after stop: {report.leftover_shm_files}")
    return "\n".join(lines)


# --- the run ----------------------------------------------------------------------------------


def _infer_inputs(tensors: Sequence[tuple[str, np.ndarray, str]]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, array, datatype in tensors:
        given = grpcclient.InferInput(name, list(array.shape), datatype)
        given.set_data_from_numpy(array)
        inputs.append(given)
    return inputs


class RequestMix:
    """Which request comes next: every ``bad_every``-th is the next hostile case (in turn), the
    others the good one. Thread-safe."""

    def __init__(self, config: StressConfig, photo: bytes) -> None:
        from tests import hostile  # the corpus of malformed requests, made by code

        self.config = config
        self.good = (
            ("IMAGE", np.array([photo], dtype=object), "BYTES"),
            ("EMOTIONS", np.array([e.encode() for e in config.emotions], dtype=object), "BYTES"),
        )
        self.bad = [
            (case.name, tuple((t.name, t.array, t.datatype) for t in case.inputs))
            for case in hostile.all_cases()
        ]
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[str, tuple[tuple[str, np.ndarray, str], ...]]:
        """("" for the good request or the hostile case's name, its tensors)."""
        with self._lock:
            index = self._count
            self._count += 1
        if index % self.config.bad_every != self.config.bad_every - 1:
            return "", self.good
        return self.bad[(index // self.config.bad_every) % len(self.bad)]


def send_one(client, mix: RequestMix, timeout_s: float) -> Attempt:
    case, tensors = mix.next()
    good = case == ""
    outputs = None if good else [grpcclient.InferRequestedOutput("FACE_BOX")]
    started = time.monotonic()
    try:
        result = client.infer(
            MODEL, _infer_inputs(tensors), outputs=outputs, client_timeout=timeout_s
        )
        status = OK
        if good and len(result.as_numpy("IMAGES").reshape(-1)) != len(mix.config.emotions):
            status = WRONG_OUTPUT
    except InferenceServerException as exc:
        status = str(exc.status())
    return Attempt(started, time.monotonic(), good, status, case)


def load_worker(
    url: str, mix: RequestMix, attempts: list[Attempt], stop: threading.Event, deadline: float
) -> None:
    with grpcclient.InferenceServerClient(url) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            attempts.append(send_one(client, mix, mix.config.request_timeout_s))


def poll_readiness(
    server: TritonServer, samples: list, stop: threading.Event, every_s: float, deadline: float
) -> None:
    while not stop.is_set() and time.monotonic() < deadline:
        status, _ = server.health("ready")
        samples.append((time.monotonic(), status))
        stop.wait(every_s)


def sample_rss(
    server: TritonServer,
    phase: Callable[[], str],
    samples: list,
    stop: threading.Event,
    every_s: float,
    deadline: float,
) -> None:
    while not stop.is_set() and time.monotonic() < deadline:
        samples.append(rss_sample(server, phase()))
        stop.wait(every_s)


def rss_sample(server: TritonServer, phase: str) -> RssSample:
    processes = memory.server_memory(server)
    return RssSample(time.monotonic(), phase, memory.total_rss_mib(processes), len(processes))


def triton_pid(server: TritonServer) -> int:
    pid = memory.server_pid(server.pid)
    if pid is None:
        raise RuntimeError("no tritonserver process under the supervisor")
    return pid


def kill_stub(server: TritonServer, model: str) -> float:
    """SIGKILL the (first) stub of ``model``; the monotonic time of the kill."""
    stubs = [s for s in list_stubs(triton_pid(server)) if s.model == model]
    if not stubs:
        raise RuntimeError(f"no stub of {model} running")
    killed_at = time.monotonic()
    os.kill(stubs[0].pid, signal.SIGKILL)
    return killed_at


def wait_recovered(
    attempts: list[Attempt], readiness: list, killed_at: float, limit_s: float
) -> None:
    """Until readiness was false and is true again and 3 good requests started since succeeded,
    or ``limit_s`` after the kill."""
    while time.monotonic() - killed_at < limit_s:
        back = fault_window(readiness, killed_at)[1]
        if back is not None and sum(a.good and a.ok and a.started > back for a in attempts) >= 3:
            return
        time.sleep(0.2)


def wait_ready(server: TritonServer, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.health("ready")[0] == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"/health/ready not 200 within {limit_s:.0f} s")


@dataclass
class Run:
    """What the threads of one run collect."""

    attempts: list[Attempt] = field(default_factory=list)
    readiness: list[tuple[float, int | None]] = field(default_factory=list)
    rss: list[RssSample] = field(default_factory=list)
    phase: str = "before"
    load_window: tuple[float, float] = (0.0, 0.0)
    killed_at: float | None = None
    tables: list[str] = field(default_factory=list)  # per-process memory before and after


def memory_table(server: TritonServer, title: str) -> str:
    return f"{title}\n{memory.format_table(memory.server_memory(server), None)}"


def run_stress(config: StressConfig, photo: bytes) -> tuple[StressReport, list[str]]:
    """The report, and the per-process memory tables before the load and after it."""
    mix = RequestMix(config, photo)
    run = Run()
    server_config = ServerConfig(extra_args=("--exit-timeout-secs=3",))
    with TritonServer(server_config) as server:
        wait_ready(server, 60.0)
        from clients.perf.run_perf import warm_up

        warm_up(server.grpc_url, MODEL, photo, config.warm_up_requests)
        run.rss.append(rss_sample(server, "before"))
        run.tables.append(memory_table(server, "memory before the load (after the warm-up)"))
        run_load_and_fault(server, config, mix, run)
        run.phase = "after"
        time.sleep(config.idle_after_s)
        run.rss.append(rss_sample(server, "after"))
        run.tables.append(
            memory_table(server, f"memory after the run, idle {config.idle_after_s:.0f} s")
        )
    leftover = len(list(SHM_DIR.glob(f"{server.shm_prefix}*")))
    report = summarize(
        run.attempts, run.readiness, run.rss, run.load_window, run.killed_at, leftover
    )
    return report, run.tables


def run_load_and_fault(
    server: TritonServer, config: StressConfig, mix: RequestMix, run: Run
) -> None:
    stop, stop_load = threading.Event(), threading.Event()
    limit = time.monotonic() + config.duration_s + config.kill_after_s + config.fault_limit_s + 60.0
    threads = [
        threading.Thread(
            target=load_worker, args=(server.grpc_url, mix, run.attempts, stop_load, limit)
        )
        for _ in range(config.concurrency)
    ]
    threads += [
        threading.Thread(
            target=poll_readiness, args=(server, run.readiness, stop, config.health_every_s, limit)
        ),
        threading.Thread(
            target=sample_rss,
            args=(server, lambda: run.phase, run.rss, stop, config.sample_every_s, limit),
        ),
    ]
    run.phase = "load"
    load_start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(config.duration_s)
        run.load_window = (load_start, time.monotonic())
        run.phase = "fault"
        print(f"load phase done ({len(run.attempts)} requests); fault phase", flush=True)
        time.sleep(config.kill_after_s)
        run.killed_at = kill_stub(server, FAULT_MODEL)
        wait_recovered(run.attempts, run.readiness, run.killed_at, config.fault_limit_s)
        time.sleep(config.after_recovery_s)
    finally:
        stop_load.set()
        stop.set()
        for thread in threads:
            thread.join()


def main(argv: list[str] | None = None) -> int:
    defaults = StressConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=defaults.duration_s)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--bad-every", type=int, default=defaults.bad_every)
    parser.add_argument("--emotions", nargs="+", default=list(defaults.emotions))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from clients.perf.run_perf import encode_jpeg, sample_photo

    config = StressConfig(
        duration_s=args.duration,
        concurrency=args.concurrency,
        bad_every=max(1, args.bad_every),
        emotions=tuple(args.emotions),
    )
    started = time.monotonic()
    report, tables = run_stress(config, encode_jpeg(sample_photo()))
    print(
        f"== stress: {config.concurrency} threads, {config.duration_s:.0f} s load, 1 in "
        f"{config.bad_every} hostile, good = {MODEL} with {len(config.emotions)} emotions "
        f"({', '.join(config.emotions)}); whole run {time.monotonic() - started:.0f} s"
    )
    print(format_report(report))
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
