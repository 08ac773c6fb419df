"""CPU time per reconstruction step of every unit of a mini model: where a long-schedule run spends its time.

    python benchmarks/unit_steps.py [--model resnet18] [--bits W2A4] [--iters 60] [--json out.json]

QDrop, 1024 Fashion-MNIST training images, one torch thread, the shipped weights. Each unit is first
reconstructed for a few steps (torch.compile's graphs and the caches warm up), then, from a freshly
calibrated model, for ``--iters`` steps timed with ``time.process_time`` (process CPU time: less sensitive
than wall time to other work on the machine, though a shared CPU still shows). A run's reconstruction time is
about ``iters per unit × the sum`` printed at the end. The load average is printed beside the figures:
compare two versions of the engine on a machine with the same load, or better, an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from mixq_core.data import fashion_mnist_tensors, normalize_mini
from mixq_core.models import MINI_MODELS, load_mini_model
from mixq_core.quant import QuantConfig, reconstruct

WARMUP_STEPS = 5


def unit_step_times(model_name: str, w_bits: int, a_bits: int, iters: int) -> dict[str, float]:
    """Unit name → CPU milliseconds per reconstruction step."""
    model = load_mini_model(model_name)
    images = normalize_mini(fashion_mnist_tensors("train")[0][:1024])
    config = QuantConfig(w_bits=w_bits, a_bits=a_bits, method="qdrop", iters=iters, seed=0, probe_every=0)
    warmup = QuantConfig(w_bits=w_bits, a_bits=a_bits, method="qdrop", iters=WARMUP_STEPS, seed=0, probe_every=0)
    recipe = reconstruct.METHODS["qdrop"]
    calibrated = reconstruct.prepare(model, config, images)
    times = {}
    for unit in reconstruct.find_units(calibrated, images[:2], recipe.unit):
        data = reconstruct.cache_unit_data(calibrated, unit.module, images, config.cache_batch, False)
        reconstruct.reconstruct_unit(unit, data, warmup, recipe, 0)
        # the warm-up trained this unit's rounding: time the same unit of a fresh copy, on the same cached data
        fresh = reconstruct.prepare(model, config, images)
        timed = {u.name: u for u in reconstruct.find_units(fresh, images[:2], recipe.unit)}[unit.name]
        start = time.process_time()
        reconstruct.reconstruct_unit(timed, data, config, recipe, 0)
        times[unit.name] = 1000 * (time.process_time() - start) / iters
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18", choices=sorted(MINI_MODELS))
    parser.add_argument("--bits", default="W2A4", help="WxAy, for example W2A4")
    parser.add_argument("--iters", type=int, default=60, help="timed steps per unit")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    w_bits, a_bits = (int(part) for part in args.bits.upper().lstrip("W").split("A"))
    torch.set_num_threads(1)
    times = unit_step_times(args.model, w_bits, a_bits, args.iters)
    load = os.getloadavg()[0]
    print(f"{'unit':<20} {'CPU ms/step':>11}")
    for name, ms in times.items():
        print(f"{name:<20} {ms:>11.2f}")
    print(f"{'sum':<20} {sum(times.values()):>11.2f}   ({args.model} {args.bits}, load average {load:.1f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "bits": args.bits, "iters": args.iters, "load_average": load,
                       "ms_per_step": times, "sum": sum(times.values())}, handle, indent=1)


if __name__ == "__main__":
    main()
