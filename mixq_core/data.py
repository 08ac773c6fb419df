"""Real, synthetic and noise image sources behind one interface.

Every source is a ``torch.utils.data.Dataset`` of ``(image, label)`` pairs, with
images already transformed to the model's input (``(3, H, W)`` float tensors,
normalised). Sources are chosen by name from :data:`SOURCES`:

- ``fashion-mnist``: the real data of the ``mini`` track, 28×28 grey images padded to
  32×32 and replicated to three channels.
- ``imagenet-folder``: an ImageNet-style ``val/<synset>/*.JPEG`` tree, with timm's eval
  transform for a given model; labels are ImageNet-1k indices.
- ``synthetic``: a generated calibration set (``images/*.png`` + ``manifest.jsonl``);
  the label is the first prompted class.
- ``noise``: standard Gaussian noise in the normalised input space (label ``-1``).

:func:`subset` picks a deterministic subset, so "1024 real calibration images, seed 0"
is always the same 1024 images; :func:`calibration_dataset` gives an experiment's calibration
images (real, noise or a set folder) prepared for the model it calibrates.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .errors import ConfigError, DatasetLayoutError, DatasetNotFoundError, unknown_name
from .validate import check_set_entries, read_jsonl

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# Mean and std of the Fashion-MNIST training pixels (after padding to 32×32), in [0, 1].
FASHION_MNIST_MEAN = 0.2190
FASHION_MNIST_STD = 0.3318
FASHION_MNIST_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                         "bag", "ankle boot")
MINI_IMAGE_SIZE = 32
NOISE_LABEL = -1

SOURCES: dict[str, Callable[..., Dataset]] = {}


def register_source(name: str):
    """Decorator that adds a dataset builder to :data:`SOURCES` under ``name``."""

    def add(builder):
        SOURCES[name] = builder
        return builder

    return add


def load_source(name: str, **kwargs) -> Dataset:
    """Build the data source registered as ``name`` with its keyword arguments."""
    if name not in SOURCES:
        raise unknown_name("data source", name, SOURCES)
    return SOURCES[name](**kwargs)


# ----------------------------------------------------------------------------- Fashion-MNIST


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST container format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_mnist_dir(root: str | os.PathLike | None) -> Path:
    """Find the Fashion-MNIST files, downloading them with torchvision when online."""
    candidates = [Path(root)] if root else [Path(os.environ.get("MIXQ_FASHION_MNIST", FASHION_MNIST_DIR))]
    for folder in candidates:
        if all((folder / f).exists() for pair in FASHION_MNIST_FILES.values() for f in pair):
            return folder
    cache = Path(os.environ.get("MIXQ_CACHE", Path.home() / ".cache" / "mixq"))
    raw = cache / "FashionMNIST" / "raw"
    if all((raw / f).exists() for pair in FASHION_MNIST_FILES.values() for f in pair):
        return raw
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(cache), train=True, download=True)
        FashionMNIST(str(cache), train=False, download=True)
        return raw
    except Exception as exc:  # no network, or torchvision mirror unreachable
        raise DatasetNotFoundError(
            f"Fashion-MNIST files not found in {', '.join(map(str, candidates))} and the download failed "
            f"({type(exc).__name__}). Install them with `apt-get install dataset-fashion-mnist` "
            f"(puts them in {FASHION_MNIST_DIR}), set MIXQ_FASHION_MNIST to a folder holding "
            f"{', '.join(FASHION_MNIST_FILES['train'] + FASHION_MNIST_FILES['test'])}, or go online once."
        ) from None


def fashion_mnist_tensors(split: str, root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as uint8 images ``(N, 1, 32, 32)`` (zero-padded from 28×28) and int64 labels."""
    if split not in FASHION_MNIST_FILES:
        raise unknown_name("Fashion-MNIST split", split, FASHION_MNIST_FILES)
    folder = _fashion_mnist_dir(root)
    images_file, labels_file = FASHION_MNIST_FILES[split]
    images = torch.from_numpy(_read_idx(folder / images_file).copy())
    labels = torch.from_numpy(_read_idx(folder / labels_file).astype(np.int64))
    # Padding keeps every original pixel; the background of Fashion-MNIST is 0 already.
    images = torch.nn.functional.pad(images, (2, 2, 2, 2)).unsqueeze(1)
    return images, labels


