"""Export the reenactor of the configured mode into the production model repository.

    python export/build_reenactor.py [--mode geometric|neural|hybrid] [--checkpoint RUN/last.pt]
        [--out model_repository/reenactor/1/model.pt] [--downsample 4] [--reach-px 64] ...

The mode defaults to ``reenactor_mode`` of model_repository/face_reenactment/config.pbtxt, the
one value that selects it (:mod:`reenact.reenactors`). Geometric: scripted from
:class:`reenact.reenactor.ReenactorConfig`, every tunable an option defaulting to it. Neural and
hybrid: traced from a training run's checkpoint (``python -m reenact train reenactor``); without
``--checkpoint`` the export fails saying what to train. The written file records its mode, which
face_reenactment checks when it loads.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import fields, replace
from pathlib import Path

from reenact.assets import REPO_ROOT
from reenact.reenactor import ReenactorConfig
from reenact.reenactors import MODES, get_mode, save_model, train_and_export_hint
from reenact.reenactors import geometric as geometric_mode
from reenact.reenactors import neural as neural_modes

PRODUCTION_REPOSITORY = REPO_ROOT / "model_repository"
DEFAULT_OUT = PRODUCTION_REPOSITORY / "reenactor" / "1" / "model.pt"
MODE_PARAMETER = "reenactor_mode"  # of face_reenactment's config.pbtxt


# one `parameters { key: "reenactor_mode" value { string_value: "..." } }` entry of the protobuf
# text (read without tritonclient, which the image's export step does not install)
MODE_ENTRY = re.compile(
    r'key:\s*"' + MODE_PARAMETER + r'"\s*value\s*\{\s*string_value:\s*"(?P<mode>[^"]*)"'
)


def configured_mode(repository: Path = PRODUCTION_REPOSITORY) -> str:
    """``reenactor_mode`` of the repository's face_reenactment."""
    config = repository / "face_reenactment" / "config.pbtxt"
    found = MODE_ENTRY.findall(config.read_text())
    if len(found) != 1:
        raise ValueError(f"{config}: expected one {MODE_PARAMETER} parameter, found {len(found)}")
    return found[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--mode", choices=tuple(MODES), default=None, help="default: configured")
    parser.add_argument("--checkpoint", type=Path, help="a training run's last.pt (or its folder)")
    defaults = ReenactorConfig()
    for field in fields(ReenactorConfig):
        flag = "--" + field.name.replace("_", "-")
        value = getattr(defaults, field.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    mode = get_mode(args.mode or configured_mode())
    if not mode.learned:
        config = replace(
            ReenactorConfig(), **{f.name: getattr(args, f.name) for f in fields(ReenactorConfig)}
        )
        save_model(geometric_mode.build(config), args.out, mode)
        sys.stdout.write(f"wrote {args.out}: the geometric reenactor ({config})\n")
        return 0
    if args.checkpoint is None:
        sys.stderr.write(
            f"reenactor mode {mode.name!r} needs a trained checkpoint: "
            + train_and_export_hint(mode)
            + "\n"
        )
        return 2
    found, traced = neural_modes.build(args.checkpoint)
    if found is not mode:
        sys.stderr.write(f"{args.checkpoint} is a {found.name} reenactor, not {mode.name}\n")
        return 2
    save_model(traced, args.out, mode, checkpoint=str(args.checkpoint))
    sys.stdout.write(f"wrote {args.out}: the {mode.name} reenactor of {args.checkpoint}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
