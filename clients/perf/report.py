"""perf_analyzer results as a report: parsed rows, a summary CSV, a Markdown table and a plot,
each beside the figures the thesis reports for the same request.

perf_analyzer 2.51.0 writes with ``-f`` one CSV row per concurrency level, latencies in
microseconds::

    Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,
    Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,
    p50 latency,p90 latency,p95 latency,p99 latency

(``--verbose-csv`` appends more columns; they are ignored). One inference is one request: for
``face_reenactment`` one photo in, 15 emotion images out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

THESIS_SOURCE = (
    "R. Vei, One-shot Facial Expression Reenactment using 3D Morphable Models, master thesis, "
    "Ukrainian Catholic University, 2022, Table 3.5 (15 emotions per request, NVIDIA Titan RTX)"
)

EMOTIONS_PER_REQUEST = 15
USEC_PER_MS = 1000.0

COLUMN_CONCURRENCY = "Concurrency"
COLUMN_THROUGHPUT = "Inferences/Second"
COLUMN_P50 = "p50 latency"
COLUMN_P90 = "p90 latency"
COLUMN_P95 = "p95 latency"
COLUMN_P99 = "p99 latency"
COLUMN_SERVER_INFER = "Server Compute Infer"
REQUIRED_COLUMNS = (
    COLUMN_CONCURRENCY,
    COLUMN_THROUGHPUT,
    COLUMN_P50,
    COLUMN_P90,
    COLUMN_P95,
    COLUMN_P99,
    COLUMN_SERVER_INFER,
)


@dataclass(frozen=True)
class ThesisRow:
    """One row of the thesis's throughput table."""

    concurrency: int
    throughput_infer_per_s: float
    latency_ms: float
    derived: bool  # True: not printed in the thesis, derived from what it states


def thesis_rows() -> tuple[ThesisRow, ...]:
    """The thesis's figures for concurrency 1 to 6 (:data:`THESIS_SOURCE`).

    The thesis states 0.8 infer/s and 1266 ms at concurrency 1 and a throughput flat at about
    1 infer/s from concurrency 2 to 6. Rows 2 to 6 are derived: 1.0 infer/s, and the latency
    from Little's law (requests in flight = throughput × latency), latency = concurrency / 1.0 s.
    """
    rows = [ThesisRow(1, 0.8, 1266.0, derived=False)]
    flat_throughput = 1.0
    for concurrency in range(2, 7):
        latency_ms = concurrency / flat_throughput * 1000.0
        rows.append(ThesisRow(concurrency, flat_throughput, latency_ms, derived=True))
    return tuple(rows)


@dataclass(frozen=True)
class PerfRow:
    """One concurrency level as perf_analyzer measured it, latencies in milliseconds."""

    concurrency: int
    throughput_infer_per_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    server_compute_infer_ms: float  # mean time inside the model's execute

    @property
    def images_per_s(self) -> float:
        return self.throughput_infer_per_s * EMOTIONS_PER_REQUEST


@dataclass(frozen=True)
class LevelResult:
    """The outcome at one concurrency level: a row, or why there is none.

    ``stability_percent`` is the perf_analyzer ``--stability-percentage`` the row met; ``None``
    with ``row=None`` when no measurement met any threshold tried.
    """

    concurrency: int
    row: PerfRow | None
    stability_percent: float | None
    load_average: float  # 1-minute load average of the machine when the level finished


def read_perf_analyzer_csv(path: Path) -> list[PerfRow]:
    """The rows of a perf_analyzer ``-f`` CSV, sorted by concurrency.

    Raises ValueError naming the columns that are missing.
    """
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a perf_analyzer CSV, missing columns {missing}")
        rows = [_perf_row(record) for record in reader if record[COLUMN_CONCURRENCY].strip()]
    return sorted(rows, key=lambda row: row.concurrency)


def _perf_row(record: dict[str, str]) -> PerfRow:
    def ms(column: str) -> float:
        return float(record[column]) / USEC_PER_MS

    return PerfRow(
        concurrency=int(record[COLUMN_CONCURRENCY]),
        throughput_infer_per_s=float(record[COLUMN_THROUGHPUT]),
        latency_p50_ms=ms(COLUMN_P50),
        latency_p90_ms=ms(COLUMN_P90),
        latency_p95_ms=ms(COLUMN_P95),
        latency_p99_ms=ms(COLUMN_P99),
        server_compute_infer_ms=ms(COLUMN_SERVER_INFER),
    )


