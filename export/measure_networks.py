"""The cost of the learned networks (:mod:`reenact.neural`): parameters, FLOPs, CPU latency.

Off-line tool, not used at serving time:

    python -m export.measure_networks                     # parameters and FLOPs (seconds)
    python -m export.measure_networks --latency           # and CPU latency for 15 images
    python -m export.measure_networks --out build/neural/cost.csv

For every network at both widths (``FULL`` and ``NARROW``, ``PREDICTOR_FULL`` and
``PREDICTOR_NARROW``):

- parameters: their count and their size as float32 in MB (10^6 bytes); buffers (the mapping
  network's normalisation, the predictor's statistics, spectral norm's vectors) are not counted;
- GFLOPs of one forward pass at batch 1 and the served input size (the reenactor's networks:
  the 512 x 384 canvas; the mesh predictor: its 192 x 192 crop; the discriminators at their
  training inputs: the canvas, and the mouth crop of the width), counted by
  ``torch.utils.flop_counter.FlopCounterMode``. It counts a multiply-add as 2 FLOPs and counts
  only matrix products and convolutions (biases, normalisation, activations, ``grid_sample``,
  pooling and resizing are not counted). The forward pass runs on the ``meta`` device: shapes
  only, no arithmetic, so the count takes seconds;
- with ``--latency``: the wall time of one forward pass of 15 images (batch 15, 512 x 384) of the
  narrow ``NeuralReenactor`` and ``HybridReenactor`` on the CPU under ``torch.inference_mode()``
  with 2 threads, 1 warm-up pass, the median of 3. The full-width ones are measured only when
  the whole measurement (1 + 3 passes) is estimated, from one timed batch-1 pass times 15, to
  take under ``--latency-limit`` seconds (60); otherwise the row says so. The hybrid's time
  excludes the geometric reenactor that produces its input.

Prints a table and writes it as CSV.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from reenact.morphable import N_PARAMS, SCALE_SLICE
from reenact.neural.config import (
    PREDICTOR_WIDTHS,
    WIDTHS,
    PredictorWidths,
    ReenactorWidths,
)
from reenact.neural.discriminators import PatchDiscriminator
from reenact.neural.networks import (
    IMAGE_CHANNELS,
    PNCC_CHANNELS,
    REFERENCE_SCALE,
    EnhancingNetwork,
    HybridReenactor,
    MappingNetwork,
    NeuralReenactor,
    WarpingNetwork,
)
from reenact.neural.predictor import RegressionMeshPredictor

CANVAS_HEIGHT, CANVAS_WIDTH = 512, 384
PREDICTOR_CROP = 192
LATENCY_BATCH = 15  # the service's 15 emotions
LATENCY_THREADS = 2
LATENCY_WARMUP = 1
LATENCY_REPEATS = 3
DEFAULT_LATENCY_LIMIT_S = 60.0
DEFAULT_OUT = Path("build/neural/cost.csv")
BYTES_PER_FLOAT32 = 4
LATENCY_NETWORKS = ("NeuralReenactor", "HybridReenactor")

InputMaker = Callable[[int, torch.device], tuple[Tensor, ...]]


@dataclass(frozen=True)
class NetworkCase:
    """One network at one width: how to build it and its inputs for a batch size."""

    network: str
    width: str
    input_shape: str  # human-readable, batch 1
    build: Callable[[], nn.Module]
    inputs: InputMaker


@dataclass
class CostRow:
    """One row of the table (and of the CSV)."""

    network: str
    width: str
    input_shape: str
    parameters: int
    params_mb_fp32: float
    gflops: float
    latency_15_s: float | None = None  # median wall time of one pass of 15 images
    note: str = ""


@dataclass(frozen=True)
class LatencyResult:
    median_s: float
    runs_s: tuple[float, ...]


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, inputs: tuple[Tensor, ...]) -> int:
    """FLOPs of ``module(*inputs)`` as FlopCounterMode counts them (a multiply-add = 2; only
    matrix products and convolutions). ``module`` and ``inputs`` share a device; on ``meta``
    nothing is computed."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


def _images(batch: int, device: torch.device, size: tuple[int, int], *, pncc: bool) -> Tensor:
    """(B, 3, H, W) float32: an image in [-1, 1], or a PNCC render in [0, 1]."""
    values = torch.rand(batch, IMAGE_CHANNELS, *size, device=device)
    return values if pncc else values * 2 - 1


def _params(batch: int, device: torch.device) -> Tensor:
    """(B, 162) float32 3DMM parameters with a typical canvas scale (pixels per cm)."""
    params = torch.rand(batch, N_PARAMS, device=device)
    params[:, SCALE_SLICE] = REFERENCE_SCALE
    return params


