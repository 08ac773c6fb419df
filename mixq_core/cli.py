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
    summary = train_mini(args.model, out, seed=args.seed, epochs=args.epochs, limit=args.limit, compile=args.compile)
    if args.out is None:  # only the shipped location is recorded in the shipped manifest
        command = "mixq train-mini " + " ".join(shlex.quote(a) for a in args.argv)
        record_asset(out, {"command": command, **summary})
    return {"out": str(out), **summary}


def _cmd_train_mini_generator(args) -> dict:
    from .generator import GeneratorRecipe, generator_dir, train_generator
    from .models import record_asset

    recipe = GeneratorRecipe(**{k: v for k, v in (("vae_steps", args.vae_steps), ("unet_steps", args.unet_steps),
                                                  ("pair_share", args.pair_share), ("world", args.world),
                                                  ("polysemy_share", args.polysemy_share)) if v is not None})
    out = Path(args.out) if args.out else generator_dir(recipe.world)
    work = Path(args.work) if args.work else out.with_name(f".{out.name}.training")
    summary = train_generator(out, work, seed=args.seed, recipe=recipe, limit=args.limit, vae_from=args.vae_from)
    if args.out is None:  # only the shipped location is recorded in the shipped manifest
        command = "mixq train-mini-generator " + " ".join(shlex.quote(a) for a in args.argv)
        for file in summary["files"]:
            record_asset(file, {"command": command.strip(), "component": Path(file).parent.name,
                                **{k: v for k, v in summary.items() if k != "files"}})
    return {"out": str(out), **summary}


def _cmd_grid(args) -> dict:
    from .experiment import ablation_configs, grid_configs, run_grid

    if args.section == "ablations":
        configs = [c for group in ablation_configs(args.profile).values() for c in group]
    else:
        configs = grid_configs(args.profile, args.section)
    if args.models:
        configs = [c for c in configs if c.model in args.models]
    if args.seeds:
        configs = [c for c in configs if c.seed in args.seeds]
    configs = list(dict.fromkeys(configs))  # ablation factors share their centre cell
    if args.by_seed:  # shortest schedule first, and in it every cell's seed 0 before any seed 1
        configs = sorted(configs, key=lambda c: (c.resolved().iters, c.seed))
    records = run_grid(configs, force=args.force, device=args.device, share=args.share,
                       imagenet_val=args.imagenet_val, imagenet_train=args.imagenet_train)
    return {"profile": args.profile, "section": args.section, "experiments": len(records),
            "results": [{**{k: r["metrics"]["config"][k] for k in ("model", "w_bits", "a_bits", "data", "seed")},
                         "top1": r["metrics"]["top1"], "record": r["config_hash"]} for r in records]}


def _cmd_evaluate(args) -> dict:
    from .experiment import fp_top1

    if args.data:  # a synthetic set: agreement with the prompted classes
        from .analysis import score_synthetic
        from .models import load_model
        from .profiles import load_profile

        model = load_model(load_profile(args.profile), args.model)
        return {"model": args.model, "profile": args.profile, "data": args.data,
                **score_synthetic(model, args.data, topk=args.topk)}
    return fp_top1(args.profile, args.model, limit=args.limit, seed=args.seed, data_root=args.imagenet_val,
                   device=args.device)


def _cmd_reproduce(args) -> dict:
    from .reproduce import reproduce

    ray_options = {k: v for k, v in (("address", args.address), ("shards", args.shards),
                                     ("cpus_per_task", args.cpus_per_task)) if v is not None}
    if ray_options and args.executor != "ray":
        from .errors import ConfigError

        raise ConfigError(f"--{sorted(ray_options)[0].replace('_', '-')} applies to --executor ray only")
    return reproduce(args.profile, notebooks=args.notebooks, skip_book=args.skip_book, strict=args.strict,
                     executor=args.executor, **ray_options)


def _cmd_synthesize(args) -> dict:
    from .experiment import genq_filter
    from .profiles import load_profile
    from .prompts import PromptConfig
    from .synthesis import parse_shard, synthesize_set

    profile = load_profile(args.profile)
    config = PromptConfig(
        strategy=args.strategy, n=args.n or profile["n_synth"], vocabulary=profile["vocabulary"], k=args.k,
        seed=args.seed, templates=tuple(args.template or ()), partners=args.partners, alpha=args.alpha,
        classes=tuple(c.strip() for c in args.classes.split(",")) if args.classes else None,
        overgenerate=args.overgenerate, allow_unbalanced=args.allow_unbalanced)
    model, transform = genq_filter(profile, args.model) if args.model else (None, None)
    return synthesize_set(
        config, args.out, generator=args.generator or profile["generator"], steps=args.steps or profile["steps"],
        guidance=profile["guidance"] if args.guidance is None else args.guidance,
        resolution=args.resolution or profile["resolution"], device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, shard=parse_shard(args.shard), filter_model=model, filter_model_name=args.model,
        exact=args.exact, **({"transform": transform} if transform else {}))


