"""Model construction, the mini models' training, and checkpoint I/O (safetensors only).

The ``mini`` track uses three timm architectures at 32×32 input for the 10 Fashion-MNIST
classes (:data:`MINI_MODELS`). Their trained weights ship in ``assets/`` as fp16
safetensors, each listed in ``assets/manifest.json`` with its sha256, the command that
made it and its measured test top-1; :func:`load_mini_model` refuses a file whose hash
differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import (
    BrokenFileError,
    ChecksumError,
    ConfigError,
    DatasetNotFoundError,
    MixQError,
    UnknownNameError,
    WeightsUnavailableError,
    unknown_name,
)
from .progress import progress
from .shipped import checkout, default_assets_dir, missing_error
from .validate import check_output_dir, read_json

ASSETS_DIR = Path(os.environ.get("MIXQ_ASSETS") or default_assets_dir())  # the checkout's, or the fetched copy
MANIFEST_NAME = "manifest.json"
MINI_NUM_CLASSES = 10
MINI_IMAGE_SIZE = 32


def _resnet18(num_classes: int) -> nn.Module:
    import timm

    return timm.create_model("resnet18", pretrained=False, num_classes=num_classes)


def _mobilenetv2_100(num_classes: int) -> nn.Module:
    import timm

    return timm.create_model("mobilenetv2_100", pretrained=False, num_classes=num_classes)


def _deit_mini(num_classes: int) -> nn.Module:
    """A DeiT-tiny-shaped ViT on 4×4 patches of a 32×32 image: 64 tokens + class token.

    DeiT-tiny's width and heads (192, 3); 4 blocks instead of 12 and MLP ratio 2 instead of 4,
    because DeiT-tiny costs 6.5 min per Fashion-MNIST epoch on a 2-core CPU and this one 3.4,
    which buys the epochs a ViT trained from scratch needs within the training budget. The blocks are timm's own
    ``Block`` modules, so everything that handles a DeiT handles this model.
    """
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=MINI_IMAGE_SIZE, patch_size=4, embed_dim=192, depth=4, num_heads=3,
                             mlp_ratio=2.0, num_classes=num_classes)


MINI_MODELS: dict[str, Callable[[int], nn.Module]] = {
    "resnet18": _resnet18,
    "mobilenetv2_100": _mobilenetv2_100,
    "deit_mini": _deit_mini,
    # The same architectures trained on mixed pictures (timm's Mixup and CutMix, see MIXING), like the ImageNet
    # weights the `imagenet` profile uses: a classifier that has seen two classes in one picture.
    "resnet18_mix": _resnet18,
    "deit_mini_mix": _deit_mini,
}
MIX_TRAINED_TWINS = {"resnet18_mix": "resnet18", "deit_mini_mix": "deit_mini"}  # mix-trained model → plain twin


def create_mini_model(name: str, num_classes: int = MINI_NUM_CLASSES) -> nn.Module:
    """A randomly initialised mini model for 32×32 RGB input."""
    if name not in MINI_MODELS:
        raise unknown_name("mini model", name, MINI_MODELS)
    return MINI_MODELS[name](num_classes)


# ----------------------------------------------------------------------------- checkpoints


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, which leaves it untouched)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so a crash never leaves half a file.

    The file gets the mode a plain write would give it: an existing file's own mode, else 0666 less the
    umask (``mkstemp`` alone would make every file 0600, unreadable to the other users of a shared folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(model: nn.Module, path: str | os.PathLike, dtype: torch.dtype = torch.float16) -> None:
    """Save floating tensors of ``model.state_dict()`` in ``dtype`` (others as they are) to safetensors."""
    state = {
        k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    atomic_write(path, lambda tmp: save_file(state, tmp))


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load safetensors weights into ``model`` (cast to the model's dtypes), strictly."""
    state = load_file(str(path))
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}, strict=True)
    return model


def read_assets_manifest(assets_dir: str | os.PathLike = ASSETS_DIR) -> dict:
    """``assets/manifest.json`` as a dict (``{"files": {}}`` when there is none yet)."""
    path = Path(assets_dir) / MANIFEST_NAME
    if not path.exists():
        return {"files": {}}
    manifest = read_json(path, f"restore it with `git checkout -- {path}`")
    if not isinstance(manifest.get("files"), dict):
        raise BrokenFileError(f"{path} has no \"files\" mapping; restore it with `git checkout -- {path}`")
    return manifest


