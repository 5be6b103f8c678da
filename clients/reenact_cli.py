"""Send a photo to face_reenactment; write the K images and a labelled contact sheet.

    python -m clients.reenact_cli photo.jpg --out out/
    python -m clients.reenact_cli photo.jpg --protocol http --url 127.0.0.1:8000 \
        --emotions happy sad --intensity 0.7 --head-pose 15 0 0 --format jpeg

Exits with status 1 and the server's message on any error.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from reenact.client import ReenactClient, ReenactError
from reenact.contact_sheet import contact_sheet

DEFAULT_URLS = {"grpc": "127.0.0.1:8001", "http": "127.0.0.1:8000"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path, help="JPEG, PNG or WebP photo with a face")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--url", default=None, help="server host:port (default per protocol)")
    parser.add_argument("--emotions", nargs="+", default=None, help="emotion names")
    parser.add_argument("--intensity", type=float, default=None, help="expression strength")
    parser.add_argument(
        "--head-pose",
        type=float,
        nargs=3,
        default=None,
        metavar=("YAW", "PITCH", "ROLL"),
        help="degrees added to the source head pose",
    )
    parser.add_argument(
        "--expression",
        type=Path,
        default=None,
        help=".npy file with a (K, 55) float32 array of raw expression weights",
    )
    parser.add_argument("--format", choices=("png", "jpeg"), default=None, dest="output_format")
    parser.add_argument("--paste-back", action="store_true", default=None)
    parser.add_argument(
        "--face-index", type=int, default=None, help="which face, from the left (default: largest)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds")
    return parser.parse_args(argv)


def safe_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "image"


def write_outputs(result, out: Path, source: np.ndarray) -> Path:
    """Write each image and contact_sheet.png into ``out``; return the sheet's path."""
    out.mkdir(parents=True, exist_ok=True)
    decoded = []
    for k, (name, data) in enumerate(zip(result.emotions, result.images, strict=True)):
        image = Image.open(io.BytesIO(data))
        suffix = "jpg" if image.format == "JPEG" else "png"
        (out / f"{k:02d}_{safe_name(name)}.{suffix}").write_bytes(data)
        decoded.append(np.asarray(image.convert("RGB")))
    sheet = contact_sheet([source, *decoded], ["source", *result.emotions])
    path = out / "contact_sheet.png"
    Image.fromarray(sheet).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        photo = args.photo.read_bytes()
        expression = (
            None if args.expression is None else np.load(args.expression, allow_pickle=False)
        )
    except OSError as exc:
        print(f"error: cannot read input: {exc}", file=sys.stderr)
        return 1
    client = ReenactClient(
        args.url or DEFAULT_URLS[args.protocol], protocol=args.protocol, timeout_s=args.timeout
    )
    try:
        result = client.reenact(
            photo,
            emotions=args.emotions,
            intensity=args.intensity,
            head_pose=args.head_pose,
            expression=expression,
            output_format=args.output_format,
            paste_back=args.paste_back,
            face_index=args.face_index,
        )
    except ReenactError as exc:
        print(f"error from the server: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # HTTP connection refused or reset: tell the user, no traceback
        print(f"error: could not reach the server: {exc}", file=sys.stderr)
        return 1
    source = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    sheet = write_outputs(result, args.out, source)
    print(f"wrote {len(result.images)} images and {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
