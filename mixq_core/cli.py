"""The ``mixq`` command line: one sub-command per verb, errors printed without traceback.

Every number an option takes is checked by argparse against its range (shown in ``--help``); paths that a
command writes are checked before its work starts; any error on bad input, and Ctrl-C, end the command
with one line on stderr (exit status 2, or 130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import errno
import json
import shlex
import sys
from pathlib import Path

from .errors import ConfigError, MixQError, did_you_mean
from .validate import (
    BITS,
    GUIDANCE,
    RESOLUTION,
    SEED,
    SET_SIZE,
    STEPS,
    Bounds,
    check_output_dir,
    check_output_file,
    resolve_device,
)

DESCRIPTION = ("MixQ: data-free post-training quantization calibrated on images that a text-to-image model "
               "generates from mixup-class prompts. Each command prints one JSON line; bad input prints one "
               "error line and exits with status 2.")
# Ranges of the options below that are not settings of a profile (those are in mixq_core.validate).
ITERS = Bounds(0, 1_000_000)
COUNT = Bounds(1, None)
SHARE = Bounds(0, 1, integer=False)
EPOCHS = Bounds(1, 1000)
TRAIN_STEPS = Bounds(1, 10_000_000)
TRAIN_IMAGES = Bounds(1, 60_000)  # Fashion-MNIST's training split
# Operating-system errors that bad input or a full machine cause, reported as one line instead of a traceback.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _cmd_train_mini(args) -> dict:
    from .models import ASSETS_DIR, record_asset, train_mini

    out = check_output_file(Path(args.out) if args.out else ASSETS_DIR / f"{args.model}.safetensors", "--out")
    summary = train_mini(args.model, out, seed=args.seed, epochs=args.epochs, limit=args.limit, compile=args.compile,
                         resume_dir=args.resume)
    if args.out is None:  # only the shipped location is recorded in the shipped manifest
        command = "mixq train-mini " + " ".join(shlex.quote(a) for a in _without_option(args.argv, "--resume"))
        record_asset(out, {"command": command, **summary})
    return {"out": str(out), **summary}


def _without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value (``--opt V`` or ``--opt=V``): for options that change no result."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def _cmd_train_mini_generator(args) -> dict:
    from .generator import GeneratorRecipe, generator_dir, train_generator
    from .models import record_asset

    recipe = GeneratorRecipe(**{k: v for k, v in (("vae_steps", args.vae_steps), ("unet_steps", args.unet_steps),
                                                  ("pair_share", args.pair_share), ("world", args.world),
                                                  ("polysemy_share", args.polysemy_share)) if v is not None})
    out = check_output_dir(Path(args.out) if args.out else generator_dir(recipe.world), "--out")
    work = check_output_dir(Path(args.work) if args.work else out.with_name(f".{out.name}.training"), "--work")
    summary = train_generator(out, work, seed=args.seed, recipe=recipe, limit=args.limit, vae_from=args.vae_from)
    if args.out is None:  # only the shipped location is recorded in the shipped manifest
        command = "mixq train-mini-generator " + " ".join(shlex.quote(a) for a in args.argv)
        for file in summary["files"]:
            record_asset(file, {"command": command.strip(), "component": Path(file).parent.name,
                                **{k: v for k, v in summary.items() if k != "files"}})
    return {"out": str(out), **summary}


def _only(configs: list, field: str, wanted: list | None, where: str, label: str | None = None) -> list:
    """The configs whose ``field`` is one of ``wanted`` (all when None); a wanted value that no config has
    is an error, so a typo never selects nothing. ``label`` names the field in that error (default: ``field``)."""
    if wanted is None:
        return configs
    label = label or field
    have = sorted({getattr(c, field) for c in configs}, key=str)
    missing = [value for value in wanted if value not in have]
    if missing:
        raise ConfigError(f"{where} has no experiment with {label} {missing[0]!r}; its {label}s: "
                          f"{', '.join(map(str, have)) or 'none'}{did_you_mean(missing[0], map(str, have))}")
    return [c for c in configs if getattr(c, field) in wanted]


def _cmd_grid(args) -> dict:
    from . import results
    from .experiment import ablation_configs, grid_configs, run_grid

    device = resolve_device(args.device)
    if args.section == "ablations":
        configs = [c for group in ablation_configs(args.profile).values() for c in group]
    else:
        configs = grid_configs(args.profile, args.section)
    where = f"section {args.section!r} of profile {args.profile!r}"
    configs = _only(configs, "model", args.models, where)
    configs = _only(configs, "data", args.data, where, label="source")
    configs = _only(configs, "seed", args.seeds, where)
    configs = list(dict.fromkeys(configs))  # ablation factors share their centre cell
    if args.by_seed:  # shortest schedule first, and in it every cell's seed 0 before any seed 1
        configs = sorted(configs, key=lambda c: (c.resolved().iters, c.seed))
    if args.plan:
        return _grid_plan(args, configs)
    check_output_dir(results.RESULTS_DIR, "results folder ($MIXQ_RESULTS)")
    resume_root = None
    if args.resumable:
        resume_root = check_output_dir(Path(results.RESULTS_DIR) / "resume", "resume folder")
    records = run_grid(configs, force=args.force, device=device, share=args.share, resume_root=resume_root,
                       imagenet_val=args.imagenet_val, imagenet_train=args.imagenet_train)
    return {"profile": args.profile, "section": args.section, "experiments": len(records),
            "results": [{**{k: r["metrics"]["config"][k] for k in ("model", "w_bits", "a_bits", "data", "seed")},
                         "top1": r["metrics"]["top1"], "record": r["config_hash"]} for r in records]}


def _grid_plan(args, configs) -> dict:
    """``mixq grid --plan``: what the selection still has to run, per cell, and an estimate of how long."""
    from .report import grid_plan, plan_cells

    plan = grid_plan(configs)
    left = plan[~plan["done"]]
    known = left["seconds"].notna()
    return {"profile": args.profile, "section": args.section, "experiments": len(plan), "done": int(plan["done"].sum()),
            "left": len(left), "hours_left": round(float(left.loc[known, "seconds"].sum()) / 3600, 1),
            "left_without_estimate": int((~known).sum()),
            "note": "single-process hours, estimated from the records under the results folder (the machines and "
                    "threads that made them); synthesis of sets not yet made comes on top",
            "cells": plan_cells(plan)}


def _cmd_evaluate(args) -> dict:
    from .experiment import fp_top1

    device = resolve_device(args.device)
    if args.data:  # a synthetic set: agreement with the prompted classes
        from .analysis import score_synthetic
        from .models import load_model
        from .profiles import load_profile

        model = load_model(load_profile(args.profile), args.model)
        return {"model": args.model, "profile": args.profile, "data": args.data,
                **score_synthetic(model, args.data, topk=args.topk)}
    return fp_top1(args.profile, args.model, limit=args.limit, seed=args.seed, data_root=args.imagenet_val,
                   device=device)


def _cmd_reproduce(args) -> dict:
    from . import results
    from .reproduce import reproduce

    ray_options = {k: v for k, v in (("address", args.address), ("shards", args.shards),
                                     ("cpus_per_task", args.cpus_per_task)) if v is not None}
    if ray_options and args.executor != "ray":
        raise ConfigError(f"--{sorted(ray_options)[0].replace('_', '-')} applies to --executor ray only")
    check_output_dir(results.RESULTS_DIR, "results folder ($MIXQ_RESULTS)")
    return reproduce(args.profile, notebooks=args.notebooks, skip_book=args.skip_book, strict=args.strict,
                     executor=args.executor, **ray_options)


def _given(value, default):
    """``value`` unless it was not given (None): a given 0 is kept, and checked like any other value."""
    return default if value is None else value


def _cmd_synthesize(args) -> dict:
    from .experiment import genq_filter
    from .profiles import load_profile
    from .prompts import PromptConfig
    from .synthesis import check_set_folder_target, parse_shard, synthesize_set

    profile = load_profile(args.profile)
    device = str(resolve_device(args.device))
    shard = parse_shard(args.shard)
    check_set_folder_target(args.out)
    config = PromptConfig(
        strategy=args.strategy, n=_given(args.n, profile["n_synth"]), vocabulary=profile["vocabulary"], k=args.k,
        seed=args.seed, templates=tuple(args.template or ()), partners=args.partners, alpha=args.alpha,
        classes=tuple(c.strip() for c in args.classes.split(",")) if args.classes else None,
        overgenerate=args.overgenerate, allow_unbalanced=args.allow_unbalanced)
    model, transform = genq_filter(profile, args.model) if args.model else (None, None)
    return synthesize_set(
        config, args.out, generator=args.generator or profile["generator"], steps=_given(args.steps, profile["steps"]),
        guidance=_given(args.guidance, profile["guidance"]), resolution=_given(args.resolution, profile["resolution"]),
        device=device, dtype=args.dtype, batch_size=args.batch_size, shard=shard, filter_model=model,
        filter_model_name=args.model, exact=args.exact, **({"transform": transform} if transform else {}))


def _cmd_quantize(args) -> dict:
    """One experiment through :func:`mixq_core.experiment.run`: the profile's settings where an option is not
    given, the record written (or reused) and summed up. ``--data FOLDER`` calibrates on a set made by hand or
    by ``mixq synthesize``; its record is kept apart from the profile's grid."""
    from . import results
    from .data import synthetic_folder
    from .experiment import ExperimentConfig, run
    from .profiles import load_profile
    from .prompts import load_vocabulary
    from .quant import check_resume_dir
    from .sources import SOURCES

    profile = load_profile(args.profile)
    device = resolve_device(args.device)
    if args.trace:  # checked now: a run is not lost to a path that cannot be written
        check_output_file(args.trace, "--trace")
    if args.resume:
        check_resume_dir(args.resume)
    check_output_dir(results.RESULTS_DIR, "results folder ($MIXQ_RESULTS)")
    calibration_set = None
    if args.data not in SOURCES:
        if not Path(args.data).is_dir():
            raise ConfigError(f"--data must be a calibration source ({', '.join(SOURCES)}) or the folder of a "
                              f"synthetic set (made by `mixq synthesize`); {args.data!r} is none of these")
        calibration_set = args.data  # checked whole before any work: a damaged set fails here, not mid-run
        images = len(synthetic_folder(args.data, num_classes=len(load_vocabulary(profile["vocabulary"]).names)))
        if args.n_calib is not None and args.n_calib > images:
            raise ConfigError(f"--n-calib {args.n_calib} asks for more images than the {images} of set {args.data}; "
                              f"accepted: 1..{images}")
    config = ExperimentConfig(profile=args.profile, model=args.model, w_bits=args.w_bits, a_bits=args.a_bits,
                              data="real" if calibration_set else args.data, k=args.k, n_calib=args.n_calib,
                              method=args.method, iters=args.iters, seed=args.seed)
    record = run(config, force=args.force, results_dir=results.RESULTS_DIR, device=device, resume_dir=args.resume,
                 calibration_set=calibration_set, trace_file=args.trace, imagenet_val=args.imagenet_val,
                 imagenet_train=args.imagenet_train)
    metrics = record["metrics"]
    units = [{"name": u["name"], "kind": u["kind"], "iters": u["iters"], "loss_before": u["loss_before"],
              "loss_after": u["loss_after"]} for u in metrics["units"]]
    return {"record": str(results.record_path(record["kind"], record["config"], results.RESULTS_DIR).resolve()),
            "config_hash": record["config_hash"], **metrics["config"], "data": args.data,
            **{key: metrics.get(key) for key in ("top1", "fp_top1", "drop", "n_calib", "n_eval", "resumed_units")},
            "seconds": metrics["seconds"], "units": units}


