"""Build a template database: the default one from FACS, or one from labelled photos.

python export/build_templates.py                     # → build/assets/templates/default.npz
python export/build_templates.py --photos DIR --out my.npz   # DIR/<emotion>/*.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reenact.assets import assets_dir
from reenact.emotions import load_catalogue
from reenact.morphable import MorphableModel
from reenact.templates import build_from_photos, facs_database

DEFAULT_FILE = Path("templates") / "default.npz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=None, help="folder of <emotion>/ folders")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or assets_dir() / DEFAULT_FILE
    if args.photos is None:
        catalogue = load_catalogue(MorphableModel.load().expression_names)
        database = facs_database(catalogue)
    else:
        from reenact.pipeline import FaceMeshPipeline

        pipeline = FaceMeshPipeline()
        database = build_from_photos(
            args.photos,
            lambda data: pipeline(data).result.source_params,
            lambda path, why: print(f"skipped {path}: {why}", file=sys.stderr),
        )
    database.save(out)
    print(f"wrote {out}: {len(database.label)} rows, {len(database.names)} emotions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
