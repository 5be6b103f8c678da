"""The load/fault benchmark's report (clients.perf.stress): percentiles, the RSS trend and the
fault-window accounting, on synthetic samples whose answers are known by construction."""

from __future__ import annotations

import math

import pytest

from clients.perf.stress import (
    OK,
    REFUSED,
    Attempt,
    RssSample,
    fault_window,
    format_report,
    least_squares_slope,
    percentile,
    rss_trend,
    summarize,
)

INTERNAL = "StatusCode.INTERNAL"


def test_nearest_rank_percentiles_of_one_to_a_hundred():
    values = [float(v) for v in range(100, 0, -1)]  # unordered on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0


def test_percentile_of_few_values_is_one_of_them():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert percentile([7.0], 90) == 7.0
    assert math.isnan(percentile([], 50))


def test_slope_of_an_exact_line():
    xs = [0.0, 10.0, 20.0, 30.0]
    assert least_squares_slope(xs, [5.0 + 2.0 * x for x in xs]) == pytest.approx(2.0)
    assert least_squares_slope([1.0], [1.0]) is None
    assert least_squares_slope([2.0, 2.0], [1.0, 3.0]) is None


def samples(values: list[float], phase: str = "load", step_s: float = 10.0) -> list[RssSample]:
    return [RssSample(100.0 + step_s * i, phase, v, 8) for i, v in enumerate(values)]


def test_rss_trend_is_mib_per_minute_over_the_second_half():
    # +1 MiB every 10 s = +6 MiB/min
    assert rss_trend(samples([1000.0 + i for i in range(7)])) == pytest.approx(6.0)


def test_rss_trend_ignores_the_first_half_warm_up_and_other_phases():
    # warm-up growth of 300 MiB in the first half, then flat; the fault phase jumps
    series = samples([2000.0, 2150.0, 2300.0, 2300.0, 2300.0, 2300.0, 2300.0])
    series += [RssSample(200.0, "fault", 1800.0, 8), RssSample(210.0, "after", 2600.0, 8)]
    assert rss_trend(series) == pytest.approx(0.0, abs=1e-9)


def test_rss_trend_needs_two_samples():
    assert rss_trend(samples([1000.0])) is None
    assert rss_trend(samples([1000.0, 1001.0], phase="after")) is None


def readiness(outage: tuple[float, float], end: float = 60.0) -> list[tuple[float, int | None]]:
    """A /health/ready sample every 0.2 s from 0 to ``end``: 503 within [outage), else 200."""
    out = []
    for i in range(int(end / 0.2) + 1):
        t = round(i * 0.2, 6)
        out.append((t, 503 if outage[0] <= t < outage[1] else 200))
    return out


def test_fault_window_runs_from_the_first_false_to_the_first_true_after_the_kill():
    timeline = readiness((30.2, 34.0))
    assert fault_window(timeline, killed_at=30.05) == (30.2, 34.0)
    assert fault_window(timeline, killed_at=40.0) == (None, None)  # nothing after that kill
    never_back = [(t, 200 if t < 30.1 else None) for t, _ in timeline]  # no answer at all
    assert fault_window(never_back, killed_at=30.0) == (30.2, None)


def good(started: float, duration: float = 0.5, status: str = OK) -> Attempt:
    return Attempt(started, started + duration, True, status)


def bad(started: float, status: str = REFUSED, case: str = "photo-empty") -> Attempt:
    return Attempt(started, started + 0.05, False, status, case)


def test_summary_counts_failures_against_the_fault_window():
    killed_at, outage = 30.0, (30.2, 34.0)
    attempts = [good(float(t)) for t in range(0, 28)]  # load phase: 28 good, 0.5 s each
    attempts += [bad(0.1), bad(10.1), bad(20.1, status=OK, case="emotion-sql")]
    attempts += [
        good(12.0, status=INTERNAL),  # before the kill: outside the window
        good(29.8, status=INTERNAL),  # in flight at the kill: inside
        good(31.0, status=INTERNAL),  # inside
        good(33.9, status=INTERNAL),  # started before readiness came back: inside
        good(34.5, duration=0.4),  # first success after the kill
        good(36.0, status=INTERNAL),  # after recovery: outside
    ]
    report = summarize(
        attempts,
        readiness(outage),
        samples([1000.0, 1001.0, 1002.0]),
        load_window=(0.0, 28.0),
        killed_at=killed_at,
        leftover_shm_files=0,
    )
    assert report.sent == 37 and report.good_sent == 34 and report.bad_sent == 3
    assert report.good_failed_outside_fault == 2
    assert report.good_failure_statuses == {INTERNAL: 5}
    assert report.bad_refused == 2
    assert report.bad_other == {f"emotion-sql: {OK}": 1}
    assert report.latency_ms[50] == pytest.approx(500.0)
    assert report.load_good_per_s == pytest.approx(1.0)  # 28 successes started in 28 s
    fault = report.fault
    assert fault is not None and fault.good_failed == 3
    assert fault.not_ready_after_s == pytest.approx(0.2)
    assert fault.ready_again_after_s == pytest.approx(4.0)
    assert fault.not_ready_for_s == pytest.approx(3.8)
    assert fault.first_success_after_s == pytest.approx(4.9)
    assert report.not_ready_outside_fault == 0


def test_readiness_lost_without_a_fault_is_counted_outside_it():
    attempts = [good(float(t), duration=0.25) for t in range(10)]
    report = summarize(
        attempts, readiness((5.0, 6.0), end=10.0), [], (0.0, 10.0), None, leftover_shm_files=3
    )
    assert report.fault is None
    assert report.not_ready_outside_fault == 5  # samples at 5.0, 5.2, 5.4, 5.6, 5.8
    assert report.latency_ms[99] == pytest.approx(250.0)
    assert report.rss_trend_mib_per_min is None
    text = format_report(report)
    assert "shared-memory files left after stop: 3" in text
    assert "outside the fault window: 5 samples" in text


def test_a_fault_that_never_heals_keeps_every_later_failure_inside():
    attempts = [good(1.0), good(11.0, status=INTERNAL), good(50.0, status=INTERNAL)]
    timeline = [(t, 200 if t < 10.0 else 503) for t, _ in readiness((0.0, 0.0))]
    report = summarize(attempts, timeline, [], (0.0, 10.0), killed_at=10.0, leftover_shm_files=0)
    assert report.good_failed_outside_fault == 0
    assert report.fault is not None and report.fault.good_failed == 2
    assert report.fault.ready_again_after_s is None and report.fault.first_success_after_s is None
    assert "never" in format_report(report)
