"""Resident memory of a local Triton server: tritonserver and every python-backend stub.

    python -m clients.perf.memory [--idle 10] [--models face_mesh ...]

Starts a server (every model unless ``--models``), waits ``--idle`` seconds, prints each process's
RSS, PSS and anonymous memory from ``/proc/<pid>/smaps_rollup``, then sends one
``face_reenactment`` and one ``face_mesh`` request (the first requests of a stub allocate its
working buffers and TorchScript's profiled graphs), waits idle again and prints the table once
more. RSS counts every page a process maps, so libraries shared by the stubs (libtorch,
OpenCV, NumPy) count once per stub; PSS divides each shared page between the processes mapping
it, so the PSS total is what the server really holds; anonymous memory is each process's own heap.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from reenact.serving.server import ServerConfig, TritonServer
from reenact.serving.supervisor import PROC_DIR, list_stubs

log = logging.getLogger(__name__)

SERVER_BINARY = "tritonserver"
KIB_PER_MIB = 1024


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory in KiB (``/proc/<pid>/smaps_rollup``)."""

    pid: int
    name: str  # "tritonserver", "supervisor" or a stub's instance, e.g. reenactor_0_0
    rss_kib: int
    pss_kib: int
    anon_kib: int  # anonymous pages (heap, stacks): the process's own, not shared libraries


def read_smaps_rollup(pid: int, proc_dir: Path = PROC_DIR) -> dict[str, int] | None:
    """The ``Name: value kB`` fields of ``/proc/<pid>/smaps_rollup`` in KiB; None if it exited."""
    try:
        text = (proc_dir / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def process_memory(pid: int, name: str, proc_dir: Path = PROC_DIR) -> ProcessMemory | None:
    """``pid``'s RSS, PSS and anonymous memory, or None when it has exited."""
    fields = read_smaps_rollup(pid, proc_dir)
    if fields is None:
        return None
    return ProcessMemory(
        pid, name, fields.get("Rss", 0), fields.get("Pss", 0), fields.get("Anonymous", 0)
    )


def server_pid(supervisor_pid: int, proc_dir: Path = PROC_DIR) -> int | None:
    """The tritonserver process whose parent is ``supervisor_pid`` (None while restarting)."""
    for proc in proc_dir.iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat.rpartition(")")[2].split()
        if comm == SERVER_BINARY and int(fields[1]) == supervisor_pid and fields[0] != "Z":
            return int(proc.name)
    return None


def server_memory(server: TritonServer) -> list[ProcessMemory]:
    """tritonserver and its live stubs (sorted by instance name); empty when none runs."""
    assert server.pid is not None, "server not started"
    triton = server_pid(server.pid) if server.config.supervise else server.pid
    if triton is None:
        return []
    found = [process_memory(triton, SERVER_BINARY)]
    stubs = sorted(list_stubs(triton), key=lambda s: (s.instance, s.start_ticks))
    found += [process_memory(stub.pid, stub.instance) for stub in stubs]
    return [m for m in found if m is not None]


def total_rss_mib(processes: Sequence[ProcessMemory]) -> float:
    return sum(p.rss_kib for p in processes) / KIB_PER_MIB


def format_table(processes: Sequence[ProcessMemory], supervisor: ProcessMemory | None) -> str:
    """One line per process in MiB, then the total of tritonserver and its stubs."""
    lines = [f"{'process':<24} {'pid':>7} {'RSS MiB':>9} {'PSS MiB':>9} {'anon MiB':>9}"]
    for p in processes:
        lines.append(
            f"{p.name:<24} {p.pid:>7} {p.rss_kib / KIB_PER_MIB:>9.1f} "
            f"{p.pss_kib / KIB_PER_MIB:>9.1f} {p.anon_kib / KIB_PER_MIB:>9.1f}"
        )
    rss = sum(p.rss_kib for p in processes) / KIB_PER_MIB
    pss = sum(p.pss_kib for p in processes) / KIB_PER_MIB
    anon = sum(p.anon_kib for p in processes) / KIB_PER_MIB
    lines.append(f"{'total (server + stubs)':<24} {'':>7} {rss:>9.1f} {pss:>9.1f} {anon:>9.1f}")
    if supervisor is not None:
        lines.append(
            f"{'(supervisor, apart)':<24} {supervisor.pid:>7} "
            f"{supervisor.rss_kib / KIB_PER_MIB:>9.1f} {supervisor.pss_kib / KIB_PER_MIB:>9.1f} "
            f"{supervisor.anon_kib / KIB_PER_MIB:>9.1f}"
        )
    return "\n".join(lines)


def first_requests(grpc_url: str, photo: bytes) -> None:
    """One face_reenactment request (2 emotions) and one face_mesh request of ``photo``."""
    with grpcclient.InferenceServerClient(grpc_url) as client:
        image = grpcclient.InferInput("IMAGE", [1], "BYTES")
        image.set_data_from_numpy(np.array([photo], dtype=object))
        emotions = grpcclient.InferInput("EMOTIONS", [2], "BYTES")
        emotions.set_data_from_numpy(np.array([b"happy", b"sad"], dtype=object))
        client.infer("face_reenactment", [image, emotions], client_timeout=120.0)
        client.infer("face_mesh", [image], client_timeout=120.0)


def report(server: TritonServer, title: str) -> str:
    supervisor = process_memory(server.pid, "supervisor") if server.config.supervise else None
    return f"{title}\n{format_table(server_memory(server), supervisor)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="models to load (default: all)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before measuring")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from clients.perf.run_perf import encode_jpeg, sample_photo

    config = ServerConfig(models=tuple(args.models) if args.models else None)
    with TritonServer(config) as server:
        print(f"server ready in {server.startup_seconds:.1f} s; idle {args.idle:.0f} s", flush=True)
        time.sleep(args.idle)
        print(report(server, "== idle after start-up"), flush=True)
        if args.models is None:
            first_requests(server.grpc_url, encode_jpeg(sample_photo()))
            time.sleep(args.idle)
            print(report(server, "== idle after one face_reenactment and one face_mesh request"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
