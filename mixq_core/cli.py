"""The ``mixq`` command line: one sub-command per verb, errors printed without traceback."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .errors import MixQError


def _cmd_train_mini(args) -> dict:
    from .models import ASSETS_DIR, record_asset, train_mini

    out = Path(args.out) if args.out else ASSETS_DIR / f"{args.model}.safetensors"
    summary = train_mini(args.model, out, seed=args.seed, epochs=args.epochs, limit=args.limit)
    if args.out is None:  # only the shipped location is recorded in the shipped manifest
        command = "mixq train-mini " + " ".join(shlex.quote(a) for a in args.argv)
        record_asset(out, {"command": command, **summary})
    return {"out": str(out), **summary}


def _cmd_evaluate(args) -> dict:
    from .experiment import fp_top1

    return fp_top1(args.profile, args.model, limit=args.limit, seed=args.seed, data_root=args.imagenet_val)


def _cmd_reproduce(args) -> dict:
    from .reproduce import reproduce

    return reproduce(args.profile, notebooks=args.notebooks, skip_book=args.skip_book)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train-mini", help="train a mini model on Fashion-MNIST and ship it in assets/")
    train.add_argument("model", help="resnet18, mobilenetv2_100 or deit_mini")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    train.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke runs)")
    train.add_argument("--out", default=None, help="write here instead of assets/ (the manifest is then untouched)")
    train.set_defaults(run=_cmd_train_mini)

    evaluate = commands.add_parser("evaluate", help="top-1 of a full-precision model on the profile's test data")
    evaluate.add_argument("--profile", default="mini")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate a fixed random subset of N images")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    evaluate.add_argument("--imagenet-val", default=None, help="ImageNet val folder (imagenet profile)")
    evaluate.set_defaults(run=_cmd_evaluate)

    reproduce = commands.add_parser("reproduce", help="execute the notebooks with papermill, then build the book")
    reproduce.add_argument("--profile", default="mini")
    reproduce.add_argument("--notebooks", nargs="*", default=None, help="only these notebooks (names or stems)")
    reproduce.add_argument("--skip-book", action="store_true", help="execute the notebooks only")
    reproduce.set_defaults(run=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]
    try:
        result = args.run(args)
    except MixQError as exc:
        print(f"mixq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
