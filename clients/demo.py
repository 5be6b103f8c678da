"""`make demo`: start a local Triton server, reenact real photos, write out/, stop the server.

Three photos, each reenacted with the 15 default emotions over gRPC by the client CLI
(``clients/reenact_cli.py``), each into its own folder with the images and a labelled contact
sheet:

- ``astronaut/``: the scikit-image astronaut (public domain, NASA), a portrait with wide margins;
- ``closeup/``: a 112 x 112 greyscale close-up whose face fills the photo (insightface wheel);
- ``group/face_<k>/``: every face of a six-person group photo (insightface wheel), ``k``
  counted from the left.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from clients import reenact_cli, sample_photos
from reenact.serving.server import ServerConfig, TritonServer

GROUP_FACES = 6


def save_photos(out: Path) -> dict[str, Path]:
    """Write the demo photos into ``out``; their paths by folder name."""
    photos: dict[str, np.ndarray] = {
        "astronaut": skimage.data.astronaut(),
        "closeup": sample_photos.tom_hanks(),
        "group": sample_photos.group(),
    }
    paths = {}
    for name, image in photos.items():
        paths[name] = out / f"{name}.jpg"
        Image.fromarray(image).save(paths[name], quality=95)
    return paths


def requests(paths: dict[str, Path], out: Path) -> list[list[str]]:
    """The CLI arguments of every demo request."""
    calls = [[str(paths[name]), "--out", str(out / name)] for name in ("astronaut", "closeup")]
    for index in range(GROUP_FACES):
        folder = out / "group" / f"face_{index}"
        calls.append([str(paths["group"]), "--out", str(folder), "--face-index", str(index)])
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    paths = save_photos(args.out)
    failed = 0
    with TritonServer(ServerConfig(models=("face_reenactment",))) as server:
        print(f"server ready in {server.startup_seconds:.1f} s")
        for call in requests(paths, args.out):
            started = time.perf_counter()
            status = reenact_cli.main([*call, "--url", server.grpc_url])
            print(f"  {' '.join(call[:1] + call[3:])}: {time.perf_counter() - started:.2f} s")
            failed += status != 0
    print(f"emotion images and contact sheets under {args.out.resolve()}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
