"""A real-size dry run of the ImageNet track: the `imagenet` profile's code at the sizes a GPU user runs, with
random weights and a fake ImageNet tree, so that shapes, dtypes, transforms and memory at real size fail here
rather than on a user's GPU.

    python benchmarks/dry_run.py [--device cpu|cuda] [--json FILE]     # ~10 min on 2 busy CPU cores

Nothing is downloaded. A profile extends `imagenet` and changes only what cannot exist offline or would take
hours on a CPU: random weights (timm's ``resnet50`` and ``deit_small_patch16_224``, and Stable Diffusion v1.5's
exact UNet, VAE and CLIP text encoder built from ``benchmarks/sd15``), 2 solver steps instead of 25, 8
calibration images and 2 QDrop steps per unit. Then:

1. **synthesis**: a 2-image mixup set at 512 px, made by ``experiment.synthetic_set`` as the profile's runs make
   theirs (prompts, per-image seeds, DPM-Solver++, PNGs with their manifest); each model's timm eval
   transform turns its images into 224-px float tensors;
2. **quantization**, per model: ``experiment.run`` on the fake ImageNet tree (JPEGs of ImageNet's typical
   500×375 size): W2A4 QDrop with real-image calibration and probes, evaluation, a result record.

Each stage prints its wall time and the peak memory so far (the process's resident set; with ``--device cuda``
also the GPU's peak for the stage).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout, installed or not

from mixq_core import experiment  # noqa: E402
from mixq_core.models import load_model  # noqa: E402
from mixq_core.profiles import load_profile, write_profile  # noqa: E402
from mixq_core.testing import random_sd_pipeline  # noqa: E402

SD15_CONFIGS = REPO / "benchmarks" / "sd15"
SYNSETS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # ImageNet-1k classes 0..3
MODELS = ["resnet50", "deit_small_patch16_224"]
PROFILE = "imagenet-dry-run"


def fake_imagenet(root: Path, per_class: int, seed: int) -> Path:
    """``root/<synset>/*.JPEG``: ``per_class`` noise JPEGs of ImageNet's typical 500×375 size per class."""
    rng = np.random.default_rng(seed)
    for synset in SYNSETS:
        (root / synset).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / synset / f"{synset}_{i:04d}.JPEG", quality=90)
    return root


def peak_rss_gib() -> float:
    """The process's largest resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Stages:
    """Times stages and notes the memory peak after each; prints one line per stage."""

    def __init__(self, device: str):
        self.device = device
        self.rows: list[dict] = []

    def run(self, name: str, work):
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = work()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        gpu_peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.device.startswith("cuda") else None
        row = {"stage": name, "seconds": round(time.perf_counter() - start, 1),
               "peak_rss_gib": round(peak_rss_gib(), 2), "peak_gpu_gib": gpu_peak}
        self.rows.append(row)
        gpu = f", GPU peak {row['peak_gpu_gib']} GiB" if row["peak_gpu_gib"] is not None else ""
        print(f"{name}: {row['seconds']} s, peak memory so far {row['peak_rss_gib']} GiB{gpu}", flush=True)
        return result


def check_calibration_images(dataset) -> None:
    """Every image a 224-px float32 tensor, finite: what QDrop receives from the set."""
    for index in range(len(dataset)):
        image = dataset[index][0]
        if image.shape != (3, 224, 224) or image.dtype != torch.float32 or not torch.isfinite(image).all():
            raise AssertionError(f"calibration image {index}: {tuple(image.shape)} {image.dtype}, expected "
                                 "(3, 224, 224) float32, finite")


def dry_run(work: Path, device: str, compile: bool = True) -> dict:
    """Run every stage in folder ``work``; return the report (stages, records' key figures, totals)."""
    start = time.perf_counter()
    stages = Stages(device)
    val = fake_imagenet(work / "val", per_class=4, seed=1)
    train = fake_imagenet(work / "train", per_class=4, seed=2)
    write_profile(PROFILE, work / "profiles", extends="imagenet", models=MODELS, weights="timm-random",
                  pretrained_tags={}, generator="stable-diffusion-v1-5-random-weights", steps=2, classes=[0, 1],
                  n_synth=2, n_calib=8, iters=2, synthesis_batch_size=2, eval_batch_size=8, loader_workers=0,
                  probe_images=4, quant_compile=compile)
    results = work / "results"

    pipe = stages.run("build SD v1.5 (random weights)", lambda: random_sd_pipeline(SD15_CONFIGS).to(device))
    generated = experiment.ExperimentConfig(profile=PROFILE, model=MODELS[0], w_bits=2, a_bits=4, data="mixup",
                                            n_calib=2)
    made = stages.run("synthesis: 2 images, 512 px, 2 steps",
                      lambda p=pipe: experiment.synthetic_set(generated, results, pipe=p, device=device))
    if not made["complete"]:
        raise AssertionError(f"the set in {made['out']} is incomplete")
    del pipe
    report = {"device": device, "torch": torch.__version__, "set": made["out"], "runs": []}
    for name in MODELS:
        model = load_model(load_profile(PROFILE), name).to(device)
        calib, _ = experiment.calibration_data(experiment.ExperimentConfig(**{**generated.to_dict(), "model": name}),
                                               model, results)
        stages.run(f"{name}: the set through its eval transform", lambda c=calib: check_calibration_images(c))
        del model
        config = experiment.ExperimentConfig(profile=PROFILE, model=name, w_bits=2, a_bits=4, data="real", n_calib=8,
                                             iters=2)
        record = stages.run(f"{name}: QDrop W2A4, 2 steps per unit on 8 images, evaluation",
                            lambda c=config: experiment.run(c, results_dir=results, imagenet_val=val,
                                                            imagenet_train=train, device=device))["metrics"]
        report["runs"].append({"model": name, "units": len(record["units"]), "n_calib": record["n_calib"],
                               "n_eval": record["n_eval"], "top1": record["top1"],
                               "cache": sorted({u["cache"] for u in record["units"]}),
                               "quantize_seconds": record["seconds"]["quantize_seconds"]})
    report["stages"] = stages.rows
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["peak_rss_gib"] = round(peak_rss_gib(), 2)
    print(f"\ndry run: {report['seconds']} s wall time, peak memory {report['peak_rss_gib']} GiB (resident set)")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    parser.add_argument("--no-compile", action="store_true", help="run reconstruction eagerly (no torch.compile)")
    parser.add_argument("--keep", default=None,
                        help="work in this new folder and keep it (default: a temporary folder, deleted at the end)")
    args = parser.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        report = dry_run(Path(args.keep), args.device, compile=not args.no_compile)
    else:
        with tempfile.TemporaryDirectory(prefix="mixq-dry-run-") as work:
            report = dry_run(Path(work), args.device, compile=not args.no_compile)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