# ----------------------------------------------------------------------------- the parser


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default after its help, unless the help states it or there is none to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if not action.option_strings or unset or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line (exit status 2) and shows defaults in ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(parser: argparse.ArgumentParser, flag: str, bounds: Bounds, help: str, **kwargs) -> None:
    """An option taking a number in ``bounds``: argparse checks it, and ``--help`` shows the range (before
    the default, where the help states one)."""
    text, _, default = help.partition(" (default")
    parser.add_argument(flag, type=bounds.parse, metavar=kwargs.pop("metavar", "N"),
                        help=f"{text}; {bounds.span()}" + (f" (default{default}" if default else ""), **kwargs)


def _add_profile(parser: argparse.ArgumentParser, help: str = "profile name (mini, smoke, imagenet, mini-full, "
                 "... or a user profile in $MIXQ_PROFILES)") -> None:
    parser.add_argument("--profile", default="mini", help=help)


def _add_track_arguments(parser: argparse.ArgumentParser, train: bool = True) -> None:
    """Where the ImageNet track's real data is, and the device: shared by every command that runs models."""
    parser.add_argument("--imagenet-val", default=None,
                        help="ImageNet val folder, val/<synset>/*.JPEG (imagenet profile; default $MIXQ_IMAGENET_VAL)")
    if train:
        parser.add_argument("--imagenet-train", default=None,
                            help="ImageNet train folder for --data real and the probes (default $MIXQ_IMAGENET_TRAIN)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mixq", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train-mini", help="train a mini model on Fashion-MNIST and ship it in assets/")
    train.add_argument("model", help="resnet18, mobilenetv2_100, deit_mini; resnet18_mix, deit_mini_mix (mix-trained)")
    _number(train, "--seed", SEED, "seed of the initialisation and the batch order", default=0)
    _number(train, "--epochs", EPOCHS, "training epochs (default: the model's recipe)")
    _number(train, "--limit", TRAIN_IMAGES, "train on the first N training images only, for smoke runs (default: all)")
    train.add_argument("--out", default=None,
                       help="write here instead of assets/<model>.safetensors (the manifest is then untouched)")
    train.add_argument("--compile", action="store_true",
                       help="torch.compile the training steps (faster, not bit-identical to the eager recipe)")
    train.add_argument("--resume", default=None, metavar="DIR",
                       help="keep the training state here after every epoch; a rerun with the same folder goes on "
                            "from the last finished epoch (the folder is removed once the weights are written)")
    train.set_defaults(run=_cmd_train_mini)

    gen = commands.add_parser("train-mini-generator",
                              help="train the mini text-to-image generator (VAE, then UNet) and ship it in assets/")
    _number(gen, "--seed", SEED, "seed of the initialisation and the batches", default=0)
    _number(gen, "--vae-steps", TRAIN_STEPS, "VAE training steps (default: the recipe's)")
    _number(gen, "--unet-steps", TRAIN_STEPS, "UNet training steps (default: the recipe's)")
    _number(gen, "--pair-share", SHARE, "share of two-item collage images, below 1 (default 0.3; 0: single-class "
            "captions only)", metavar="X")
    gen.add_argument("--world", default=None,
                     help="plain (default), gap (restyled training images), polysemy (some class names also caption "
                          "another class) or gap+polysemy; variants ship as assets/mini-generator-<world>")
    _number(gen, "--polysemy-share", SHARE, "polysemy worlds: share of a polysemous item's captions that use the "
            "borrowed name (default 0.35)", metavar="X")
    gen.add_argument("--vae-from", default=None,
                     help="reuse this pipeline folder's VAE instead of training one (default: train one)")
    _number(gen, "--limit", TRAIN_IMAGES, "train on the first N training images only, for smoke runs (default: all)")
    gen.add_argument("--out", default=None,
                     help="write here instead of assets/mini-generator[-<world>] (the manifest is then untouched)")
    gen.add_argument("--work", default=None,
                     help="folder of the resumable training state (default: .<out>.training next to the output)")
    gen.set_defaults(run=_cmd_train_mini_generator)

    evaluate = commands.add_parser("evaluate", help="top-1 of a full-precision model on the profile's test data")
    _add_profile(evaluate)
    evaluate.add_argument("--model", required=True, help="a model of the profile (mini: resnet18, mobilenetv2_100, "
                                                         "deit_mini)")
    _number(evaluate, "--limit", COUNT, "evaluate a fixed random subset of N test images, at most the test set's "
            "size (default: the profile's eval_limit, else all)")
    _number(evaluate, "--seed", SEED, "seed of the --limit subset", default=0)
    _add_track_arguments(evaluate, train=False)
    evaluate.add_argument("--data", default=None,
                          help="score a synthetic set folder against its prompts instead (default: real test data)")
    _number(evaluate, "--topk", COUNT, "with --data: k of the all/any-in-top-k shares, at most the model's classes",
            default=2, metavar="K")
    evaluate.set_defaults(run=_cmd_evaluate)

    reproduce = commands.add_parser("reproduce", help="execute the notebooks with papermill, then build the book "
                                                      "(run it in the repository checkout's root)")
    _add_profile(reproduce)
    reproduce.add_argument("--notebooks", nargs="+", default=None,
                           help="only these notebooks, by name or stem such as 00_models (default: all)")
    reproduce.add_argument("--skip-book", action="store_true", help="execute the notebooks only")
    reproduce.add_argument("--strict", action="store_true", help="fail the book build on any warning")
    reproduce.add_argument("--executor", default="local",
                           help="local (notebooks run here) or ray (the plan and notebooks as Ray tasks)")
    reproduce.add_argument("--address", default=None,
                           help="ray: a running cluster's address (or 'auto'); default: a private local instance")
    _number(reproduce, "--shards", Bounds(1, 1024), "ray: tasks per synthetic set (default 2)")
    _number(reproduce, "--cpus-per-task", Bounds(1, 1024),
            "ray, CPU profiles: CPUs and torch threads per task (default: this machine's threads)")
    reproduce.set_defaults(run=_cmd_reproduce)

    synth = commands.add_parser("synthesize", help="generate a calibration set with a text-to-image generator")
    _add_profile(synth)
    synth.add_argument("--strategy", required=True, help="single, mixup, mixup-embed or genq")
    _number(synth, "--n", SET_SIZE, "images in the set (default: the profile's n_synth)")
    synth.add_argument("--out", required=True,
                       help="set folder, new or empty; a rerun resumes it, another configuration is refused")
    _number(synth, "--k", Bounds(1, 16), "classes per prompt, at most the classes in use (mixup strategies; "
            "default 2)", metavar="K")
    _number(synth, "--seed", SEED, "seed of the prompts and of every image's noise", default=0)
    synth.add_argument("--model", default=None,
                       help="genq: the full-precision model of the profile whose energy filters (default: none)")
    synth.add_argument("--partners", default="random", help="mixup partners: random, near or far (text similarity)")
    _number(synth, "--alpha", Bounds(0, 1000, integer=False), "mixup-embed: Dirichlet concentration, above 0",
            default=1.0, metavar="X")
    _number(synth, "--overgenerate", Bounds(1, 100), "genq: candidates per kept image", default=2)
    synth.add_argument("--classes", default=None,
                       help="comma-separated class names or ids to draw from (default: every class)")
    synth.add_argument("--template", action="append", default=None,
                       help="prompt template with {c1}..{ck} (repeatable; one drawn per prompt; default: built-in "
                            "templates)")
    synth.add_argument("--allow-unbalanced", action="store_true", help="accept n not a multiple of the classes")
    synth.add_argument("--generator", default=None,
                       help="pipeline name (mini, mini-gap, ...), hub id or folder (default: the profile's)")
    _number(synth, "--steps", STEPS, "solver steps per image (default: the profile's steps)")
    _number(synth, "--guidance", GUIDANCE, "classifier-free guidance scale, ≤ 1 turns it off (default: the "
            "profile's guidance)", metavar="X")
    _number(synth, "--resolution", RESOLUTION, "image side in pixels (default: the profile's resolution)")
    _number(synth, "--batch-size", Bounds(1, 1024), "images per pipeline call (memory vs speed)", default=8)
    synth.add_argument("--exact", action="store_true",
                       help="one image per pipeline call: same pixels at any batch size (~5x slower on 2 CPU cores)")
    synth.add_argument("--shard", default="0/1", help="i/n: generate every n-th image from the i-th (0 ≤ i < n)")
    synth.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    synth.add_argument("--dtype", default=None, help="float16, bfloat16 or float32 (default: float16 on cuda, "
                                                     "else float32)")
    synth.set_defaults(run=_cmd_synthesize)

    grid = commands.add_parser("grid", help="run (or reuse) a profile's experiment grid, one result record each")
    _add_profile(grid)
    grid.add_argument("--section", default="grid_cnn", help="grid_cnn, grid_vit or ablations")
    grid.add_argument("--models", nargs="+", default=None, help="only these models of the section (default: all)")
    grid.add_argument("--data", nargs="+", default=None, metavar="SOURCE",
                      help="only these calibration sources of the section, e.g. single mixup (default: all)")
    grid.add_argument("--seeds", nargs="+", type=SEED.parse, default=None, metavar="SEED",
                      help=f"only these seeds of the section, each {SEED.span()} (default: all)")
    grid.add_argument("--force", action="store_true", help="rerun experiments whose record exists")
    grid.add_argument("--by-seed", action="store_true",
                      help="shortest schedule first, and in it every cell's seed 0, then seed 1, ...")
    grid.add_argument("--share", action="store_true",
                      help="work beside other `mixq grid --share` processes: skip what another one is running")
    grid.add_argument("--resumable", action="store_true",
                      help="keep each run's state after every finished unit under <results>/resume/, so that a grid "
                           "stopped mid-run goes on from there when started again")
    grid.add_argument("--plan", action="store_true",
                      help="run nothing: print, per cell, the seeds that have a record and an estimate of the hours "
                           "the rest takes (from the latest records of the same model and steps already there)")
    _add_track_arguments(grid)
    grid.set_defaults(run=_cmd_grid)

    quant = commands.add_parser("quantize", help="one experiment: PTQ of a model calibrated on a source or a set "
                                                 "folder, its record written (or reused) and printed")
    _add_profile(quant)
    quant.add_argument("--model", required=True, help="a model of the profile (mini: resnet18, mobilenetv2_100, "
                                                      "deit_mini)")
    _number(quant, "--w-bits", BITS, "weight bits", default=4)
    _number(quant, "--a-bits", BITS, "activation bits", default=4)
    quant.add_argument("--data", default="real",
                       help="calibration source (real, noise, single, genq, mixup, mixup-embed, single-mixup, "
                            "single-cutmix), or the folder of a synthetic set")
    _number(quant, "--k", Bounds(2, 16), "classes per prompt of the mixup sources", default=2, metavar="K")
    quant.add_argument("--method", default="qdrop", help="rtn, adaround, brecq or qdrop")
    _number(quant, "--iters", ITERS, "reconstruction steps per block (default: the profile's iters)")
    _number(quant, "--n-calib", SET_SIZE, "calibration images, at most a set's size (default: the profile's "
            "n_calib, or all of a smaller set)")
    _number(quant, "--seed", SEED, "seed of the calibration subset and of the reconstruction", default=0)
    quant.add_argument("--force", action="store_true", help="rerun the experiment even if its record exists")
    quant.add_argument("--trace", default=None,
                       help="write the whole reconstruction trace (JSON) to this file, checked before the run")
    quant.add_argument("--resume", default=None, metavar="DIR",
                       help="keep the quantized state after each finished unit in folder DIR; the same command "
                            "run again goes on after the last finished unit")
    _add_track_arguments(quant)
    quant.set_defaults(run=_cmd_quantize)
    return parser


# ----------------------------------------------------------------------------- the command's edge


def _fail(command: str, message: str) -> int:
    """Print ``message`` as the command's one error line; the exit status of bad input."""
    print(f"mixq {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0), or a usage error that argparse printed on one line (2)
        return done.code if isinstance(done.code, int) else 0
    args.argv = argv[1:]
    try:
        result = args.run(args)
    except MixQError as exc:
        return _fail(args.command, str(exc))
    except KeyboardInterrupt:
        print(f"mixq {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only mount, no permission: said in one line
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        return _fail(args.command, f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