def _cmd_quantize(args) -> dict:
    from .data import make_loader
    from .experiment import default_device, eval_loader, real_data_root
    from .models import atomic_write, evaluate, load_model
    from .profiles import load_profile
    from .quant import QuantConfig, calibration_dataset, quantize

    profile = load_profile(args.profile)
    overrides = {"iters": args.iters, "batch_size": args.batch_size}
    config = QuantConfig(w_bits=args.w_bits, a_bits=args.a_bits, method=args.method, seed=args.seed,
                         compile=not args.no_compile, first_last_8bit=profile.get("first_last_8bit", True),
                         **{k: v for k, v in overrides.items() if v is not None})
    model = load_model(profile, args.model).to(default_device(args.device))
    calib = calibration_dataset(args.data, profile, n=args.n_calib or profile["n_calib"], seed=args.seed,
                                model=model, root=real_data_root("train", args.imagenet_train))
    # The evaluation subset is fixed (seed 0), so runs with different seeds are compared on the same images.
    test = eval_loader(profile, model, args.limit, seed=0, root=args.imagenet_val)
    fp_top1 = evaluate(model, test, desc=f"eval {args.model}")["top1"]
    qmodel, trace = quantize(model, config, make_loader(calib, batch_size=256))
    metrics = evaluate(qmodel, test, desc=f"eval {args.model} W{args.w_bits}A{args.a_bits}")
    if args.trace:  # written only after a successful run, atomically
        atomic_write(args.trace, lambda tmp: Path(tmp).write_text(trace.to_json()))
    units = [{"name": u.name, "kind": u.kind, "iters_per_second": round(u.iters_per_second, 2),
              "loss_before": u.loss_before, "loss_after": u.loss_after} for u in trace.units]
    return {"profile": args.profile, "model": args.model, "data": args.data, "method": config.method,
            "w_bits": config.w_bits, "a_bits": config.a_bits, "iters": config.iters, "seed": config.seed,
            "n_calib": trace.n_calib, "n_eval": metrics["n_images"], "top1": metrics["top1"], "fp_top1": fp_top1,
            "drop": round(fp_top1 - metrics["top1"], 2), "seconds": round(trace.seconds, 1),
            "calibration_seconds": round(trace.calibration_seconds, 1), "units": units}


