"""Extract MediaPipe's BlazeFace (short, full range) and FaceMesh ``.tflite`` files from the wheel.

Set-up step (never run at serving time). The wheel is read as a zip, mediapipe is not installed:

    python export/extract_mediapipe.py [--wheel WHEEL_OR_FOLDER] [--out DIR]

Without ``--wheel`` the wheel is looked for in ``build/downloads`` and, if missing, fetched there
with ``python -m pip download --no-deps mediapipe==0.10.14``. The models are written to
``build/assets/mediapipe`` (``reenact.landmarks.mediapipe_dir()``); files already there with
the same CRC-32 as the wheel's are left alone, so running it again changes nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from reenact.assets import build_dir
from reenact.landmarks import MEDIAPIPE_VERSION, blazeface, facemesh, mediapipe_dir

LICENSE_MEMBER = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"  # Apache-2.0, travels along
MEMBERS = (
    blazeface.TFLITE_MEMBER,
    blazeface.FULL_RANGE_TFLITE_MEMBER,
    facemesh.TFLITE_MEMBER,
    LICENSE_MEMBER,
)
WHEEL_PATTERN = f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"


def default_download_dir() -> Path:
    return build_dir() / "downloads"


def find_wheel(source: Path) -> Path | None:
    """``source`` itself if it is a file, else the first ``mediapipe-0.10.14-*.whl`` in it."""
    if source.is_file():
        return source
    matches = sorted(source.glob(WHEEL_PATTERN)) if source.is_dir() else []
    return matches[0] if matches else None


def download_wheel(folder: Path) -> Path:
    """Fetch the mediapipe wheel for this interpreter into ``folder`` with pip; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            f"mediapipe=={MEDIAPIPE_VERSION}",
            "-d",
            str(folder),
        ],
        check=True,
    )
    wheel = find_wheel(folder)
    if wheel is None:
        raise FileNotFoundError(f"pip download left no {WHEEL_PATTERN} in {folder}")
    return wheel


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def extract_models(wheel: Path, out_dir: Path) -> list[tuple[Path, bool]]:
    """Write the three ``.tflite`` files and the license of ``wheel`` into ``out_dir``;
    (path, written) for each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with zipfile.ZipFile(wheel) as archive:
        for member in MEMBERS:
            info = archive.getinfo(member)
            target = out_dir / PurePosixPath(member).name
            if target.is_file() and _crc32(target) == info.CRC:
                results.append((target, False))
                continue
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(archive.read(member))
            partial.replace(target)
            results.append((target, True))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        help=f"the mediapipe {MEDIAPIPE_VERSION} wheel, or a folder holding it "
        f"(default: {default_download_dir()}, downloaded there if missing)",
    )
    parser.add_argument("--out", type=Path, default=mediapipe_dir(), help="output folder")
    args = parser.parse_args(argv)

    if args.wheel is not None:
        wheel = find_wheel(args.wheel)
        if wheel is None:
            parser.error(f"no {WHEEL_PATTERN} at {args.wheel}")
    else:
        wheel = find_wheel(default_download_dir()) or download_wheel(default_download_dir())
    for path, written in extract_models(wheel, args.out):
        print(f"{'wrote' if written else 'up to date'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
