"""Quality and speed of the mini generator, judged by the shipped resnet18.

    python benchmarks/generator_quality.py [--generator mini] [--steps 25 15] [--guidance 3]
        [--label collages] [--record] [--gallery book/figures/mini_generator_gallery.png]
    python benchmarks/generator_quality.py --ceiling [--record]

For each number of solver steps it prints one JSON line: single-class agreement (100 images
per class), Fréchet distance in the judge's penultimate features (1000 generated vs 1000
real test images, and real train vs real test as the floor), two-class agreement (judge's
top-2 holds both / at least one prompted class; also judged item by item) and sampling throughput
with guidance. ``--polysemy`` adds, for each polysemous class name of the generator worlds, the
share of its single-class images the judge puts in its own class and in the other concept.

``--ceiling`` measures the judge alone: its two-class scores on real test items put into one picture in
several ways (side by side as the training collages, overlapping at full size, blended), 400 pictures
per design. No drawing of two items can expect more from this judge than the best of these.

``--record`` stores the figures in assets/manifest.json under ``generator_quality.<label>``,
so the shipped generator and its ablation (trained without collages) sit side by side.
Run it on an otherwise idle machine: the throughput is wall-clock (each run records the 1-minute load
average after sampling, so a busy machine shows).
"""

import argparse
import json
import os
import shlex
from pathlib import Path

import torch

from mixq_core.generator import gallery
from mixq_core.generator_quality import generator_quality, judge_pair_ceiling, polysemy_split
from mixq_core.models import load_mini_model, read_assets_manifest, record_manifest_section
from mixq_core.prompts import FASHION_MNIST_PROMPT_NAMES
from mixq_core.synthesis import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="mini", help="mini or a pipeline folder")
    parser.add_argument("--steps", type=int, nargs="+", default=[25])
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--label", default=None, help="name of this generator in the manifest (with --record)")
    parser.add_argument("--record", action="store_true", help="store the figures in assets/manifest.json")
    parser.add_argument("--gallery", default=None, help="write a gallery PNG of the first --steps value here")
    parser.add_argument("--polysemy", action="store_true",
                        help="also: what prompts for the polysemous class names draw (own class vs the other concept)")
    parser.add_argument("--ceiling", action="store_true",
                        help="only the judge's two-class scores on real two-item pictures (no generator)")
    args = parser.parse_args()
    if args.ceiling:
        ceiling(args.record)
        return
    if args.record and not args.label:
        parser.error("--record needs --label")
    torch.manual_seed(0)
    pipe = load_pipeline(args.generator)
    judge = load_mini_model("resnet18")
    results = []
    for steps in args.steps:
        report = generator_quality(pipe, judge, steps=steps, guidance=args.guidance, per_class=args.per_class,
                                   pair_prompts=args.pairs, batch_size=args.batch_size)
        images = report.pop("images")
        report["load_average"] = round(os.getloadavg()[0], 2)  # above the torch threads: the CPU was shared
        if args.polysemy:
            report["polysemy_split"] = polysemy_split(pipe, judge, steps=steps, guidance=args.guidance,
                                                      per_word=args.per_class, batch_size=args.batch_size)
        print(json.dumps({"generator": args.generator, "label": args.label, **report}), flush=True)
        results.append(report)
        if args.gallery and steps == args.steps[0]:
            write_gallery(images, Path(args.gallery))
    if args.record:  # runs at other (steps, guidance) already recorded for this label are kept
        previous = read_assets_manifest().get("generator_quality", {}).get(args.label, {})
        command = "python benchmarks/generator_quality.py " + shlex.join(_argv())
        for run in results:
            run["command"] = command
        new = {(r["steps"], r["guidance"]) for r in results}
        kept = [r for r in previous.get("runs", []) if (r["steps"], r["guidance"]) not in new]
        runs = sorted(kept + results, key=lambda r: (r["guidance"], -r["steps"]))
        record_manifest_section("generator_quality", args.label, {
            "generator": str(args.generator), "judge": "resnet18 (shipped)", "runs": runs})


def ceiling(record: bool, pictures: int = 400) -> None:
    designs = judge_pair_ceiling(load_mini_model("resnet18"), n=pictures)
    for design, scores in designs.items():
        print(json.dumps({"design": design, **scores}), flush=True)
    if record:
        record_manifest_section("judge_pair_ceiling", "resnet18 (shipped)", {
            "pictures_per_design": pictures, "seed": 0, "designs": designs,
            "command": "python benchmarks/generator_quality.py " + shlex.join(_argv())})


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


def write_gallery(images: dict, path: Path) -> None:
    """One row of 8 single-class images per class, then 24 two-class images."""
    singles = images["single"]
    rows = []
    for c in range(len(FASHION_MNIST_PROMPT_NAMES)):
        rows += [pair for pair in singles if pair[0].classes[0] == c][:8]
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = gallery(rows, columns=8, title_of=lambda r: FASHION_MNIST_PROMPT_NAMES[r.classes[0]])
    figure.savefig(path.with_name(path.stem + "_single.png"), dpi=120)
    names = FASHION_MNIST_PROMPT_NAMES
    figure = gallery(images["pairs"][:24], columns=8, title_of=lambda r: " + ".join(names[c] for c in r.classes))
    figure.savefig(path.with_name(path.stem + "_pairs.png"), dpi=120)
    print(f"galleries: {path.with_name(path.stem + '_single.png')}, {path.with_name(path.stem + '_pairs.png')}")


if __name__ == "__main__":
    main()