def record_asset(file: str | os.PathLike, entry: dict, assets_dir: str | os.PathLike = ASSETS_DIR) -> dict:
    """Add or replace ``file``'s manifest entry, with its sha256 and size computed here.

    The entry's key is the file's path relative to ``assets_dir`` (e.g. ``resnet18.safetensors``
    or ``mini-generator/unet/diffusion_pytorch_model.safetensors``).
    """
    file = Path(file)
    manifest = read_assets_manifest(assets_dir)
    key = file.resolve().relative_to(Path(assets_dir).resolve()).as_posix()
    manifest["files"][key] = {"sha256": sha256_of(file), "bytes": file.stat().st_size, **entry}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(Path(assets_dir) / MANIFEST_NAME, lambda tmp: Path(tmp).write_text(text))
    return manifest["files"][key]


def record_manifest_section(section: str, key: str, value, assets_dir: str | os.PathLike = ASSETS_DIR) -> None:
    """Set ``manifest[section][key] = value`` in ``assets/manifest.json`` (measurements about the files)."""
    manifest = read_assets_manifest(assets_dir)
    manifest.setdefault(section, {})[key] = value
    manifest[section] = dict(sorted(manifest[section].items()))
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(Path(assets_dir) / MANIFEST_NAME, lambda tmp: Path(tmp).write_text(text))


def verified_asset(filename: str, assets_dir: str | os.PathLike = ASSETS_DIR, rebuild: str | None = None) -> Path:
    """Path of a shipped file after checking it exists and its sha256 matches the manifest.

    ``rebuild`` is the command that remakes the file, named in the error when the manifest
    has no entry to take it from.
    """
    assets_dir = Path(assets_dir)
    entry = read_assets_manifest(assets_dir)["files"].get(filename)
    path = assets_dir / filename
    rebuild = entry["command"] if entry else (rebuild or "the command in assets/manifest.json")
    if checkout() is None and not (assets_dir / MANIFEST_NAME).exists():  # an installed MixQ, data not fetched
        raise missing_error(f"{assets_dir / MANIFEST_NAME} (needed for {filename})")
    if entry is None or not path.exists():
        raise DatasetNotFoundError(f"shipped file {path} is missing or not in {assets_dir / MANIFEST_NAME}; "
                                   f"restore it from git or rebuild it with `{rebuild}`")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ChecksumError(f"{path} has sha256 {actual}, but the manifest records {entry['sha256']}; "
                            f"restore it with `git checkout -- {path}` or rebuild it with `{rebuild}`")
    return path


def load_mini_model(name: str, assets_dir: str | os.PathLike = ASSETS_DIR) -> nn.Module:
    """The shipped, trained mini model ``name`` in float32 and eval mode, its hash verified."""
    model = create_mini_model(name)
    load_checkpoint(model, verified_asset(f"{name}.safetensors", assets_dir, rebuild=f"mixq train-mini {name}"))
    return model.eval()


def manifest_sha256(filename: str) -> str | None:
    """The sha256 that ``assets/manifest.json`` records for a shipped file, or None when it lists no such file."""
    entry = read_assets_manifest()["files"].get(filename)
    return entry["sha256"] if entry else None


def shipped_sha256(profile: dict, name: str) -> str | None:
    """The manifest's sha256 of the shipped checkpoint of ``name`` when ``profile`` uses the shipped weights, else
    None: cached results keyed by it go stale by themselves when the checkpoint is retrained."""
    return manifest_sha256(f"{name}.safetensors") if profile["weights"] == "assets" else None


