"""The perf report: perf_analyzer 2.51.0's CSV parsed, merged, tabulated and plotted."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from clients.perf.report import (
    LevelResult,
    PerfRow,
    markdown_table,
    merge_perf_analyzer_csvs,
    read_perf_analyzer_csv,
    report_figure,
    thesis_rows,
    write_report,
    write_summary_csv,
)
from clients.perf.run_perf import PerfConfig, parse_levels, perf_command

# The header perf_analyzer 2.51.0 writes with -f (copied from a run of the real binary here).
PERF_ANALYZER_HEADER = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
    "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency"
)
# --verbose-csv appends these two.
VERBOSE_EXTRA = ",request/response,response wait"

# Two levels, written out of order; latencies in microseconds.
ROW_C2 = "2,3.47084,19,25081,2845,36,530959,1098,6,514368,794026,855237,987381"
ROW_C1 = "1,6.12,20,6986,30,43,150522,1201,7,160400,171000,183600,201000"


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def perf_row(concurrency: int, throughput: float, p50_ms: float, p95_ms: float) -> PerfRow:
    return PerfRow(concurrency, throughput, p50_ms, p50_ms, p95_ms, p95_ms, p50_ms)


def test_reads_perf_analyzer_csv_in_milliseconds_sorted_by_concurrency(tmp_path):
    rows = read_perf_analyzer_csv(
        write_csv(tmp_path / "pa.csv", PERF_ANALYZER_HEADER, ROW_C2, ROW_C1)
    )

    assert [row.concurrency for row in rows] == [1, 2]
    first, second = rows
    assert first.throughput_infer_per_s == pytest.approx(6.12)
    assert first.latency_p50_ms == pytest.approx(160.4)
    assert first.latency_p95_ms == pytest.approx(183.6)
    assert first.server_compute_infer_ms == pytest.approx(150.522)
    assert second.latency_p90_ms == pytest.approx(794.026)
    assert second.latency_p99_ms == pytest.approx(987.381)
    assert second.images_per_s == pytest.approx(3.47084 * 15)


def test_verbose_csv_columns_are_ignored(tmp_path):
    path = write_csv(
        tmp_path / "v.csv", PERF_ANALYZER_HEADER + VERBOSE_EXTRA, ROW_C1 + ",27,308604"
    )

    (row,) = read_perf_analyzer_csv(path)
    assert row.latency_p50_ms == pytest.approx(160.4)


def test_a_csv_without_latency_percentiles_is_refused(tmp_path):
    header = "Concurrency,Inferences/Second,Client Send"
    path = write_csv(tmp_path / "bad.csv", header, "1,2.0,10")

    with pytest.raises(ValueError, match="p50 latency"):
        read_perf_analyzer_csv(path)


def test_merge_keeps_one_header_and_every_row(tmp_path):
    first = write_csv(tmp_path / "c1.csv", PERF_ANALYZER_HEADER, ROW_C1)
    second = write_csv(tmp_path / "c2.csv", PERF_ANALYZER_HEADER, ROW_C2)

    merged = merge_perf_analyzer_csvs([first, second], tmp_path / "all.csv")

    lines = merged.read_text().splitlines()
    assert lines == [PERF_ANALYZER_HEADER, ROW_C1, ROW_C2]
    assert [row.concurrency for row in read_perf_analyzer_csv(merged)] == [1, 2]


def test_merge_refuses_files_of_different_formats(tmp_path):
    plain = write_csv(tmp_path / "c1.csv", PERF_ANALYZER_HEADER, ROW_C1)
    verbose = write_csv(tmp_path / "c2.csv", PERF_ANALYZER_HEADER + VERBOSE_EXTRA, ROW_C2)

    with pytest.raises(ValueError, match="header"):
        merge_perf_analyzer_csvs([plain, verbose], tmp_path / "all.csv")


def test_thesis_rows_state_concurrency_one_and_derive_the_rest_by_littles_law():
    rows = {row.concurrency: row for row in thesis_rows()}

    assert sorted(rows) == [1, 2, 3, 4, 5, 6]
    assert (rows[1].throughput_infer_per_s, rows[1].latency_ms, rows[1].derived) == (
        0.8,
        1266.0,
        False,
    )
    # about 1 infer/s flat; 4 requests in flight at 1 request/s wait 4 s each
    assert rows[4].throughput_infer_per_s == pytest.approx(1.0)
    assert rows[4].latency_ms == pytest.approx(4000.0)
    assert all(rows[level].derived for level in range(2, 7))


def test_markdown_table_puts_measured_and_thesis_figures_side_by_side(tmp_path):
    rows = read_perf_analyzer_csv(
        write_csv(tmp_path / "pa.csv", PERF_ANALYZER_HEADER, ROW_C1, ROW_C2)
    )
    results = [LevelResult(row.concurrency, row, 25.0, 1.0) for row in rows]
    results.append(LevelResult(3, None, None, 1.0))  # unstable level: no figures

    lines = markdown_table(results, thesis_rows()).splitlines()

    assert lines[0].startswith("| concurrency | throughput (infer/s) | latency p50 (ms)")
    # 160400 µs → 160 ms, 183600 µs → 184 ms; 514368 µs → 514 ms, 855237 µs → 855 ms
    assert lines[2] == "| 1 | 6.12 | 160 | 184 | 0.80 | 1266 |"
    assert lines[3] == "| 2 | 3.47 | 514 | 855 | ~1.00 | ~2000 |"
    assert lines[4] == "| 3 | — | — | — | ~1.00 | ~3000 |"
    assert lines[7] == "| 6 | — | — | — | ~1.00 | ~6000 |"


def test_markdown_table_without_thesis_has_no_thesis_columns():
    lines = markdown_table(
        [LevelResult(1, perf_row(1, 25.7, 36.2, 41.0), 25.0, 1.0)], ()
    ).splitlines()

    assert (
        lines[0] == "| concurrency | throughput (infer/s) | latency p50 (ms) | latency p95 (ms) |"
    )
    assert lines[2] == "| 1 | 25.70 | 36 | 41 |"


def test_summary_csv_holds_measured_and_thesis_figures(tmp_path):
    results = [
        LevelResult(1, perf_row(1, 6.0, 160.0, 190.0), 25.0, 3.5),
        LevelResult(2, None, None, 4.0),
    ]

    path = write_summary_csv(results, thesis_rows(), tmp_path / "summary.csv")

    with path.open(newline="") as handle:
        records = {int(record["concurrency"]): record for record in csv.DictReader(handle)}
    assert sorted(records) == [1, 2, 3, 4, 5, 6]
    assert float(records[1]["throughput_infer_per_s"]) == pytest.approx(6.0)
    assert float(records[1]["images_per_s"]) == pytest.approx(90.0)  # 15 images a request
    assert float(records[1]["latency_p95_ms"]) == pytest.approx(190.0)
    assert float(records[1]["stability_percent"]) == pytest.approx(25.0)
    assert float(records[1]["thesis_latency_ms"]) == pytest.approx(1266.0)
    assert records[2]["throughput_infer_per_s"] == ""
    assert float(records[2]["load_average_1min"]) == pytest.approx(4.0)
    assert float(records[5]["thesis_latency_ms"]) == pytest.approx(5000.0)
    assert records[5]["thesis_row_derived"] == "yes"


def test_figure_draws_measured_values_and_thesis_values():
    results = [
        LevelResult(1, perf_row(1, 6.0, 160.0, 190.0), 25.0, 1.0),
        LevelResult(2, perf_row(2, 7.5, 260.0, 300.0), 25.0, 1.0),
    ]

    figure = report_figure(results, thesis_rows(), "test")

    throughput_axes, latency_axes = figure.axes
    measured_throughput, thesis_throughput, thesis_stated = throughput_axes.lines
    assert list(measured_throughput.get_xdata()) == [1, 2]
    assert list(measured_throughput.get_ydata()) == [6.0, 7.5]
    assert list(thesis_throughput.get_ydata()) == pytest.approx([0.8, 1, 1, 1, 1, 1])
    assert list(thesis_stated.get_xdata()) == [1]  # only concurrency 1 is stated
    p50, p95, thesis_latency, stated_latency = latency_axes.lines
    assert list(p50.get_ydata()) == [160.0, 260.0]
    assert list(p95.get_ydata()) == [190.0, 300.0]
    assert list(thesis_latency.get_ydata()) == pytest.approx([1266, 2000, 3000, 4000, 5000, 6000])
    assert list(stated_latency.get_ydata()) == pytest.approx([1266])


def test_figure_without_thesis_draws_only_measured_lines():
    results = [LevelResult(1, perf_row(1, 25.7, 36.0, 41.0), 25.0, 1.0)]

    throughput_axes, latency_axes = report_figure(results, (), "test").axes

    assert len(throughput_axes.lines) == 1
    assert len(latency_axes.lines) == 2


def test_write_report_writes_table_summary_and_png(tmp_path):
    results = [LevelResult(1, perf_row(1, 6.0, 160.0, 190.0), 25.0, 1.0)]

    paths = write_report(results, tmp_path, "m", "title", ["measured somewhere"], thesis_rows())

    markdown = paths.markdown.read_text()
    assert "measured somewhere" in markdown
    assert "| 1 | 6.00 | 160 | 190 | 0.80 | 1266 |" in markdown
    assert "Table 3.5" in markdown
    assert paths.summary_csv.exists()
    with Image.open(paths.plot) as image:
        assert image.format == "PNG"
        assert image.width > image.height  # two panels side by side


def test_perf_command_measures_one_level_into_a_csv(tmp_path):
    config = PerfConfig(window_ms=6000)
    command = perf_command(
        Path("/bin/pa"),
        config,
        "127.0.0.1:8001",
        tmp_path / "in.json",
        4,
        25.0,
        6,
        tmp_path / "c4.csv",
    )

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--concurrency-range") == "4:4"
    assert value("-f") == str(tmp_path / "c4.csv")
    assert value("--measurement-interval") == "6000"
    assert value("--stability-percentage") == "25"
    assert value("--max-trials") == "6"
    assert value("-i") == "grpc"
    assert value("-m") == "face_reenactment"


@pytest.mark.parametrize(
    ("text", "levels"), [("1:6", (1, 2, 3, 4, 5, 6)), ("2:6:2", (2, 4, 6)), ("3", (3,))]
)
def test_parse_levels_includes_the_end(text, levels):
    assert parse_levels(text) == levels
