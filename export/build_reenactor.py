"""Script the geometric reenactor into the production model repository.

    python export/build_reenactor.py [--out model_repository/reenactor/1/model.pt]
        [--downsample 4] [--reach-px 64] [--no-mouth-from-source] ...

Every tunable of :class:`reenact.reenactor.ReenactorConfig` is an option, defaulting to it.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

import torch

from reenact.reenactor import GeometricReenactor, ReenactorConfig

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "model_repository" / "reenactor" / "1" / "model.pt"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
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
    config = replace(
        ReenactorConfig(), **{f.name: getattr(args, f.name) for f in fields(ReenactorConfig)}
    )
    scripted = torch.jit.script(GeometricReenactor.from_config(config).eval())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(args.out))
    print(f"wrote {args.out} ({config})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
