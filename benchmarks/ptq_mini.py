"""PTQ of the three mini models with real calibration data: top-1, drop from float, time, speed per block type.

    python benchmarks/ptq_mini.py [--iters 2000] [--bits W4A4 W2A4] [--models resnet18 ...] [--device cuda]

Each run: 1024 Fashion-MNIST training images (seed 0), QDrop, ``--iters`` steps per block, evaluated on
the 10 000 test images. Prints one table of results (with the issue's targets) and one of
reconstruction speed (iterations per second) per block type. Not a test: run it on an idle
machine, since the times are the point (each row records the load average, so a shared CPU shows).
``--json`` saves the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import torch

from mixq_core.data import fashion_mnist, make_loader, subset
from mixq_core.models import atomic_write, evaluate, load_mini_model
from mixq_core.quant import QuantConfig, quantize
from mixq_core.results import provenance

MODELS = ("resnet18", "mobilenetv2_100", "deit_mini")
# Largest accepted drop in top-1 points (the targets); None: no target.
TARGETS = {("resnet18", "W4A4"): 1.5, ("mobilenetv2_100", "W4A4"): 3.0, ("deit_mini", "W4A4"): 3.0,
           ("resnet18", "W2A4"): 6.0}


def parse_bits(text: str) -> tuple[int, int]:
    """``"W2A4"`` → ``(2, 4)``."""
    weights, activations = text.upper().removeprefix("W").split("A")
    return int(weights), int(activations)


def run(model_name: str, bits: str, args, test_loader, calib_loader) -> dict:
    """Quantize one model at one bit width; return its row (top-1, drop, seconds, unit speeds)."""
    device = torch.device(args.device)
    model = load_mini_model(model_name).to(device)
    w_bits, a_bits = parse_bits(bits)
    config = QuantConfig(w_bits=w_bits, a_bits=a_bits, method=args.method, iters=args.iters, seed=args.seed,
                         compile=not args.no_compile)
    fp_top1 = evaluate(model, test_loader, desc=f"float {model_name}")["top1"]
    start = time.perf_counter()
    qmodel, trace = quantize(model, config, calib_loader)
    seconds = time.perf_counter() - start
    top1 = evaluate(qmodel, test_loader, desc=f"{bits} {model_name}")["top1"]
    speeds = defaultdict(list)
    for unit in trace.units:
        speeds[unit.kind].append(unit.iters_per_second)
    return {"model": model_name, "bits": bits, "fp_top1": fp_top1, "top1": top1, "drop": fp_top1 - top1,
            "seconds": seconds, "calibration_seconds": trace.calibration_seconds,
            "target": TARGETS.get((model_name, bits)), "threads": torch.get_num_threads(),
            # the vector instructions PyTorch's CPU kernels use (AVX2, AVX512): times differ a lot between them
            "cpu_capability": torch.backends.cpu.get_cpu_capability() if args.device == "cpu" else None,
            # 1-minute load average at the end: above `threads` means other work shared the CPU during the run
            "load_average": round(os.getloadavg()[0], 2),
            "iters_per_second": {kind: sum(v) / len(v) for kind, v in speeds.items()},
            "made": provenance()}  # the commit, processor and time that a figure belongs to


def print_tables(rows: list[dict], args) -> None:
    print(f"\nQDrop, {args.n_calib} real calibration images, {args.iters} iterations per block, seed {args.seed}, "
          f"device {args.device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
          f"compile={'off' if args.no_compile else 'on'}")
    print(f"{'model':<16} {'bits':<5} {'FP top-1':>8} {'top-1':>7} {'drop':>6} {'target':>7} {'seconds':>8} "
          f"{'(calib)':>8} {'load':>5}")
    for row in rows:
        target = "" if row["target"] is None else f"≤{row['target']:.1f}" + (" ✓" if row["drop"] <= row["target"]
                                                                            else " ✗")
        print(f"{row['model']:<16} {row['bits']:<5} {row['fp_top1']:>8.2f} {row['top1']:>7.2f} {row['drop']:>6.2f} "
              f"{target:>7} {row['seconds']:>8.1f} {row['calibration_seconds']:>8.1f} {row['load_average']:>5.2f}")
    print("\nreconstruction iterations per second, per block type (mean over the model's blocks of that type)")
    print(f"{'model':<16} {'bits':<5} {'block type':<24} {'it/s':>8}")
    for row in rows:
        for kind, speed in row["iters_per_second"].items():
            print(f"{row['model']:<16} {row['bits']:<5} {kind:<24} {speed:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--bits", nargs="+", default=["W4A4", "W2A4"])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--method", default="qdrop")
    parser.add_argument("--n-calib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="evaluate on a fixed subset of N test images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    test_loader = make_loader(subset(fashion_mnist("test"), args.limit, seed=0), batch_size=500)
    calib_loader = make_loader(subset(fashion_mnist("train"), args.n_calib, seed=args.seed), batch_size=256)
    rows = []
    for model_name in args.models:
        for bits in args.bits:
            rows.append(run(model_name, bits, args, test_loader, calib_loader))
            print(json.dumps(rows[-1]), flush=True)
    print_tables(rows, args)
    if args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1) + "\n"))


if __name__ == "__main__":
    main()