def normalize_mini(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 1 or 3, H, W)`` → normalised float ``(N, 3, H, W)`` for the mini models."""
    x = images_uint8.float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD


@register_source("fashion-mnist")
def fashion_mnist(split: str = "test", root: str | os.PathLike | None = None) -> TensorDataset:
    """Fashion-MNIST ``split`` as normalised ``(3, 32, 32)`` tensors with labels 0–9."""
    images, labels = fashion_mnist_tensors(split, root)
    return TensorDataset(normalize_mini(images), labels)


# ----------------------------------------------------------------------------- ImageNet folder

SYNSET_PATTERN = re.compile(r"^n\d{8}$")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def imagenet_eval_transform(model: torch.nn.Module):
    """timm's evaluation transform (resize, centre crop, normalise) for ``model``."""
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config({}, model=model))


class ImageFolderDataset(Dataset):
    """Images listed as ``(path, label)`` pairs, read with PIL and passed through ``transform``."""

    def __init__(self, items: list[tuple[Path, int]], transform: Callable):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label = self.items[index]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB")), label
        except (OSError, SyntaxError) as exc:  # PIL's errors for a damaged file: name it, no traceback
            raise DatasetLayoutError(f"{path} cannot be read as an image ({exc})") from None


@register_source("imagenet-folder")
def imagenet_folder(root: str | os.PathLike, transform: Callable | None = None, model=None) -> ImageFolderDataset:
    """An ImageNet validation tree ``root/<synset>/*.JPEG``; labels are ImageNet-1k indices.

    ``root`` may be the ``val`` folder itself or its parent. Either ``transform`` or
    ``model`` (whose timm eval transform is then used) must be given. A partial tree
    (some synsets only) is accepted: labels still index the full 1000 classes.
    """
    from timm.data import ImageNetInfo

    root = Path(root)
    expected = "a folder of synset sub-folders such as val/n01440764/ILSVRC2012_val_00000293.JPEG"
    if not root.is_dir():
        raise DatasetNotFoundError(f"ImageNet folder {root} does not exist; expected {expected}")
    if (root / "val").is_dir():
        root = root / "val"
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    bad = [p.name for p in subdirs if not SYNSET_PATTERN.match(p.name)]
    if not subdirs or bad:
        found = f"non-synset folders {bad[:5]}" if bad else "no sub-folders"
        raise DatasetLayoutError(f"{root} is not ImageNet-shaped: found {found}; expected {expected}")
    index_of = {wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())}
    unknown = [p.name for p in subdirs if p.name not in index_of]
    if unknown:
        raise DatasetLayoutError(f"{root} holds synsets outside ImageNet-1k: {unknown[:5]}; expected {expected}")
    items = [
        (path, index_of[folder.name])
        for folder in subdirs
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DatasetLayoutError(f"{root} has synset folders but no .JPEG/.jpg/.png images; expected {expected}")
    if transform is None:
        if model is None:
            raise ValueError("imagenet_folder needs a transform or a model to take timm's eval transform from")
        transform = imagenet_eval_transform(model)
    return ImageFolderDataset(items, transform)


# ----------------------------------------------------------------------------- synthetic folder

MANIFEST_NAME = "manifest.jsonl"


def mini_image_transform(image: Image.Image) -> torch.Tensor:
    """PIL image → normalised ``(3, 32, 32)`` tensor, as the real mini data is prepared."""
    grey = image.convert("L").resize((MINI_IMAGE_SIZE, MINI_IMAGE_SIZE), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(grey, dtype=np.uint8).copy())[None, None]
    return normalize_mini(pixels)[0]


def model_transform(profile: dict, model: torch.nn.Module | None = None) -> Callable:
    """How images (real or generated) are prepared for a model of ``profile``: the fixed
    Fashion-MNIST preparation on the mini track, the model's own timm eval transform otherwise."""
    if profile["dataset"] == "fashion-mnist":
        return mini_image_transform
    if model is None:
        raise ValueError(f"profile {profile['name']!r} prepares images with the model's eval transform: pass the model")
    return imagenet_eval_transform(model)


def model_input_size(profile: dict, model: torch.nn.Module | None = None) -> int:
    """Side in pixels of the images a model of ``profile`` takes (Gaussian-noise calibration
    images are drawn at this size): the model's own timm input size off the mini track."""
    if profile["dataset"] == "fashion-mnist" or model is None:
        return profile.get("image_size", 224)
    from timm.data import resolve_data_config

    return int(resolve_data_config({}, model=model)["input_size"][-1])


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """The records of a synthetic set's ``manifest.jsonl``, in file order (a line that is no JSON object
    names itself)."""
    path = Path(folder) / MANIFEST_NAME
    if not Path(folder).is_dir() or not path.is_file():
        raise DatasetNotFoundError(
            f"{folder} has no {MANIFEST_NAME}; a synthetic set is a folder made by `mixq synthesize` "
            f"holding images/*.png and {MANIFEST_NAME}"
        )
    return read_jsonl(path)


def manifest_dataset(root: str | os.PathLike, records: list[dict], transform: Callable,
                     num_classes: int | None = None, manifest: str = MANIFEST_NAME) -> ImageFolderDataset:
    """The images that manifest ``records`` of set ``root`` name, labelled by their first prompted class.

    Every line is checked first (see :func:`mixq_core.validate.check_set_entries`; class ids below
    ``num_classes`` when given), so a damaged set fails here, naming its file and line, not mid-run.
    """
    root = Path(root)
    return ImageFolderDataset(check_set_entries(root, records, root / manifest, num_classes), transform)


@register_source("synthetic")
def synthetic_folder(root: str | os.PathLike, transform: Callable = mini_image_transform,
                     num_classes: int | None = None) -> ImageFolderDataset:
    """A generated set: each manifest line names its ``file`` and prompted ``classes``; label = first class."""
    return manifest_dataset(root, read_manifest(root), transform, num_classes)


# ----------------------------------------------------------------------------- noise


class GaussianNoise(Dataset):
    """``n`` images of standard normal noise ``(3, size, size)``; image ``i`` depends only on seed and i."""

    def __init__(self, n: int, size: int = MINI_IMAGE_SIZE, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        if not 0 <= index < self.n:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return torch.randn(3, self.size, self.size, generator=generator), NOISE_LABEL


@register_source("noise")
def noise(n: int = 1024, size: int = MINI_IMAGE_SIZE, seed: int = 0) -> GaussianNoise:
    """Gaussian-noise calibration data: the lower bound of every comparison."""
    return GaussianNoise(n, size, seed)


# ----------------------------------------------------------------------------- image-level mixing

# The timm / DeiT training recipe's strengths (timm train.py --mixup 0.8 --cutmix 1.0, as in DeiT's Table 9).
MIXUP_ALPHA, CUTMIX_ALPHA = 0.8, 1.0
IMAGE_MIXINGS = ("mixup", "cutmix")


def mix_images(dataset: Dataset, mixing: str, seed: int = 0) -> TensorDataset:
    """``dataset``'s images after Mixup or CutMix with ``timm.data.Mixup``, as a dataset of the same size.

    Each image is paired with another one of the set (a seeded random pairing) and mixed with its own
    λ ~ Beta(α, α) (timm's ``mode="elem"``): Mixup blends the two images, CutMix pastes a box of one into
    the other, with α = 0.8 and 1.0 as in the timm/DeiT recipe. The label kept is the image's own class.
    numpy's global random state, which timm draws from, is restored afterwards.
    """
    from timm.data import Mixup

    if mixing not in IMAGE_MIXINGS:
        raise unknown_name("image mixing", mixing, IMAGE_MIXINGS)
    images, labels = map(torch.stack, zip(*[(x, torch.as_tensor(y)) for x, y in dataset], strict=True))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    images, labels = images[order], labels[order]
    mixer = Mixup(mixup_alpha=MIXUP_ALPHA if mixing == "mixup" else 0.0,
                  cutmix_alpha=CUTMIX_ALPHA if mixing == "cutmix" else 0.0,
                  prob=1.0, mode="elem", label_smoothing=0.0, num_classes=int(labels.max()) + 1)
    even = len(images) - len(images) % 2  # timm pairs images within an even batch; an odd last one stays as it is
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        mixed = images.clone()
        mixed[:even], _ = mixer(mixed[:even], labels[:even].clamp_min(0))
    finally:
        np.random.set_state(saved)
    return TensorDataset(mixed, labels)


# ----------------------------------------------------------------------------- subsets and loaders


def subset_indices(length: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of a deterministic random subset of size ``n`` (all, shuffled, when ``n`` is None)."""
    n = length if n is None else n
    if not 0 < n <= length:
        raise ConfigError(f"a subset of {n} images was asked of a dataset of {length}; accepted: 1..{length}")
    return torch.randperm(length, generator=torch.Generator().manual_seed(seed))[:n]


def subset(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """The same ``n`` items of ``dataset`` for the same ``seed``, whatever the machine."""
    if n is None or n == len(dataset):
        return dataset
    return Subset(dataset, subset_indices(len(dataset), n, seed).tolist())


def eval_dataset(profile: dict, model: torch.nn.Module | None = None, root: str | os.PathLike | None = None) -> Dataset:
    """The real evaluation data of ``profile`` (its ``eval_data`` entry), prepared for ``model``.

    ``root`` is the data folder where the source needs one (ImageNet val).
    """
    spec = dict(profile["eval_data"])
    source = spec.pop("source")
    if source == "imagenet-folder":
        if root is None:
            raise DatasetNotFoundError(f"profile {profile['name']!r} evaluates on ImageNet val: give its folder "
                                       "(--imagenet-val PATH, holding val/<synset>/*.JPEG)")
        spec.update(root=root, model=model)
    elif root is not None:
        spec["root"] = root
    return load_source(source, **spec)


def calibration_dataset(data: str, profile: dict, n: int, seed: int = 0, model: torch.nn.Module | None = None,
                        root: str | os.PathLike | None = None) -> Dataset:
    """The calibration images named by ``data``, as a dataset of ``(image, label)``.

    Args:
        data: ``real`` (``n`` images of the profile's real training data, a fixed subset for ``seed``),
            ``noise`` (``n`` Gaussian images) or the folder of a synthetic set (at most ``n`` of its images).
        profile: a profile mapping (:func:`mixq_core.profiles.load_profile`).
        n: number of images (QDrop's default is 1024).
        seed: picks the subset and the noise.
        model: the model to calibrate; on the ImageNet track its timm eval transform prepares
            real and synthetic images (the mini track has one fixed transform).
        root: the real training images where the profile's dataset has no packaged copy
            (ImageNet: the ``train/<synset>/*.JPEG`` folder).
    """
    if data == "noise":
        return noise(n=n, size=model_input_size(profile, model), seed=seed)
    if data == "real":
        if profile["dataset"] == "fashion-mnist":
            return subset(load_source(profile["dataset"], split="train"), n, seed)
        if root is None:
            raise DatasetNotFoundError(
                f"real calibration images of profile {profile['name']!r} are {profile['dataset']} training images: "
                "give their folder (imagenet_train=..., $MIXQ_IMAGENET_TRAIN or --imagenet-train PATH, holding "
                "train/<synset>/*.JPEG), or use a synthetic set")
        dataset = load_source(profile["dataset"], root=root, transform=model_transform(profile, model))
        return subset(dataset, min(n, len(dataset)), seed)
    if not Path(data).is_dir():
        raise ConfigError(f"calibration data must be 'real', 'noise' or the folder of a synthetic set "
                          f"(made by `mixq synthesize`); {data!r} is none of these")
    dataset = synthetic_folder(data, transform=model_transform(profile, model))
    return subset(dataset, min(n, len(dataset)), seed)


def make_loader(dataset: Dataset, batch_size: int = 256, shuffle: bool = False, seed: int = 0,
                num_workers: int = 0) -> DataLoader:
    """A DataLoader whose shuffling, when asked for, is fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers)