def _add_track_arguments(parser: argparse.ArgumentParser, train: bool = True) -> None:
    """Where the ImageNet track's real data is, and the device: shared by every command that runs models."""
    parser.add_argument("--imagenet-val", default=None,
                        help="ImageNet val folder, val/<synset>/*.JPEG (imagenet profile; default $MIXQ_IMAGENET_VAL)")
    if train:
        parser.add_argument("--imagenet-train", default=None,
                            help="ImageNet train folder for --data real and the probes (default $MIXQ_IMAGENET_TRAIN)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train-mini", help="train a mini model on Fashion-MNIST and ship it in assets/")
    train.add_argument("model", help="resnet18, mobilenetv2_100 or deit_mini")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    train.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke runs)")
    train.add_argument("--out", default=None, help="write here instead of assets/ (the manifest is then untouched)")
    train.add_argument("--compile", action="store_true",
                       help="torch.compile the training steps (faster, not bit-identical to the eager recipe)")
    train.set_defaults(run=_cmd_train_mini)

    gen = commands.add_parser("train-mini-generator",
                              help="train the mini text-to-image generator (VAE, then UNet) and ship it in assets/")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--vae-steps", type=int, default=None, help="override the recipe's VAE steps")
    gen.add_argument("--unet-steps", type=int, default=None, help="override the recipe's UNet steps")
    gen.add_argument("--pair-share", type=float, default=None,
                     help="share of two-item collage images (default 0.3; 0 = single-class captions only)")
    gen.add_argument("--world", default=None,
                     help="plain (default), gap (restyled training images), polysemy (some class names also caption "
                          "another class) or gap+polysemy; variants ship as assets/mini-generator-<world>")
    gen.add_argument("--polysemy-share", type=float, default=None,
                     help="polysemy worlds: share of a polysemous item's captions that use the borrowed name (0.35)")
    gen.add_argument("--vae-from", default=None, help="reuse this pipeline folder's VAE instead of training one")
    gen.add_argument("--limit", type=int, default=None, help="train on the first N images (smoke runs)")
    gen.add_argument("--out", default=None, help="write here instead of assets/ (the manifest is then untouched)")
    gen.add_argument("--work", default=None, help="resumable training state (default: next to the output)")
    gen.set_defaults(run=_cmd_train_mini_generator)

    evaluate = commands.add_parser("evaluate", help="top-1 of a full-precision model on the profile's test data")
    evaluate.add_argument("--profile", default="mini")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate a fixed random subset of N images")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    _add_track_arguments(evaluate, train=False)
    evaluate.add_argument("--data", default=None, help="score on a synthetic set folder against its prompts instead")
    evaluate.add_argument("--topk", type=int, default=2, help="with --data: k of the all/any-in-top-k shares")
    evaluate.set_defaults(run=_cmd_evaluate)

    reproduce = commands.add_parser("reproduce", help="execute the notebooks with papermill, then build the book")
    reproduce.add_argument("--profile", default="mini")
    reproduce.add_argument("--notebooks", nargs="*", default=None, help="only these notebooks (names or stems)")
    reproduce.add_argument("--skip-book", action="store_true", help="execute the notebooks only")
    reproduce.add_argument("--strict", action="store_true", help="fail the book build on any warning")
    reproduce.add_argument("--executor", default="local",
                           help="local (default: notebooks run here) or ray (the plan and notebooks as Ray tasks)")
    reproduce.add_argument("--address", default=None,
                           help="ray: a running cluster's address (or 'auto'); default: a private local instance")
    reproduce.add_argument("--shards", type=int, default=None, help="ray: tasks per synthetic set (default 2)")
    reproduce.add_argument("--cpus-per-task", type=int, default=None,
                           help="ray, CPU profiles: CPUs and torch threads per task (default: this machine's threads)")
    reproduce.set_defaults(run=_cmd_reproduce)

    synth = commands.add_parser("synthesize", help="generate a calibration set with a text-to-image generator")
    synth.add_argument("--profile", default="mini", help="mini (offline, CPU) or imagenet")
    synth.add_argument("--strategy", required=True, help="single, mixup, mixup-embed or genq")
    synth.add_argument("--n", type=int, default=None, help="images in the set (default: the profile's)")
    synth.add_argument("--out", required=True, help="set folder; a rerun resumes it, another config is refused")
    synth.add_argument("--k", type=int, default=None, help="classes per prompt (mixup strategies; default 2)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--model", default=None, help="genq: the full-precision model whose energy filters")
    synth.add_argument("--partners", default="random", help="mixup partners: random, near or far (text similarity)")
    synth.add_argument("--alpha", type=float, default=1.0, help="mixup-embed: Dirichlet concentration")
    synth.add_argument("--overgenerate", type=int, default=2, help="genq: candidates per kept image")
    synth.add_argument("--classes", default=None, help="comma-separated class names or ids to draw from")
    synth.add_argument("--template", action="append", default=None,
                       help="prompt template with {c1}..{ck} (repeatable; one drawn per prompt)")
    synth.add_argument("--allow-unbalanced", action="store_true", help="accept n not a multiple of the classes")
    synth.add_argument("--generator", default=None, help="pipeline name, hub id or folder (default: the profile's)")
    synth.add_argument("--steps", type=int, default=None)
    synth.add_argument("--guidance", type=float, default=None)
    synth.add_argument("--resolution", type=int, default=None)
    synth.add_argument("--batch-size", type=int, default=8)
    synth.add_argument("--exact", action="store_true",
                       help="one image per pipeline call: same pixels at any batch size (~5x slower on 2 CPU cores)")
    synth.add_argument("--shard", default="0/1", help="i/n: generate every n-th image from the i-th")
    synth.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    synth.add_argument("--dtype", default=None, help="float16, bfloat16 or float32 (default: fp16 on cuda)")
    synth.set_defaults(run=_cmd_synthesize)

    grid = commands.add_parser("grid", help="run (or reuse) a profile's experiment grid, one result record each")
    grid.add_argument("--profile", default="mini")
    grid.add_argument("--section", default="grid_cnn", help="grid_cnn, grid_vit or ablations")
    grid.add_argument("--models", nargs="*", default=None, help="only these models of the grid")
    grid.add_argument("--seeds", nargs="*", type=int, default=None, help="only these seeds")
    grid.add_argument("--force", action="store_true", help="rerun experiments whose record exists")
    grid.add_argument("--by-seed", action="store_true",
                      help="shortest schedule first, and in it every cell's seed 0, then seed 1, ...")
    grid.add_argument("--share", action="store_true",
                      help="work beside other `mixq grid --share` processes: skip what another one is running")
    _add_track_arguments(grid)
    grid.set_defaults(run=_cmd_grid)

    quant = commands.add_parser("quantize", help="PTQ of a model, calibrated on real, noise or synthetic images")
    quant.add_argument("--profile", default="mini")
    quant.add_argument("--model", required=True)
    quant.add_argument("--w-bits", type=int, default=4)
    quant.add_argument("--a-bits", type=int, default=4)
    quant.add_argument("--data", default="real", help="real, noise, or the folder of a synthetic set")
    quant.add_argument("--method", default="qdrop", help="rtn, adaround, brecq or qdrop")
    quant.add_argument("--iters", type=int, default=None, help="steps per block (default: QDrop's 20000)")
    quant.add_argument("--batch-size", type=int, default=None, help="calibration images per step (default 32)")
    quant.add_argument("--n-calib", type=int, default=None, help="calibration images (default: the profile's)")
    quant.add_argument("--seed", type=int, default=0)
    quant.add_argument("--limit", type=int, default=None, help="evaluate a fixed random subset of N test images")
    quant.add_argument("--trace", default=None, help="write the reconstruction trace (JSON) to this file")
    quant.add_argument("--no-compile", action="store_true", help="run AdaRound eagerly (no torch.compile)")
    _add_track_arguments(quant)
    quant.set_defaults(run=_cmd_quantize)
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