def _canvas_inputs(*kinds: str, latent: int = 0) -> InputMaker:
    """Inputs at the canvas size, one per kind: "image", "pncc", "params", "latent"."""

    def make(batch: int, device: torch.device) -> tuple[Tensor, ...]:
        size = (CANVAS_HEIGHT, CANVAS_WIDTH)
        made = {
            "image": lambda: _images(batch, device, size, pncc=False),
            "pncc": lambda: _images(batch, device, size, pncc=True),
            "params": lambda: _params(batch, device),
            "latent": lambda: torch.randn(batch, latent, device=device),
        }
        return tuple(made[kind]() for kind in kinds)

    return make


def _crop_inputs(side: int) -> InputMaker:
    """A square image and its PNCC condition (B, 3, side, side), the mouth discriminator's."""

    def make(batch: int, device: torch.device) -> tuple[Tensor, ...]:
        return (
            _images(batch, device, (side, side), pncc=False),
            _images(batch, device, (side, side), pncc=True),
        )

    return make


def _predictor_inputs(batch: int, device: torch.device) -> tuple[Tensor, ...]:
    """(B, 192, 192, 3) uint8 landmark crops."""
    shape = (batch, PREDICTOR_CROP, PREDICTOR_CROP, 3)
    return (torch.randint(0, 256, shape, dtype=torch.uint8, device=device),)


def reenactor_cases(width: str, widths: ReenactorWidths) -> list[NetworkCase]:
    """The reenactor's networks, its two assemblies and its discriminators at one width."""
    canvas = f"{CANVAS_HEIGHT}x{CANVAS_WIDTH}"
    mouth = widths.mouth_crop
    size = (CANVAS_HEIGHT, CANVAS_WIDTH)
    return [
        NetworkCase(
            "WarpingNetwork",
            width,
            f"3 x (3, {canvas})",
            lambda: WarpingNetwork(widths),
            _canvas_inputs("image", "pncc", "pncc"),
        ),
        NetworkCase(
            "MappingNetwork",
            width,
            f"({N_PARAMS},)",
            lambda: MappingNetwork(widths, *size),
            _canvas_inputs("params"),
        ),
        NetworkCase(
            "EnhancingNetwork",
            width,
            f"2 x (3, {canvas}), ({widths.latent},)",
            lambda: EnhancingNetwork(widths),
            _canvas_inputs("image", "pncc", "latent", latent=widths.latent),
        ),
        NetworkCase(
            "NeuralReenactor",
            width,
            f"3 x (3, {canvas}), ({N_PARAMS},)",
            lambda: NeuralReenactor(widths, *size),
            _canvas_inputs("image", "pncc", "pncc", "params"),
        ),
        NetworkCase(
            "HybridReenactor",
            width,
            f"2 x (3, {canvas}), ({N_PARAMS},)",
            lambda: HybridReenactor(widths, *size),
            _canvas_inputs("image", "pncc", "params"),
        ),
        NetworkCase(
            "PatchDiscriminator (warped, enhanced: each)",
            width,
            f"2 x (3, {canvas})",
            lambda: PatchDiscriminator(widths.disc_channels, PNCC_CHANNELS),
            _canvas_inputs("image", "pncc"),
        ),
        NetworkCase(
            "PatchDiscriminator (mouth)",
            width,
            f"2 x (3, {mouth}x{mouth})",
            lambda: PatchDiscriminator(widths.mouth_disc_channels, PNCC_CHANNELS),
            _crop_inputs(mouth),
        ),
    ]


def predictor_case(width: str, widths: PredictorWidths) -> NetworkCase:
    return NetworkCase(
        "RegressionMeshPredictor",
        width,
        f"({PREDICTOR_CROP}x{PREDICTOR_CROP}, 3) uint8",
        lambda: RegressionMeshPredictor(widths, PREDICTOR_CROP),
        _predictor_inputs,
    )


def all_cases() -> list[NetworkCase]:
    """Every network, full width then narrow."""
    cases: list[NetworkCase] = []
    for width in ("full", "narrow"):
        cases += reenactor_cases(width, WIDTHS[width])
        cases.append(predictor_case(width, PREDICTOR_WIDTHS[width]))
    return cases


def measure_cost(case: NetworkCase) -> CostRow:
    """Parameters and FLOPs of one case (batch 1, on the meta device)."""
    torch.manual_seed(0)
    module = case.build()
    parameters = count_parameters(module)
    meta = torch.device("meta")
    flops = count_flops(module.to(meta), case.inputs(1, meta))
    return CostRow(
        network=case.network,
        width=case.width,
        input_shape=case.input_shape,
        parameters=parameters,
        params_mb_fp32=parameters * BYTES_PER_FLOAT32 / 1e6,
        gflops=flops / 1e9,
    )


