"""GPU speed of the ImageNet track: synthesis at Stable Diffusion v1.5's size and QDrop reconstruction.

    bash benchmarks/gpu.sh                 # on a CUDA machine; prints two tables, writes --json if given
    python benchmarks/gpu.py --quick --device cpu   # the same code on tiny sizes (a smoke run, seconds)

Nothing is downloaded. Speed does not depend on the weights' values, so every network is built with
random weights from configs in the repository:

- **Synthesis**: a ``StableDiffusionPipeline`` assembled from ``benchmarks/sd15/*.json`` (SD v1.5's
  UNet, VAE and CLIP ViT-L/14 text tower: 860 M + 84 M + 123 M parameters), fp16, DPM-Solver++ with
  25 steps at 512 px, guidance 7.5, run through :func:`mixq_core.synthesis.synthesize` (per-image seeds,
  PNG writing included), i.e. exactly what the ``imagenet`` profile does. Images per second after one
  warm-up batch.
- **QDrop**: random-init timm ``resnet18`` and ``deit_small_patch16_224`` at 224 px, W2A4, 1024
  Gaussian calibration images, ``--iters`` steps per block; iterations per second per unit and peak
  GPU memory, then the projected time of QDrop's full 20 000 steps per block. The same
  reconstruction on the CPU (a few steps per unit, fewer images) gives the speed-up of the GPU path.

Targets on an H100: at least 10 images/s synthesis; a full 20 000-step QDrop run of resnet18 projected
at 15 min or less.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from mixq_core.prompts import PromptConfig, make_prompts
from mixq_core.quant import QuantConfig, quantize
from mixq_core.synthesis import synthesize

SD15_CONFIGS = Path(__file__).resolve().parent / "sd15"
FULL_ITERS = 20_000  # QDrop's published steps per block
TARGETS = {"synthesis_images_per_second": 10.0, "resnet18_projected_minutes": 15.0}


def synthesis_speed(device: str, quick: bool, batch_size: int, batches: int) -> dict:
    """Images per second of the SD v1.5-shaped pipeline (tiny random pipeline with ``quick``)."""
    from mixq_core.testing import random_sd_pipeline, tiny_sd_pipeline

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    pipe = tiny_sd_pipeline("clip") if quick else random_sd_pipeline(SD15_CONFIGS)
    pipe = pipe.to(device, dtype)
    steps, resolution = (2, 32) if quick else (25, 512)
    records = make_prompts(PromptConfig(strategy="mixup", n=1000, vocabulary="imagenet-1k", seed=0))
    with tempfile.TemporaryDirectory() as out:
        warm = synthesize(pipe, records[:batch_size], Path(out) / "warm-up", steps=steps, guidance=7.5,
                          resolution=resolution, batch_size=batch_size)
        _sync(device)
        start = time.perf_counter()
        timed = synthesize(pipe, records[batch_size:batch_size * (batches + 1)], Path(out) / "timed", steps=steps,
                           guidance=7.5, resolution=resolution, batch_size=batch_size)
        _sync(device)
        seconds = time.perf_counter() - start
    return {"device": _device_name(device), "dtype": str(dtype).removeprefix("torch."), "steps": steps,
            "resolution": resolution, "batch_size": batch_size, "images": timed["generated"],
            "seconds": round(seconds, 2), "images_per_second": round(timed["generated"] / seconds, 2),
            "warm_up_seconds": warm["seconds"]}


def qdrop_speed(model_name: str, device: str, iters: int, n_calib: int) -> dict:
    """QDrop W2A4 on a random-init timm model: per-unit iterations/s, peak memory, projected full run."""
    import timm
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = timm.create_model(model_name, pretrained=False).eval().to(device)
    size = model.pretrained_cfg["input_size"][-1]
    images = torch.randn(n_calib, 3, size, size)
    loader = DataLoader(TensorDataset(images, torch.zeros(n_calib, dtype=torch.long)), batch_size=256)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    config = QuantConfig(w_bits=2, a_bits=4, method="qdrop", iters=iters, seed=0)
    start = time.perf_counter()
    _, trace = quantize(model, config, loader)
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    units = [{"name": u.name, "kind": u.kind, "iters_per_second": round(u.iters_per_second, 1)} for u in trace.units]
    # A full run repeats every unit's loop at FULL_ITERS steps; caching and calibration cost the same.
    loop_seconds = sum(u.seconds for u in trace.units)
    projected = seconds - loop_seconds + sum(FULL_ITERS / u.iters_per_second for u in trace.units)
    return {"model": model_name, "device": _device_name(device), "image_size": size, "n_calib": n_calib,
            "iters": iters, "seconds": round(seconds, 1), "calibration_seconds": round(trace.calibration_seconds, 1),
            "mean_iters_per_second": round(sum(u["iters_per_second"] for u in units) / len(units), 1),
            "projected_full_run_minutes": round(projected / 60, 1),
            "peak_memory_gib": round(peak, 2) if peak is not None else None,
            "units": units}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    parser.add_argument("--batch-size", type=int, default=None, help="synthesis batch (default: by GPU memory)")
    parser.add_argument("--batches", type=int, default=4, help="timed synthesis batches")
    parser.add_argument("--iters", type=int, default=300, help="QDrop steps per unit on the GPU")
    parser.add_argument("--cpu-iters", type=int, default=10, help="QDrop steps per unit for the CPU comparison")
    parser.add_argument("--models", nargs="*", default=["resnet18", "deit_small_patch16_224"])
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu.py: no CUDA device here; run it on a GPU machine, or pass --device cpu --quick")
    models = ["test_resnet", "test_vit"] if args.quick else args.models
    if args.batch_size is None:  # 512-px fp16 SD v1.5 with guidance: ~1.2 GiB per image in flight at batch 16
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if args.device.startswith("cuda") else 0
        args.batch_size = 2 if args.quick else (32 if memory > 60 else 16 if memory > 30 else 8)

    report = {"torch": torch.__version__, "synthesis": synthesis_speed(args.device, args.quick, args.batch_size,
                                                                        args.batches)}
    gpu_iters, n_calib = (3, 16) if args.quick else (args.iters, 1024)
    report["qdrop"] = [qdrop_speed(m, args.device, gpu_iters, n_calib) for m in models]
    report["qdrop_cpu"] = [qdrop_speed(m, "cpu", min(args.cpu_iters, gpu_iters), 64) for m in models]

    s = report["synthesis"]
    print(f"\nSynthesis ({s['device']}, {s['dtype']}, {s['resolution']} px, {s['steps']} DPM-Solver++ steps, "
          f"batch {s['batch_size']}): {s['images_per_second']} images/s over {s['images']} images "
          f"(target >= {TARGETS['synthesis_images_per_second']} on an H100)")
    print("\n| model | device | steps/unit | mean it/s | peak GiB | projected 20k-step run (min) | CPU it/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for gpu, cpu in zip(report["qdrop"], report["qdrop_cpu"], strict=True):
        ratio = gpu["mean_iters_per_second"] / cpu["mean_iters_per_second"]
        print(f"| {gpu['model']} | {gpu['device']} | {gpu['iters']} | {gpu['mean_iters_per_second']} | "
              f"{gpu['peak_memory_gib']} | {gpu['projected_full_run_minutes']} | {cpu['mean_iters_per_second']} | "
              f"{ratio:.1f}x |")
    print(f"\nTarget: resnet18's full run <= {TARGETS['resnet18_projected_minutes']} min on an H100.")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