def load_model(profile: dict, name: str) -> nn.Module:
    """The full-precision model ``name`` of ``profile`` in eval mode.

    ``weights`` in the profile says where the weights come from:

    - ``assets``: the shipped, hash-checked mini checkpoints;
    - ``timm-pretrained``: timm's pretrained weights, of the tag that ``pretrained_tags``
      pins for the model (timm's default tag otherwise); network or local hub cache needed;
    - ``timm-random``: timm's architecture, randomly initialised (seed 0). Only for offline
      tests and speed benchmarks of the ImageNet path: its accuracy means nothing.
    """
    if name not in profile["models"]:
        raise UnknownNameError(f"unknown model {name!r} for profile {profile['name']!r}; "
                               f"accepted: {', '.join(profile['models'])}")
    weights = profile["weights"]
    if weights == "assets":
        return load_mini_model(name)
    import timm

    if weights == "timm-random":
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False).eval()
    if weights != "timm-pretrained":
        raise ConfigError(f"profile {profile['name']!r} has weights {weights!r}; accepted: assets, "
                          "timm-pretrained, timm-random")
    tag = (profile.get("pretrained_tags") or {}).get(name)
    full_name = f"{name}.{tag}" if tag else name
    try:
        return timm.create_model(full_name, pretrained=True).eval()
    except (OSError, RuntimeError, ValueError) as exc:  # hub unreachable and nothing in the local cache
        raise WeightsUnavailableError(
            f"could not load timm's pretrained weights {full_name!r} ({type(exc).__name__}); they are downloaded "
            "from the Hugging Face hub on first use: go online once, or fill the hub cache (HF_HOME) by hand"
        ) from None


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: nn.Module, loader, desc: str = "evaluate") -> dict:
    """Top-1 accuracy (in %) of ``model`` on ``loader``, on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    correct = total = 0
    for images, labels in progress(loader, desc=desc):
        logits = model(images.to(device))
        correct += (logits.argmax(1).cpu() == labels).sum().item()
        total += labels.numel()
    return {"top1": 100.0 * correct / max(total, 1), "n_images": total}


# ----------------------------------------------------------------------------- training


# Recipes fixed per architecture: the CNNs like SGD with a one-cycle schedule, the ViT AdamW.
# Epochs are sized to ~15 min each on a 2-core CPU. bf16 autocast speeds resnet18 and the ViT
# up by 1.2-1.6x on a CPU with AVX-512 bf16, but slows MobileNetV2's depthwise convolutions.
TRAIN_RECIPES = {
    "resnet18": {"epochs": 18, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4,
                 "bf16": True, "ema_decay": 0.999},
    "mobilenetv2_100": {"epochs": 14, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4,
                        "bf16": False, "ema_decay": 0.999},
    "deit_mini": {"epochs": 5, "batch_size": 128, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05,
                  "bf16": True, "ema_decay": 0.999},
}

# Batch-level image mixing as in the recipes behind the `imagenet` profile's weights, applied with
# `timm.data.Mixup` (which also smooths the labels; the loss is then cross-entropy on soft targets):
# - resnet18.a1_in1k: "ResNet strikes back" procedure A1 (Wightman, Touvron & Jégou 2021, arXiv 2110.00476,
#   Table 1): Mixup α 0.2, CutMix α 1.0, label smoothing 0.1; the switch probability is timm's default, 0.5.
# - DeiT: facebookresearch/deit main.py defaults: Mixup α 0.8, CutMix α 1.0, mixing probability 1.0,
#   switch probability 0.5, label smoothing 0.1.
MIXING = {
    "rsb-a1": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "prob": 1.0, "switch_prob": 0.5, "label_smoothing": 0.1},
    "deit": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "prob": 1.0, "switch_prob": 0.5, "label_smoothing": 0.1},
}
# Mixed pictures are a harder task, so the mix-trained models get more epochs than their plain twins. bf16
# is off: on a CPU without native bf16 (AVX2 only) autocast runs about 4x slower than float32.
TRAIN_RECIPES["resnet18_mix"] = dict(TRAIN_RECIPES["resnet18"], epochs=20, bf16=False, mixing="rsb-a1")
TRAIN_RECIPES["deit_mini_mix"] = dict(TRAIN_RECIPES["deit_mini"], epochs=12, bf16=False, mixing="deit")


def augment(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random shifts by up to ``max_shift`` pixels (zero fill) and horizontal flips, per image."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(shifts.tolist())])
    out[flips] = out[flips].flip(-1)
    return out


class WeightEMA:
    """Exponential moving average of a model's parameters and buffers, with a warm-up in the decay.

    The decay at step t is ``min(decay, (1 + t) / (10 + t))``: with a fixed 0.999 over a short run
    the average would still hold much of the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.steps = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        current = model.state_dict()
        floats = [k for k, v in self.state.items() if v.is_floating_point()]
        torch._foreach_lerp_([self.state[k] for k in floats], [current[k].detach() for k in floats], 1 - decay)
        for k, v in self.state.items():
            if not v.is_floating_point():
                v.copy_(current[k])


class TrainingResumeError(MixQError, ValueError):
    """A training resume folder that belongs to another training run, or that is not one."""