def measure_latency(
    module: nn.Module,
    inputs: tuple[Tensor, ...],
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
) -> LatencyResult:
    """Wall time of ``module(*inputs)`` under ``torch.inference_mode()``: ``warmup`` untimed
    passes, then the median of ``repeats`` timed ones (seconds)."""
    module.eval()
    runs: list[float] = []
    with torch.inference_mode():
        for k in range(warmup + repeats):
            start = time.perf_counter()
            module(*inputs)
            if k >= warmup:
                runs.append(time.perf_counter() - start)
    return LatencyResult(statistics.median(runs), tuple(runs))


def add_latency(row: CostRow, case: NetworkCase, limit_s: float | None) -> None:
    """Fills ``row.latency_15_s`` (batch 15 on the CPU) and ``row.note``. With ``limit_s``, one
    batch-1 pass is timed first; when its time x 15 images x (warm-up + timed passes) exceeds
    ``limit_s``, the batch-15 measurement is skipped and ``row.note`` says why."""
    torch.manual_seed(0)
    module = case.build().eval()
    cpu = torch.device("cpu")
    if limit_s is not None:
        single = measure_latency(module, case.inputs(1, cpu), warmup=0, repeats=1).median_s
        estimate = single * LATENCY_BATCH * (LATENCY_WARMUP + LATENCY_REPEATS)
        if estimate > limit_s:
            row.note = (
                f"latency not measured: one batch-1 pass took {single:.1f} s, so "
                f"{LATENCY_WARMUP} + {LATENCY_REPEATS} passes of {LATENCY_BATCH} images "
                f"≈ {estimate:.0f} s > {limit_s:.0f} s"
            )
            return
    result = measure_latency(module, case.inputs(LATENCY_BATCH, cpu))
    row.latency_15_s = result.median_s
    runs = ", ".join(f"{t:.2f}" for t in result.runs_s)
    row.note = f"batch {LATENCY_BATCH}, {torch.get_num_threads()} threads; runs {runs} s"


def measure_all(
    latency: bool = False, latency_limit_s: float = DEFAULT_LATENCY_LIMIT_S
) -> list[CostRow]:
    """Every network's row; with ``latency``, the reenactors' CPU latency (narrow always, full
    width within ``latency_limit_s``)."""
    rows: list[CostRow] = []
    previous_threads = torch.get_num_threads()
    try:
        for case in all_cases():
            row = measure_cost(case)
            if latency and case.network in LATENCY_NETWORKS:
                torch.set_num_threads(LATENCY_THREADS)
                add_latency(row, case, None if case.width == "narrow" else latency_limit_s)
                torch.set_num_threads(previous_threads)
            rows.append(row)
    finally:
        torch.set_num_threads(previous_threads)
    return rows


def _gflops_text(gflops: float) -> str:
    """Two decimals, or two significant digits below 0.01 (the mapping network)."""
    return f"{gflops:.2f}" if gflops >= 0.01 else f"{gflops:.1e}"


def format_table(rows: list[CostRow]) -> str:
    """A fixed-width text table of the rows."""
    header = (
        f"{'network':<44} {'width':<6} {'parameters':>12} {'MB fp32':>8} {'GFLOPs':>9} "
        f"{'15 images (s)':>13}  input (batch 1) / note"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        latency = "" if row.latency_15_s is None else f"{row.latency_15_s:.2f}"
        lines.append(
            f"{row.network:<44} {row.width:<6} {row.parameters:>12,} {row.params_mb_fp32:>8.2f} "
            f"{_gflops_text(row.gflops):>9} {latency:>13}  {row.input_shape}"
            + (f"; {row.note}" if row.note else "")
        )
    return "\n".join(lines)


def write_csv(rows: list[CostRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(CostRow)])
        writer.writeheader()
        for row in rows:
            values = asdict(row)
            values["params_mb_fp32"] = f"{row.params_mb_fp32:.3f}"
            values["gflops"] = f"{row.gflops:.6g}"
            values["latency_15_s"] = "" if row.latency_15_s is None else f"{row.latency_15_s:.3f}"
            writer.writerow(values)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", action="store_true", help="also time the reenactors on CPU")
    parser.add_argument(
        "--latency-limit",
        type=float,
        default=DEFAULT_LATENCY_LIMIT_S,
        help="seconds a full-width latency measurement may take (estimated first)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rows = measure_all(args.latency, args.latency_limit)
    print(format_table(rows))
    print(
        "FLOPs: torch.utils.flop_counter.FlopCounterMode, one forward pass at batch 1; a "
        "multiply-add counts 2; only matrix products and convolutions are counted."
    )
    write_csv(rows, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
