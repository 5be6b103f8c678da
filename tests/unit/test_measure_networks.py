"""export.measure_networks: parameter and FLOP counts checked against hand-computed values,
narrow widths smaller than full ones, the latency loop and the CSV."""

from __future__ import annotations

import csv
import itertools

import pytest
import torch
from torch import nn

from export.measure_networks import (
    CostRow,
    NetworkCase,
    add_latency,
    count_flops,
    count_parameters,
    measure_all,
    measure_cost,
    measure_latency,
    reenactor_cases,
    write_csv,
)
from reenact.neural.config import FULL, NARROW


@pytest.fixture(scope="module")
def table() -> list[CostRow]:
    return measure_all(latency=False)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_linear_counts_by_hand(device):
    a, b = 37, 11
    layer = nn.Linear(a, b).to(device)
    assert count_parameters(layer) == a * b + b  # weight + bias
    # one multiply-add per weight for one input row; FlopCounterMode counts it as 2 FLOPs
    assert count_flops(layer, (torch.zeros(1, a, device=device),)) == 2 * a * b


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_conv2d_counts_by_hand(device):
    cin, cout, k, h, w = 3, 8, 5, 20, 12
    conv = nn.Conv2d(cin, cout, k, padding=k // 2).to(device)  # "same" padding: H x W out
    assert count_parameters(conv) == cin * cout * k * k + cout
    flops = count_flops(conv, (torch.zeros(1, cin, h, w, device=device),))
    assert flops == 2 * cin * cout * k * k * h * w


def test_buffers_are_not_parameters():
    norm = nn.BatchNorm2d(5)  # weight and bias are parameters; running stats are buffers
    assert count_parameters(norm) == 2 * 5


@pytest.mark.parametrize(
    ("widths", "layer_sizes"),
    [
        (FULL, [162, 256, 256, 256, 128]),  # 4 layers, 256 hidden, latent 128
        (NARROW, [162, 64, 64, 32]),  # 3 layers, 64 hidden, latent 32
    ],
)
def test_mapping_network_counts_by_hand(widths, layer_sizes):
    case = next(c for c in reenactor_cases("w", widths) if c.network == "MappingNetwork")
    row = measure_cost(case)
    pairs = list(itertools.pairwise(layer_sizes))
    assert row.parameters == sum(a * b + b for a, b in pairs)
    # an integer count divided by 1e9 and multiplied back: off by far less than one FLOP
    assert row.gflops * 1e9 == pytest.approx(2 * sum(a * b for a, b in pairs), abs=0.5)
    assert row.params_mb_fp32 == pytest.approx(row.parameters * 4 / 1e6)


def test_narrow_rows_are_smaller_than_full_rows(table):
    full = {row.network: row for row in table if row.width == "full"}
    narrow = {row.network: row for row in table if row.width == "narrow"}
    assert set(full) == set(narrow)
    assert len(full) == 8  # 3 networks, 2 assemblies, 2 discriminators, the mesh predictor
    for name, row in narrow.items():
        assert row.parameters < full[name].parameters, name
        assert row.gflops < full[name].gflops, name


def test_assemblies_are_the_sum_of_their_networks(table):
    rows = {row.network: row for row in table if row.width == "full"}
    parts = ["WarpingNetwork", "MappingNetwork", "EnhancingNetwork"]
    assert rows["NeuralReenactor"].parameters == sum(rows[p].parameters for p in parts)
    assert rows["HybridReenactor"].parameters == sum(rows[p].parameters for p in parts[1:])
    # the same convolutions and matrix products run inside the assembly: exact sums of integer
    # counts, up to the float division by 1e9
    total = sum(rows[p].gflops for p in parts)
    assert rows["NeuralReenactor"].gflops == pytest.approx(total, rel=1e-12)


class _CallRecorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(torch.is_inference_mode_enabled())
        return x + 1


def test_measure_latency_warms_up_then_takes_the_median():
    module = _CallRecorder()
    result = measure_latency(module, (torch.zeros(2),), warmup=1, repeats=3)
    assert module.calls == [True] * 4  # 1 warm-up + 3 timed, all under inference_mode
    assert len(result.runs_s) == 3
    assert result.median_s == sorted(result.runs_s)[1]


def _tiny_case() -> NetworkCase:
    return NetworkCase(
        "tiny",
        "narrow",
        "(4,)",
        lambda: nn.Linear(4, 2),
        lambda b, d: (torch.zeros(b, 4, device=d),),
    )


def test_add_latency_measures_within_the_limit_and_skips_beyond_it():
    row = CostRow("tiny", "narrow", "(4,)", 10, 4e-5, 1.6e-8)
    add_latency(row, _tiny_case(), limit_s=None)  # no limit: always measured
    assert row.latency_15_s is not None and row.latency_15_s > 0
    skipped = CostRow("tiny", "full", "(4,)", 10, 4e-5, 1.6e-8)
    add_latency(skipped, _tiny_case(), limit_s=0.0)  # any estimate exceeds 0 s
    assert skipped.latency_15_s is None
    assert skipped.note.startswith("latency not measured")


def test_csv_has_one_row_per_network(table, tmp_path):
    path = tmp_path / "sub" / "cost.csv"
    write_csv(table, path)
    with path.open(newline="") as f:
        read = list(csv.DictReader(f))
    assert [(r["network"], r["width"]) for r in read] == [(r.network, r.width) for r in table]
    assert [int(r["parameters"]) for r in read] == [r.parameters for r in table]
    assert all(r["latency_15_s"] == "" for r in read)  # not measured without --latency