class TrainingState:
    """A training run's state after its last finished epoch, kept in a folder so that a stopped run goes on.

    After every epoch the folder gets ``epoch-NNNN.safetensors`` (the model, the weight average, the
    optimiser's tensors and both random generators) and then, atomically, ``state.json`` (what run it is, the
    epoch, the losses, the seconds so far, the optimiser's and the schedule's settings and NumPy's generator,
    which ``timm.data.Mixup`` draws from); the older epoch file goes after that, so a crash at any moment
    leaves one complete state. Resuming from it gives, on a CPU, bit for bit what an uninterrupted run gives.
    """

    FORMAT = 1

    def __init__(self, folder: str | os.PathLike, run: dict):
        self.folder = check_output_dir(folder, "training resume folder")
        self.run = {"format": self.FORMAT, **run}
        self.state_file = self.folder / "state.json"
        if self.folder.is_dir():
            foreign = sorted(p.name for p in self.folder.iterdir()
                             if p.name != "state.json" and not p.name.startswith(("epoch-", ".")))
            if foreign:
                raise TrainingResumeError(f"{self.folder} is not a training resume folder (it holds "
                                          f"{', '.join(foreign[:3])}); give a new or empty folder")

    def saved(self) -> dict | None:
        """The saved state's JSON part, or None when the folder holds none yet."""
        if not self.state_file.exists():
            return None
        saved = read_json(self.state_file, f"delete {self.folder} to train from the start")
        if saved.get("run") != self.run:
            raise TrainingResumeError(f"{self.folder} holds the state of another training run ({saved.get('run')}); "
                                      f"this one is {self.run}: give another folder or delete it")
        return saved

    def save(self, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, schedule, ema: WeightEMA | None,
             generator: torch.Generator, losses: list[float], seconds: float) -> None:
        import numpy as np

        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        if ema is not None:
            tensors.update({f"ema.{k}": v for k, v in ema.state.items()})
        optimizer_state = optimizer.state_dict()
        for index, values in optimizer_state["state"].items():
            tensors.update({f"optimizer.{index}.{k}": torch.as_tensor(v) for k, v in values.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.generator"] = generator.get_state()
        name = f"epoch-{epoch:04d}.safetensors"
        atomic_write(self.folder / name, lambda tmp: save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp))
        numpy_state = np.random.get_state()
        state = {"run": self.run, "epochs_done": epoch, "file": name, "losses": losses, "seconds": seconds,
                 "ema_steps": ema.steps if ema is not None else None,
                 "param_groups": optimizer_state["param_groups"], "schedule": schedule.state_dict(),
                 "numpy_rng": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]]}
        atomic_write(self.state_file, lambda tmp: Path(tmp).write_text(json.dumps(state)))
        for old in self.folder.glob("epoch-*.safetensors"):
            if old.name != name:
                old.unlink()

    def restore(self, saved: dict, model: nn.Module, optimizer: torch.optim.Optimizer, schedule,
                ema: WeightEMA | None, generator: torch.Generator) -> None:
        import numpy as np

        tensors = load_file(str(self.folder / saved["file"]))
        model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
        if ema is not None:
            ema.state = {k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")}
            ema.steps = saved["ema_steps"]
        per_parameter: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                per_parameter.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": per_parameter, "param_groups": saved["param_groups"]})
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.generator"])
        name, keys, *rest = saved["numpy_rng"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))

    def remove(self) -> None:
        for path in [*self.folder.glob("epoch-*.safetensors"), self.state_file]:
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def mixer(mixing: str | None, seed: int):
    """``timm.data.Mixup`` with the :data:`MIXING` settings named ``mixing``, or None for no mixing.

    It maps ``(images, labels)`` to mixed images and soft targets; batches must have an even size.
    """
    if mixing is None:
        return None
    if mixing not in MIXING:
        raise unknown_name("mixing recipe", mixing, MIXING)
    import numpy as np
    from timm.data import Mixup

    np.random.seed(seed)
    return Mixup(**MIXING[mixing], num_classes=MINI_NUM_CLASSES)


