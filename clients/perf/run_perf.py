"""Benchmark a model with the real perf_analyzer 2.51.0 against a local tritonserver.

    python -m clients.perf.run_perf [--model face_reenactment] [--concurrency 1:3]

Writes an input-data file holding a real photo (the scikit-image astronaut as JPEG), starts a
server for the model unless ``--url`` points at a running one, runs perf_analyzer over gRPC and
prints its report. The input file can be reused by hand::

    .venv/share/reenact-triton/bin/perf_analyzer -m face_preprocess \
        --input-data build/perf/face_preprocess.json --concurrency-range 1:2
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tritonclient.utils import serialize_byte_tensor

from reenact.assets import build_dir
from reenact.serving import runtime
from reenact.serving.server import ServerConfig, TritonServer


def sample_photo() -> np.ndarray:
    """(512, 512, 3) uint8: the scikit-image astronaut (public domain, NASA)."""
    import skimage.data

    return skimage.data.astronaut()


def write_input_data(path: Path, photo: np.ndarray, input_name: str = "IMAGE") -> Path:
    """A perf_analyzer --input-data JSON with one JPEG in a BYTES input."""
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=92)
    # perf_analyzer reads a BYTES tensor given as b64 in Triton's serialised form:
    # each element prefixed by its little-endian uint32 length.
    serialized = serialize_byte_tensor(np.array([buffer.getvalue()], dtype=object)).item()
    entry = {input_name: {"b64": base64.b64encode(serialized).decode(), "shape": [1]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": [entry]}))
    return path


def perf_command(
    perf_bin: Path, model: str, url: str, data: Path, concurrency: str, window_ms: int
) -> list[str]:
    return [
        str(perf_bin),
        "-m",
        model,
        "-u",
        url,
        "-i",
        "grpc",
        "--input-data",
        str(data),
        "--concurrency-range",
        concurrency,
        "--measurement-interval",
        str(window_ms),
        "--stability-percentage",
        "25",
        "--max-trials",
        "10",
        "--percentile",
        "50",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="face_reenactment", help="any model taking IMAGE")
    parser.add_argument("--concurrency", default="1:3", help="perf_analyzer range start:end")
    parser.add_argument("--window-ms", type=int, default=3000)
    parser.add_argument("--url", default=None, help="gRPC URL of a running server")
    args = parser.parse_args(argv)

    rt = runtime.prepare()
    data = write_input_data(build_dir() / "perf" / f"{args.model}.json", sample_photo())
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            server = stack.enter_context(TritonServer(ServerConfig(models=(args.model,))))
            url = server.grpc_url
        cmd = perf_command(
            rt.perf_analyzer, args.model, url, data, args.concurrency, args.window_ms
        )
        print("$", " ".join(cmd), flush=True)
        return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
