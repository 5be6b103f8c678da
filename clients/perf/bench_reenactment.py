"""Benchmark face_reenactment (15 emotions, 512×384, geometric mode) side by side:
in-process vs through a real tritonserver, against the targets in docs/performance.md.

    make bench    (= python -m clients.perf.bench_reenactment [--requests 12])

The in-process side runs under the server's process environment (OpenMP and glibc malloc
settings of ``reenact.serving.runtime.SERVER_ENV``): without them set, :func:`main` replaces the
running process (``os.execve``) with a fresh one that has them, since both are read when a
process starts. Call it as a script, not from other code.

Prints the median latency in-process and through Triton (gRPC, concurrency 1), the serving
overhead, the CPU seconds one request costs in-process and the throughput that allows on this
machine's cores. For throughput at concurrency 1…N through Triton use perf_analyzer:
``python -m clients.perf.run_perf --model face_reenactment --concurrency 1:3``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

from reenact.client import ReenactClient
from reenact.image_codec import encode_image
from reenact.pipeline import local_reenactment
from reenact.serving.runtime import SERVER_ENV
from reenact.serving.server import ServerConfig, TritonServer

from .run_perf import sample_photo

TARGET_LATENCY_MS = 300.0
TARGET_OVERHEAD = 0.15


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(call, n: int) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds of this process) over n calls after one warm-up."""
    call()
    walls = []
    cpu_start = cpu_seconds()
    for _ in range(n):
        start = time.perf_counter()
        call()
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), (cpu_seconds() - cpu_start) / n


def main(argv: list[str] | None = None) -> int:
    missing = {k: v for k, v in SERVER_ENV.items() if k not in os.environ}
    if missing:  # read at process start-up: start again with the server's settings
        args = [sys.executable, "-m", "clients.perf.bench_reenactment"]
        args += sys.argv[1:] if argv is None else argv
        os.execve(sys.executable, args, {**os.environ, **missing})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12)
    args = parser.parse_args(argv)
    photo = encode_image(sample_photo(), "jpeg", quality=92)

    local = local_reenactment()
    options = local.options.parse()
    local_s, local_cpu = timed(lambda: local(photo, options), args.requests)

    config = ServerConfig(models=("face_reenactment",))
    with TritonServer(config) as server, ReenactClient(server.grpc_url) as client:
        served_s, _ = timed(lambda: client.reenact(photo), args.requests)

    cores = os.cpu_count() or 1
    overhead = served_s / local_s - 1.0
    print(f"face_reenactment, {len(options.names)} emotions, 512x384, geometric, {cores} cores")
    for key in SERVER_ENV:
        print(f"  {key}={os.environ.get(key, '(unset)')}")
    print(f"  in-process   median {local_s * 1000:7.1f} ms   CPU {local_cpu:.2f} s/request")
    print(f"  via Triton   median {served_s * 1000:7.1f} ms   (target <= {TARGET_LATENCY_MS:.0f})")
    print(f"  serving overhead    {overhead:+7.1%}        (target <= {TARGET_OVERHEAD:.0%})")
    print(f"  CPU-bound ceiling   {cores / local_cpu:7.2f} requests/s (cores / CPU s per request)")
    print(
        f"  thesis (Titan RTX)  1266 ms, 0.8 requests/s  ->  latency ratio "
        f"{1266 / (served_s * 1000):.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