def merge_perf_analyzer_csvs(sources: Iterable[Path], destination: Path) -> Path:
    """One perf_analyzer CSV from several (one per run): the first header, every data row."""
    header: list[str] | None = None
    data: list[list[str]] = []
    for source in sources:
        with source.open(newline="") as handle:
            records = [record for record in csv.reader(handle) if record]
        if not records:
            continue
        if header is None:
            header = records[0]
        elif records[0] != header:
            raise ValueError(f"{source}: header differs from the first file's")
        data.extend(records[1:])
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if header is not None:
            writer.writerow(header)
        writer.writerows(data)
    return destination


SUMMARY_COLUMNS = (
    "concurrency",
    "throughput_infer_per_s",
    "images_per_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "server_compute_infer_ms",
    "stability_percent",
    "load_average_1min",
    "thesis_throughput_infer_per_s",
    "thesis_latency_ms",
    "thesis_row_derived",
)


def write_summary_csv(
    results: Sequence[LevelResult], thesis: Sequence[ThesisRow], path: Path
) -> Path:
    """One row per concurrency level (measured or thesis), blank cells where a side has none."""
    by_level = {result.concurrency: result for result in results}
    thesis_by_level = {row.concurrency: row for row in thesis}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for level in sorted(by_level.keys() | thesis_by_level.keys()):
            writer.writerow(
                _measured_cells(by_level.get(level))
                | _thesis_cells(thesis_by_level.get(level))
                | {"concurrency": level}
            )
    return path


def _measured_cells(result: LevelResult | None) -> dict[str, str]:
    if result is None:
        return {}
    cells = {"load_average_1min": f"{result.load_average:.2f}"}
    if result.stability_percent is not None:
        cells["stability_percent"] = f"{result.stability_percent:g}"
    row = result.row
    if row is not None:
        cells |= {
            "throughput_infer_per_s": f"{row.throughput_infer_per_s:.4f}",
            "images_per_s": f"{row.images_per_s:.3f}",
            "latency_p50_ms": f"{row.latency_p50_ms:.3f}",
            "latency_p90_ms": f"{row.latency_p90_ms:.3f}",
            "latency_p95_ms": f"{row.latency_p95_ms:.3f}",
            "latency_p99_ms": f"{row.latency_p99_ms:.3f}",
            "server_compute_infer_ms": f"{row.server_compute_infer_ms:.3f}",
        }
    return cells


def _thesis_cells(row: ThesisRow | None) -> dict[str, str]:
    if row is None:
        return {}
    return {
        "thesis_throughput_infer_per_s": f"{row.throughput_infer_per_s:g}",
        "thesis_latency_ms": f"{row.latency_ms:g}",
        "thesis_row_derived": "yes" if row.derived else "no",
    }


