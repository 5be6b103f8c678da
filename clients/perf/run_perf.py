"""Benchmark a model with the real perf_analyzer 2.51.0 and report it beside the thesis.

    python -m clients.perf.run_perf [--model face_reenactment] [--concurrency 1:6]

Writes an input-data file holding a real photo (the scikit-image astronaut as JPEG; no
``EMOTIONS`` input, so ``face_reenactment`` makes its 15 default emotions), starts a server for the
model unless ``--url`` points at a running one, sends two warm-up requests, then runs perf_analyzer
over gRPC once per concurrency level (an unstable level then costs only its own figures). Under
``build/perf/`` (``--out``) it writes, for model M:

- ``M_perf_analyzer.csv``: perf_analyzer's own ``-f`` CSV, one row per level (latencies in µs);
- ``M_summary.csv``: throughput, images/s, latency percentiles in ms, the stability threshold
  met, the load average, and the thesis's figures per level;
- ``M.md``: the Markdown table (the thesis's format) with the thesis's rows beside it;
- ``M.png``: throughput and latency against concurrency, the thesis's values drawn beside them.

The input file can be reused by hand::

    .venv/share/reenact-triton/bin/perf_analyzer -m face_preprocess \\
        --input-data build/perf/face_preprocess.json --concurrency-range 1:2
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import serialize_byte_tensor

from reenact.assets import build_dir
from reenact.serving import runtime
from reenact.serving.server import ServerConfig, TritonServer

from .report import (
    LevelResult,
    ReportPaths,
    merge_perf_analyzer_csvs,
    read_perf_analyzer_csv,
    thesis_rows,
    write_report,
)

WARM_UP_REQUESTS = 2  # the first requests of a fresh server pay TorchScript's profiling runs


@dataclass(frozen=True)
class PerfConfig:
    """How perf_analyzer measures each concurrency level.

    Chosen for a 2-core CPU shared with other jobs, where ``face_reenactment`` (15 emotions) runs
    2 to 7 requests/s and back-to-back runs differ by 15 % or more:

    - ``window_ms`` 6000: at 2 infer/s (concurrency 1 on a busy machine) a window still holds
      12 requests, enough for a p50 whose sampling error (about 5 %) sits well inside the
      stability threshold; longer windows lengthen every level by 3 windows or more.
    - ``stability_percent`` 25: perf_analyzer accepts a level when the max/min of the last 3
      windows' throughput and p50 latency are within this; perf_analyzer's default of 10 % fails
      on this machine whenever another job starts or stops during a level.
    - ``max_trials`` 6: up to 36 s per level; the 3 oldest windows may be lost to a load change.
    - ``percentile`` 50: stabilise on p50; p95 of 12 to 40 requests rests on one or two of them.
    - a level still unstable is measured once more with ``fallback_stability_percent`` 50 and
      ``fallback_max_trials`` 4 (the threshold met is recorded), rather than left out.

    A level thus takes 18 s at best and 60 s at worst: 2 to 6 minutes for concurrency 1 to 6.
    """

    model: str = "face_reenactment"
    concurrency_levels: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    window_ms: int = 6000
    stability_percent: float = 25.0
    max_trials: int = 6
    fallback_stability_percent: float = 50.0
    fallback_max_trials: int = 4
    percentile: int = 50
    out_dir: Path = field(default_factory=lambda: build_dir() / "perf")


def sample_photo() -> np.ndarray:
    """(512, 512, 3) uint8: the scikit-image astronaut (public domain, NASA)."""
    import skimage.data

    return skimage.data.astronaut()


def encode_jpeg(photo: np.ndarray) -> bytes:
    """photo: (H, W, 3) uint8 RGB → JPEG bytes at quality 92."""
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def write_input_data(path: Path, photo: np.ndarray, input_name: str = "IMAGE") -> Path:
    """A perf_analyzer --input-data JSON with one JPEG (photo: (H, W, 3) uint8) in a BYTES
    input."""
    # perf_analyzer reads a BYTES tensor given as b64 in Triton's serialised form:
    # each element prefixed by its little-endian uint32 length.
    encoded = np.array([encode_jpeg(photo)], dtype=object)
    serialized = serialize_byte_tensor(encoded).item()
    entry = {input_name: {"b64": base64.b64encode(serialized).decode(), "shape": [1]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": [entry]}))
    return path


def perf_command(
    perf_bin: Path,
    config: PerfConfig,
    url: str,
    data: Path,
    concurrency: int,
    stability_percent: float,
    max_trials: int,
    csv_path: Path,
) -> list[str]:
    """The perf_analyzer command line measuring one concurrency level into ``csv_path``."""
    return [
        str(perf_bin),
        *("-m", config.model, "-u", url, "-i", "grpc"),
        *("--input-data", str(data)),
        *("--concurrency-range", f"{concurrency}:{concurrency}"),
        *("--measurement-interval", str(config.window_ms)),
        *("--stability-percentage", f"{stability_percent:g}"),
        *("--max-trials", str(max_trials)),
        *("--percentile", str(config.percentile)),
        *("-f", str(csv_path)),
    ]


def warm_up(url: str, model: str, jpeg: bytes, requests: int = WARM_UP_REQUESTS) -> None:
    """Send ``requests`` inferences of ``jpeg`` as ``IMAGE`` and wait for each."""
    with grpcclient.InferenceServerClient(url) as client:
        image = grpcclient.InferInput("IMAGE", [1], "BYTES")
        image.set_data_from_numpy(np.array([jpeg], dtype=object))
        for _ in range(requests):
            client.infer(model, [image], client_timeout=120.0)


def measure_level(
    perf_bin: Path, config: PerfConfig, url: str, data: Path, concurrency: int, raw_dir: Path
) -> LevelResult:
    """One concurrency level: perf_analyzer at the stability threshold, then the fallback."""
    csv_path = raw_dir / f"c{concurrency}.csv"
    attempts = (
        (config.stability_percent, config.max_trials),
        (config.fallback_stability_percent, config.fallback_max_trials),
    )
    for stability_percent, max_trials in attempts:
        csv_path.unlink(missing_ok=True)
        command = perf_command(
            perf_bin, config, url, data, concurrency, stability_percent, max_trials, csv_path
        )
        print("$", " ".join(command), flush=True)
        completed = subprocess.run(command, check=False)
        if completed.returncode == 0:
            (row,) = read_perf_analyzer_csv(csv_path)
            return LevelResult(concurrency, row, stability_percent, os.getloadavg()[0])
        print(f"concurrency {concurrency}: no stable measurement within {stability_percent:g} %")
    return LevelResult(concurrency, None, None, os.getloadavg()[0])


def parse_levels(text: str) -> tuple[int, ...]:
    """``"1:6"`` or ``"1:6:2"`` (perf_analyzer's start:end:step) → the levels, end included."""
    parts = [int(part) for part in text.split(":")]
    if len(parts) == 1:
        parts.append(parts[0])
    start, end, step = (*parts, 1) if len(parts) == 2 else parts
    if not 1 <= start <= end or step < 1:
        raise argparse.ArgumentTypeError(f"bad concurrency range {text!r}")
    return tuple(range(start, end + 1, step))


def run_levels(config: PerfConfig, url: str | None) -> list[LevelResult]:
    """Every level of ``config`` against ``url`` or a fresh local server."""
    rt = runtime.prepare()
    photo = sample_photo()
    data = write_input_data(config.out_dir / f"{config.model}.json", photo)
    raw_dir = config.out_dir / f"{config.model}_levels"
    raw_dir.mkdir(parents=True, exist_ok=True)  # perf_analyzer -f does not create folders
    with contextlib.ExitStack() as stack:
        if url is None:
            server = stack.enter_context(TritonServer(ServerConfig(models=(config.model,))))
            url = server.grpc_url
        warm_up(url, config.model, encode_jpeg(photo))
        results = [
            measure_level(rt.perf_analyzer, config, url, data, level, raw_dir)
            for level in config.concurrency_levels
        ]
    merge_perf_analyzer_csvs(
        [raw_dir / f"c{r.concurrency}.csv" for r in results if r.row is not None],
        config.out_dir / f"{config.model}_perf_analyzer.csv",
    )
    return results


def report_notes(config: PerfConfig, elapsed_s: float, load_before: float) -> list[str]:
    """Markdown lines saying how and where the table was measured."""
    load_after = os.getloadavg()[0]
    return [
        f"`{config.model}`, one astronaut JPEG per request (15 emotions for face_reenactment), "
        f"perf_analyzer 2.51.0 over gRPC against a local tritonserver, "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (the local runtime is CPU "
        f"only); 1-minute load average {load_before:.1f} before and {load_after:.1f} after the "
        f"run (other jobs share the machine). Windows of {config.window_ms} ms, "
        f"stable within {config.stability_percent:g} % over 3 windows "
        f"(fallback {config.fallback_stability_percent:g} %), stabilised on p50. "
        f"Run time {elapsed_s:.0f} s.",
    ]


def print_paths(config: PerfConfig, paths: ReportPaths) -> None:
    print(f"perf_analyzer CSV  {config.out_dir / f'{config.model}_perf_analyzer.csv'}")
    print(f"summary CSV        {paths.summary_csv}")
    print(f"Markdown table     {paths.markdown}")
    print(f"plot               {paths.plot}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="face_reenactment", help="any model taking IMAGE")
    parser.add_argument(
        "--concurrency", type=parse_levels, default="1:6", help="levels, start:end[:step]"
    )
    parser.add_argument("--window-ms", type=int, default=PerfConfig.window_ms)
    parser.add_argument("--url", default=None, help="gRPC URL of a running server")
    parser.add_argument("--out", type=Path, default=None, help="report folder (build/perf)")
    args = parser.parse_args(argv)
    config = PerfConfig(
        model=args.model,
        concurrency_levels=args.concurrency,
        window_ms=args.window_ms,
        out_dir=args.out if args.out is not None else build_dir() / "perf",
    )

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    results = run_levels(config, args.url)
    elapsed_s = time.monotonic() - started
    levels = config.concurrency_levels
    title = (
        f"{config.model}: perf_analyzer over gRPC, concurrency {min(levels)} to {max(levels)}, "
        f"{os.cpu_count()} CPU cores"
    )
    # the thesis's table is for face_reenactment with 15 emotions; other models have none
    thesis = thesis_rows() if config.model == "face_reenactment" else ()
    notes = report_notes(config, elapsed_s, load_before)
    paths = write_report(results, config.out_dir, config.model, title, notes, thesis)
    print()
    print(paths.markdown.read_text())
    print_paths(config, paths)
    print(f"run time {elapsed_s:.0f} s")
    return 0 if all(result.row is not None for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
