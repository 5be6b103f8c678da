"""`make demo`: start a local Triton server, reenact a real photo, write out/, stop the server.

The photo is the scikit-image astronaut (public domain, NASA). Writes the K emotion images and a
labelled contact sheet with the client CLI (``clients/reenact_cli.py``), over gRPC.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import skimage.data
from PIL import Image

from clients import reenact_cli
from reenact.serving.server import ServerConfig, TritonServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    photo = args.out / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo, quality=95)
    with TritonServer(ServerConfig(models=("face_reenactment",))) as server:
        print(f"server ready in {server.startup_seconds:.1f} s; sending {photo}")
        started = time.perf_counter()
        status = reenact_cli.main([str(photo), "--out", str(args.out), "--url", server.grpc_url])
        print(f"request took {time.perf_counter() - started:.2f} s (first call, includes warm-up)")
    if status == 0:
        print(f"emotion images and contact sheet in {args.out.resolve()}/")
    return status


if __name__ == "__main__":
    sys.exit(main())