def training_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss of the mini recipes: cross-entropy on Mixup's soft targets (a float matrix, already
    smoothed by :func:`mixer`), or on class indices with label smoothing 0.1."""
    if targets.is_floating_point():
        from timm.loss import SoftTargetCrossEntropy  # timm's loss for its own Mixup targets

        return SoftTargetCrossEntropy()(logits.float(), targets)
    return F.cross_entropy(logits.float(), targets, label_smoothing=0.1)


def train_mini(name: str, out: str | os.PathLike, seed: int = 0, epochs: int | None = None,
               limit: int | None = None, threads: int | None = None, compile: bool = False,
               resume_dir: str | os.PathLike | None = None) -> dict:
    """Train mini model ``name`` on Fashion-MNIST train, save fp16 safetensors to ``out``.

    Returns a summary with the test top-1 and the training time. ``limit`` trains on the
    first images only (smoke runs); ``epochs`` overrides the recipe. ``compile`` runs the
    training steps through ``torch.compile``: faster per step (``benchmarks/train_speed.py --compile``
    measures by how much), but numerically not identical to the eager run, so it is recorded in the summary.
    A recipe with ``mixing`` (see :data:`MIXING`) mixes every batch with ``timm.data.Mixup``, whose draws
    come from NumPy's global generator: it is seeded with ``seed`` here. ``resume_dir`` keeps the state after
    every epoch (:class:`TrainingState`); a rerun with the same folder goes on from there, and the folder is
    removed once the weights are written.
    """
    from .data import fashion_mnist, fashion_mnist_tensors, make_loader, normalize_mini

    if name not in TRAIN_RECIPES:
        raise unknown_name("mini model", name, TRAIN_RECIPES)
    if threads:
        torch.set_num_threads(threads)
    recipe = dict(TRAIN_RECIPES[name], **({"epochs": epochs} if epochs is not None else {}))
    if compile:  # recorded only when used: the shipped recipes run eagerly
        recipe["compile"] = True
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = create_mini_model(name).to(memory_format=torch.channels_last)
    images, labels = fashion_mnist_tensors("train")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    batch_size = min(recipe["batch_size"], len(images))
    if recipe.get("mixing"):
        batch_size = max(2, batch_size - batch_size % 2)  # Mixup pairs each image with another of its batch
    steps_per_epoch = len(images) // batch_size
    total_steps = recipe["epochs"] * steps_per_epoch
    if recipe["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=0.9, nesterov=True,
                                    weight_decay=recipe["weight_decay"])
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["lr"], total_steps=total_steps,
                                                   pct_start=0.15)
    mix = mixer(recipe.get("mixing"), seed)
    ema = WeightEMA(model, recipe["ema_decay"]) if recipe["ema_decay"] else None
    forward = torch.compile(model) if compile else model  # shares its parameters with model
    losses, first_epoch, seconds_before = [], 0, 0.0
    state = TrainingState(resume_dir, {"model": name, "seed": seed, "limit": limit, **recipe}) if resume_dir else None
    saved = state.saved() if state is not None else None
    if saved is not None:
        state.restore(saved, model, optimizer, schedule, ema, generator)
        losses, first_epoch, seconds_before = saved["losses"], saved["epochs_done"], saved["seconds"]
    start = time.time() - seconds_before
    bar = progress(total=total_steps, initial=len(losses), desc=f"train {name}")
    model.train()
    for epoch in range(first_epoch, recipe["epochs"]):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            x = normalize_mini(augment(images[batch], generator))
            targets = labels[batch]
            if mix is not None:
                x, targets = mix(x, targets)  # soft targets: the mixed (and smoothed) one-hot labels
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe["bf16"]):
                logits = forward(x.contiguous(memory_format=torch.channels_last))
            loss = training_loss(logits, targets)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training {name} diverged at step {bar.n}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update(model)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
        if state is not None:
            state.save(epoch + 1, model, optimizer, schedule, ema, generator, losses, time.time() - start)
    bar.close()
    train_seconds = time.time() - start
    if ema is not None:  # ship the averaged weights
        model.load_state_dict(ema.state)
    model = model.to(memory_format=torch.contiguous_format).eval()
    save_checkpoint(model, out)
    reloaded = load_checkpoint(create_mini_model(name), out)  # measure what ships: the fp16 weights
    metrics = evaluate(reloaded, make_loader(fashion_mnist("test"), batch_size=500), desc=f"test {name}")
    if state is not None:
        state.remove()
    return {"model": name, "seed": seed, **recipe, "train_seconds": round(train_seconds, 1),
            "test_top1": metrics["top1"], "test_images": metrics["n_images"], "final_loss": losses[-1],
            "first_loss": losses[0]}