def markdown_table(results: Sequence[LevelResult], thesis: Sequence[ThesisRow]) -> str:
    """The thesis's table format, measured columns then the thesis's beside them (if any).

    Throughput with 2 decimals, latencies in whole milliseconds; ``~`` marks a derived thesis
    row, ``—`` a level with no figure.
    """
    by_level = {result.concurrency: result for result in results}
    thesis_by_level = {row.concurrency: row for row in thesis}
    header = ["concurrency", "throughput (infer/s)", "latency p50 (ms)", "latency p95 (ms)"]
    if thesis:
        header += ["thesis throughput (infer/s)", "thesis latency (ms)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " ---: |" * len(header)]
    for level in sorted(by_level.keys() | thesis_by_level.keys()):
        result = by_level.get(level)
        cells = [str(level), *_measured_figures(result.row if result is not None else None)]
        if thesis:
            cells += _thesis_figures(thesis_by_level.get(level))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _measured_figures(row: PerfRow | None) -> list[str]:
    if row is None:
        return ["—", "—", "—"]
    return [
        f"{row.throughput_infer_per_s:.2f}",
        f"{row.latency_p50_ms:.0f}",
        f"{row.latency_p95_ms:.0f}",
    ]


def _thesis_figures(row: ThesisRow | None) -> list[str]:
    if row is None:
        return ["—", "—"]
    mark = "~" if row.derived else ""
    return [f"{mark}{row.throughput_infer_per_s:.2f}", f"{mark}{row.latency_ms:.0f}"]


def report_figure(
    results: Sequence[LevelResult], thesis: Sequence[ThesisRow], title: str
) -> Figure:
    """Throughput (left) and latency p50/p95 (right) against concurrency, the thesis dashed.

    ``figure.axes[0]`` is throughput, ``figure.axes[1]`` latency. Lines in order: the measured
    line(s) (throughput; p50 then p95), then the thesis's line (hollow markers) and its stated
    rows (filled markers), when ``thesis`` is not empty.
    """
    measured = [result.row for result in results if result.row is not None]
    levels = [row.concurrency for row in measured]

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    throughput_axes, latency_axes = figure.subplots(1, 2)
    throughput_axes.plot(
        levels,
        [row.throughput_infer_per_s for row in measured],
        "o-",
        color="tab:blue",
        label="measured",
    )
    _plot_thesis(throughput_axes, thesis, [row.throughput_infer_per_s for row in thesis])
    throughput_axes.set(xlabel="concurrency", ylabel="throughput (infer/s)", ylim=(0, None))
    throughput_axes.set_title("throughput")

    latency_axes.plot(
        levels,
        [row.latency_p50_ms for row in measured],
        "o-",
        color="tab:blue",
        label="measured p50",
    )
    latency_axes.plot(
        levels,
        [row.latency_p95_ms for row in measured],
        "^:",
        color="tab:orange",
        label="measured p95",
    )
    _plot_thesis(latency_axes, thesis, [row.latency_ms for row in thesis])
    latency_axes.set(xlabel="concurrency", ylabel="latency (ms)", ylim=(0, None))
    latency_axes.set_title("latency")
    for axes in (throughput_axes, latency_axes):
        axes.set_xticks(sorted(set(levels) | {row.concurrency for row in thesis}))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(title)
    return figure


def _plot_thesis(axes: Axes, thesis: Sequence[ThesisRow], values: Sequence[float]) -> None:
    """The thesis's values as a grey dashed line; filled markers where the thesis states them."""
    if not thesis:
        return
    axes.plot(
        [row.concurrency for row in thesis],
        values,
        "s--",
        color="tab:gray",
        mfc="none",
        label="thesis, Titan RTX (hollow: derived)",
    )
    stated = [
        (row.concurrency, value)
        for row, value in zip(thesis, values, strict=True)
        if not row.derived
    ]
    axes.plot(
        [level for level, _ in stated],
        [value for _, value in stated],
        "s",
        color="tab:gray",
        label="_thesis stated",
    )


@dataclass(frozen=True)
class ReportPaths:
    summary_csv: Path
    markdown: Path
    plot: Path


def write_report(
    results: Sequence[LevelResult],
    out_dir: Path,
    stem: str,
    title: str,
    notes: Sequence[str] = (),
    thesis: Sequence[ThesisRow] = (),
) -> ReportPaths:
    """``<stem>_summary.csv``, ``<stem>.md`` and ``<stem>.png`` under ``out_dir``.

    ``notes`` are Markdown lines written above the table (how and where it was measured);
    ``thesis`` the reference rows set beside the measured ones (:func:`thesis_rows`, or none).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = write_summary_csv(results, thesis, out_dir / f"{stem}_summary.csv")
    markdown = out_dir / f"{stem}.md"
    body = [f"# {title}", "", *notes, "", markdown_table(results, thesis)]
    if thesis:
        body.append(
            f"Thesis: {THESIS_SOURCE}. `~`: derived, not printed there (about 1 infer/s from "
            "concurrency 2 to 6; latency = concurrency / throughput by Little's law)."
        )
    body.append("")
    markdown.write_text("\n".join(body))
    plot = out_dir / f"{stem}.png"
    report_figure(results, thesis, title).savefig(plot, dpi=110)
    return ReportPaths(summary, markdown, plot)
