"""The ImageNet track end to end, offline and on the CPU, at reduced size.

A user profile extends ``imagenet`` and changes only what cannot exist here: the generator is
a tiny random Stable Diffusion pipeline (CLIP text encoder and tokenizer built locally, saved
to a folder), the models are timm's tiny ``test_resnet`` / ``test_vit`` architectures with
random weights, and the ImageNet val and train folders are small fake trees. Everything else
(ImageNet vocabulary and labels, timm eval transforms, DPM-Solver++, QDrop, the records) is
the path a GPU user runs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mixq_core import experiment
from mixq_core.errors import ConfigError, DatasetNotFoundError
from mixq_core.profiles import load_profile, write_profile
from mixq_core.testing import tiny_sd_pipeline

SYNSETS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # ImageNet-1k classes 0..3


def _fake_tree(root, per_class, seed):
    rng = np.random.default_rng(seed)
    for synset in SYNSETS:
        (root / synset).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / synset / f"{synset}_{i:04d}.JPEG")
    return root


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imagenet-track")
    tiny_sd_pipeline("clip").save_pretrained(tmp / "generator")
    profile = write_profile(
        "imagenet-offline", tmp / "profiles", extends="imagenet",
        models=["test_resnet", "test_vit"], weights="timm-random", pretrained_tags={},
        generator=str(tmp / "generator"), resolution=32, steps=2, guidance=3.0, classes=[0, 1, 2, 3],
        n_calib=8, iters=4, eval_batch_size=6, loader_workers=0, probe_images=4, quant_compile=False,
        synthesis_batch_size=4)
    return {"profile": profile, "val": _fake_tree(tmp / "val", 3, seed=1),
            "train": _fake_tree(tmp / "train", 4, seed=2), "results": tmp / "results"}


def _run(track, **fields):
    config = experiment.ExperimentConfig(profile="imagenet-offline", w_bits=4, a_bits=4, **fields)
    return experiment.run(config, results_dir=track["results"], imagenet_val=track["val"],
                          imagenet_train=track["train"], device="cpu")["metrics"]


def test_user_profile_extends_imagenet_and_keeps_its_quantization_policy(track):
    profile = load_profile("imagenet-offline")
    assert profile["vocabulary"] == "imagenet-1k" and profile["first_last_8bit"] is True
    assert profile["models"] == ["test_resnet", "test_vit"]
    with pytest.raises(ConfigError, match="built-in profile"):
        write_profile("imagenet", track["results"])


@pytest.mark.parametrize("data", ["real", "noise", "mixup", "genq"])
def test_imagenet_path_runs_end_to_end_for_a_cnn(track, data):
    record = _run(track, model="test_resnet", data=data)
    assert record["n_eval"] == 12 and 0 <= record["top1"] <= 100  # 4 synsets x 3 fake val images
    assert record["n_calib"] == 8
    assert record["config"]["iters"] == 4 and record["quant_config"]["first_last_8bit"] is True
    assert record["device"] == "cpu"
    blocks = [unit for unit in record["units"] if unit["kind"] != "layer"]
    assert blocks and all(len(unit["rec_loss"]) == 1 for unit in record["units"])  # 4 steps = one window
    if data in ("mixup", "genq"):  # generated from ImageNet prompts over the profile's four classes
        lines = (Path(record["set_folder"]) / "manifest.jsonl").read_text().splitlines()
        entries = [json.loads(line) for line in lines]
        assert len(entries) == 8 and {c for e in entries for c in e["classes"]} <= {0, 1, 2, 3}
        assert all(len(e["classes"]) == (2 if data == "mixup" else 1) for e in entries)
    if data == "real":  # held-out ImageNet train images probe the generalization error
        assert any(unit["generalization_error"] is not None for unit in record["units"])


def test_imagenet_path_runs_end_to_end_for_a_vit(track):
    record = _run(track, model="test_vit", data="mixup")
    assert {"Block"} <= {unit["kind"] for unit in record["units"]}
    assert record["n_calib"] == 8 and 0 <= record["top1"] <= 100


def test_imagenet_folders_come_from_arguments_or_the_environment(track, monkeypatch):
    config = experiment.ExperimentConfig(profile="imagenet-offline", model="test_resnet", data="noise", seed=5)
    monkeypatch.delenv("MIXQ_IMAGENET_VAL", raising=False)
    with pytest.raises(DatasetNotFoundError, match="--imagenet-val PATH"):
        experiment.run(config, results_dir=track["results"], device="cpu")
    monkeypatch.setenv("MIXQ_IMAGENET_VAL", str(track["val"]))
    assert experiment.run(config, results_dir=track["results"], device="cpu")["metrics"]["n_eval"] == 12
    monkeypatch.delenv("MIXQ_IMAGENET_TRAIN", raising=False)
    real = experiment.ExperimentConfig(profile="imagenet-offline", model="test_resnet", data="real", seed=5)
    with pytest.raises(DatasetNotFoundError, match="train/<synset>"):
        experiment.run(real, results_dir=track["results"], device="cpu")
