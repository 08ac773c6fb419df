"""CPU time per reconstruction step of chosen blocks, with and without the single-position convolution.

    python benchmarks/reconstruction_step.py [--blocks layer4.0 layer4.1] [--iters 150] [--repeats 2]

resnet18 (shipped), W2A4, QDrop, 1024 Fashion-MNIST training images, one torch thread. Each block is
reconstructed for ``--iters`` steps twice: with convolutions whose output is 1×1 run as one patch times the
flattened weight (``quant.modules.conv_to_single_position``, the default on a CPU), and with the
convolution kernel (oneDNN). Prints milliseconds of process CPU time per step (``time.process_time``:
less sensitive than wall time to other work on the machine, though a shared CPU still shows) and wall time.
"""

from __future__ import annotations

import argparse
import time

import torch

from mixq_core.data import fashion_mnist_tensors, normalize_mini
from mixq_core.models import load_mini_model
from mixq_core.quant import QuantConfig, modules, reconstruct


def step_times(model, images: torch.Tensor, blocks: list[str], iters: int) -> dict[str, tuple[float, float]]:
    """Block name → (CPU ms per step, wall ms per step), each block reconstructed from a fresh calibrated model."""
    config = QuantConfig(w_bits=2, a_bits=4, method="qdrop", iters=iters, seed=0, probe_every=0)
    qmodel = reconstruct.prepare(model, config, images)
    units = {unit.name: unit for unit in reconstruct.find_units(qmodel, images[:2], "block")}
    times = {}
    for name in blocks:
        data = reconstruct.cache_unit_data(qmodel, units[name].module, images, config.cache_batch, False)
        cpu, wall = time.process_time(), time.perf_counter()
        reconstruct.reconstruct_unit(units[name], data, config, reconstruct.METHODS["qdrop"], 0)
        times[name] = (1000 * (time.process_time() - cpu) / iters, 1000 * (time.perf_counter() - wall) / iters)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", nargs="+", default=["layer4.0", "layer4.1"])
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_mini_model("resnet18")
    images = normalize_mini(fashion_mnist_tensors("train")[0][:1024])
    single_position = modules.single_position_output
    print(f"{'repeat':>6}  {'convolution':<16} {'block':<9} {'CPU ms/step':>11} {'wall ms/step':>12}")
    for repeat in range(args.repeats):
        for variant in ("kernel", "single-position"):
            modules.single_position_output = single_position if variant == "single-position" else (lambda x, c: False)
            for block, (cpu, wall) in step_times(model, images, args.blocks, args.iters).items():
                print(f"{repeat:>6}  {variant:<16} {block:<9} {cpu:>11.1f} {wall:>12.1f}")
    modules.single_position_output = single_position


if __name__ == "__main__":
    main()
