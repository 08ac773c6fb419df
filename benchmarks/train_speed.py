"""Training speed of the mini models on this machine: steps/s and the projected time of a full recipe.

    python benchmarks/train_speed.py [--steps 30] [--compile] [--models resnet18 resnet18_mix ...]

Runs a few training steps of each recipe (same batch size, autocast, memory format, loss and, for the
mix-trained twins, the same timm Mixup/CutMix of every batch as `mixq train-mini`) on random data and
prints one row per model. Run it on an otherwise idle machine: the time recorded in
assets/manifest.json is the wall time of the real run, whatever else shared the CPU then.
``--compile`` times the steps through ``torch.compile`` as ``mixq train-mini --compile`` runs them
(compilation itself is excluded; it takes under a minute).
"""

import argparse
import time

import torch

from mixq_core.models import TRAIN_RECIPES, create_mini_model, mixer, training_loss

TRAIN_IMAGES = 60_000


def steps_per_second(name: str, steps: int, compile: bool = False) -> float:
    recipe = TRAIN_RECIPES[name]
    model = create_mini_model(name).to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(recipe["batch_size"], 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (recipe["batch_size"],))
    mix = mixer(recipe.get("mixing"), seed=0)
    for i in range(steps + 3):  # 3 warm-up steps
        if i == 3:
            start = time.perf_counter()
        images, targets = mix(x, y) if mix is not None else (x, y)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe["bf16"]):
            loss = training_loss(forward(images.contiguous(memory_format=torch.channels_last)), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="torch.compile the training steps")
    parser.add_argument("--models", nargs="+", choices=sorted(TRAIN_RECIPES), default=list(TRAIN_RECIPES),
                        help="the recipes to time (default: all)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {'compiled' if args.compile else 'eager'}")
    print(f"{'model':<16} {'steps/s':>8} {'epochs':>6} {'projected min':>13}")
    for name in args.models:
        recipe = TRAIN_RECIPES[name]
        rate = steps_per_second(name, args.steps, args.compile)
        total_steps = recipe["epochs"] * (TRAIN_IMAGES // recipe["batch_size"])
        print(f"{name:<16} {rate:8.2f} {recipe['epochs']:6d} {total_steps / rate / 60:13.1f}")


if __name__ == "__main__":
    main()
