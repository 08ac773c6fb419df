import json

import numpy as np
import pytest
import torch
from PIL import Image

from mixq_core import data
from mixq_core.errors import DatasetLayoutError, DatasetNotFoundError, MixQError, UnknownNameError


@pytest.fixture(scope="module")
def fmnist_test():
    return data.fashion_mnist("test")


def test_fashion_mnist_shapes_ranges_and_labels(fmnist_test):
    assert len(fmnist_test) == 10_000
    images, labels = fmnist_test.tensors
    assert images.shape == (10_000, 3, 32, 32) and images.dtype == torch.float32
    assert torch.equal(images[:, 0], images[:, 2])  # grey replicated to three channels
    low = -data.FASHION_MNIST_MEAN / data.FASHION_MNIST_STD
    high = (1 - data.FASHION_MNIST_MEAN) / data.FASHION_MNIST_STD
    assert images.min().item() == pytest.approx(low, abs=1e-5)
    assert images.max().item() == pytest.approx(high, abs=1e-5)
    assert torch.all(images[:, :, :2, :] == images.min())  # the 2-pixel pad is background
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert torch.bincount(labels).tolist() == [1000] * 10


def test_train_split_is_normalised_to_zero_mean_unit_std():
    images, labels = data.fashion_mnist_tensors("train")
    assert images.shape == (60_000, 1, 32, 32) and labels.shape == (60_000,)
    x = data.normalize_mini(images[:20_000])
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02


def test_subset_is_deterministic_and_seed_dependent(fmnist_test):
    a = data.subset_indices(len(fmnist_test), 1024, seed=0)
    b = data.subset_indices(len(fmnist_test), 1024, seed=0)
    c = data.subset_indices(len(fmnist_test), 1024, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 1024
    sub = data.subset(fmnist_test, 1024, seed=0)
    assert len(sub) == 1024 and torch.equal(sub[5][0], fmnist_test[a[5].item()][0])
    with pytest.raises(ValueError):
        data.subset_indices(10, 11)


def test_noise_is_deterministic_per_index_and_seed():
    noise = data.load_source("noise", n=8, size=32, seed=3)
    x0, label = noise[0]
    assert x0.shape == (3, 32, 32) and label == data.NOISE_LABEL
    assert torch.equal(x0, data.noise(n=8, seed=3)[0][0])
    assert not torch.equal(x0, noise[1][0]) and not torch.equal(x0, data.noise(n=8, seed=4)[0][0])
    assert abs(torch.stack([noise[i][0] for i in range(8)]).std().item() - 1) < 0.05
    with pytest.raises(IndexError):
        noise[8]


def test_unknown_source_names_what_is_accepted():
    with pytest.raises(UnknownNameError, match="accepted: fashion-mnist, imagenet-folder, noise, synthetic"):
        data.load_source("cifar")


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    monkeypatch.setenv("MIXQ_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("test", root=tmp_path)


def _write_png(path, value, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def test_synthetic_folder_reads_manifest_and_labels_first_class(tmp_path):
    records = [{"file": f"images/{i:04d}.png", "classes": [i % 10, (i + 3) % 10], "prompt": "x"} for i in range(6)]
    for i, record in enumerate(records):
        _write_png(tmp_path / record["file"], 40 * i)
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    dataset = data.load_source("synthetic", root=tmp_path)
    assert len(dataset) == 6
    image, label = dataset[4]
    assert image.shape == (3, 32, 32) and label == 4
    expected = (160 / 255 - data.FASHION_MNIST_MEAN) / data.FASHION_MNIST_STD
    assert torch.allclose(image, torch.full_like(image, expected), atol=1e-5)


def test_synthetic_folder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="manifest.jsonl"):
        data.synthetic_folder(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"file": "images/a.png"}) + "\n")
    with pytest.raises(DatasetLayoutError, match="line 1 lacks"):
        data.synthetic_folder(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"file": "images/a.png", "classes": [1]}) + "\n")
    with pytest.raises(DatasetLayoutError, match="missing"):
        data.synthetic_folder(tmp_path)


@pytest.fixture
def fake_imagenet(tmp_path):
    # n01440764 is ImageNet-1k class 0 (tench), n01443537 class 1 (goldfish), n15075141 class 999.
    for synset, count in [("n01440764", 2), ("n01443537", 1), ("n15075141", 1)]:
        for i in range(count):
            _write_png(tmp_path / "val" / synset / f"ILSVRC2012_val_{i:08d}.JPEG", 100, size=64)
    return tmp_path


def test_imagenet_folder_labels_are_imagenet_indices(fake_imagenet):
    import timm

    model = timm.create_model("resnet18", pretrained=False)
    dataset = data.load_source("imagenet-folder", root=fake_imagenet, model=model)
    assert [label for _, label in dataset.items] == [0, 0, 1, 999]
    image, label = dataset[0]
    assert image.shape == (3, 224, 224) and label == 0
    assert len(data.imagenet_folder(fake_imagenet / "val", transform=lambda im: 0)) == 4


def test_imagenet_folder_errors(tmp_path, fake_imagenet):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        data.imagenet_folder(tmp_path / "nowhere", transform=lambda im: im)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetLayoutError, match="not ImageNet-shaped: found no sub-folders"):
        data.imagenet_folder(tmp_path / "flat", transform=lambda im: im)
    (tmp_path / "flat" / "cats").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"non-synset folders \['cats'\]"):
        data.imagenet_folder(tmp_path / "flat", transform=lambda im: im)
    (tmp_path / "outside" / "n99999999").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="outside ImageNet-1k"):
        data.imagenet_folder(tmp_path / "outside", transform=lambda im: im)
    (tmp_path / "empty" / "n01440764").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no .JPEG"):
        data.imagenet_folder(tmp_path / "empty", transform=lambda im: im)
    assert all(issubclass(e, MixQError) for e in (DatasetLayoutError, DatasetNotFoundError))
