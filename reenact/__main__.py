"""``python -m reenact``: the learned machinery's commands (docs/neural.md).

python -m reenact prepare PHOTOS OUT             photos grouped by person → a training set
python -m reenact train reenactor --config FILE  train the reenactor (TOML or JSON config)
python -m reenact train predictor --config FILE  train the regression mesh predictor
python -m reenact eval PAIRS [--checkpoint RUN]  Table 6.1 metrics over (source, driving) pairs
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reenact", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="preprocess photos into a training set")
    prepare.add_argument("photos", type=Path)
    prepare.add_argument("out", type=Path)
    prepare.add_argument("--teacher", type=Path, default=None, help="mesh predictor TorchScript")
    train = commands.add_parser("train", help="train a network")
    train.add_argument("network", choices=("reenactor", "predictor"))
    train.add_argument("--config", type=Path, required=True, help=".toml or .json")
    evaluate = commands.add_parser("eval", help="self-reenactment metrics")
    evaluate.add_argument("pairs", type=Path, help="folder of <pair>/source.* + driving.*")
    evaluate.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a training run folder (config.json, last.pt); repeatable",
    )
    evaluate.add_argument("--no-geometric", action="store_true", help="skip the geometric row")
    evaluate.add_argument("--csv", type=Path, default=Path("build/eval/metrics.csv"))
    evaluate.add_argument("--lpips-backbone", type=Path)
    evaluate.add_argument("--lpips-linear", type=Path)
    evaluate.add_argument("--fid-features", type=Path)
    evaluate.add_argument("--no-csim", action="store_true")
    return parser  # fmt: skip


def _say(*parts: str) -> None:
    """A line of the command's output on stdout."""
    sys.stdout.write(" ".join(parts) + "\n")


def _prepare(args: argparse.Namespace) -> int:
    from reenact.neural.data import Preparer, prepare_dataset
    from reenact.pipeline import MESH_PREDICTOR_FILE

    preparer = Preparer.default(args.teacher or MESH_PREDICTOR_FILE)
    index = prepare_dataset(args.photos, args.out, preparer)
    _say(f"{len(index['samples'])} samples written to {args.out}, {len(index['skipped'])} skipped")
    return 0


def _train(args: argparse.Namespace) -> int:
    from reenact.neural import config, train

    if args.network == "reenactor":
        losses = train.train_reenactor(config.load_config(config.ReenactorTrainConfig, args.config))
    else:
        losses = train.train_predictor(config.load_config(config.PredictorTrainConfig, args.config))
    _say("last step:", " ".join(f"{k} {v:.4g}" for k, v in losses.items()))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from reenact.neural import evaluate
    from reenact.pipeline import local_reenactment

    options = evaluate.EvalOptions(
        args.lpips_backbone, args.lpips_linear, args.fid_features, not args.no_csim
    )
    pairs = evaluate.find_pairs(args.pairs)
    reenactment = local_reenactment()
    generators = (
        [] if args.no_geometric else [("geometric", evaluate.geometric_generator(reenactment))]
    )
    generators += [(f"neural:{c.name}", evaluate.neural_generator(c)) for c in args.checkpoint]
    results = [evaluate.evaluate(pairs, reenactment, g, name, options) for name, g in generators]
    _say(evaluate.format_table(results))
    for metric, reason in results[0].skipped.items() if results else ():
        _say(f"{metric.upper()} skipped: {reason}")
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    evaluate.write_csv(args.csv, results)
    _say(f"{len(pairs)} pairs; per-pair figures: {args.csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    handlers = {"prepare": _prepare, "train": _train, "eval": _eval}
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
