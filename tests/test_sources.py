"""Calibration sources: the registry, image-level Mixup / CutMix baselines, engines, and grid workers that share."""

import fcntl

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from mixq_core import experiment
from mixq_core.data import mix_images
from mixq_core.errors import ConfigError, UnknownNameError
from mixq_core.experiment import ExperimentConfig
from mixq_core.results import config_hash
from mixq_core.sources import SOURCES, get_source, source_names


def _dataset(n: int = 40) -> TensorDataset:
    generator = torch.Generator().manual_seed(1)
    return TensorDataset(torch.rand(n, 3, 8, 8, generator=generator), torch.arange(n) % 10)


def test_every_source_is_one_registration_and_unknown_names_list_them():
    assert set(source_names()) == set(SOURCES) >= {"real", "noise", "single", "genq", "mixup", "single-mixup"}
    assert set(source_names(generated=False)) == {"real", "noise"}
    assert get_source("single-cutmix").prompts == "single" and get_source("single-cutmix").image_mixing == "cutmix"
    assert get_source("mixup").mixes_classes and not get_source("single-mixup").mixes_classes
    with pytest.raises(UnknownNameError, match="single-cutmix"):
        ExperimentConfig(data="cutmix")


@pytest.mark.parametrize("mixing", ["mixup", "cutmix"])
def test_image_mixing_is_seeded_keeps_the_size_and_leaves_numpy_alone(mixing):
    dataset = _dataset()
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = mix_images(dataset, mixing, seed=0)
    assert np.random.rand() == expected_next  # timm draws from numpy's global state: it is restored
    again, other = mix_images(dataset, mixing, seed=0), mix_images(dataset, mixing, seed=1)
    assert len(first) == len(dataset) and first.tensors[0].shape == dataset.tensors[0].shape
    assert torch.equal(first.tensors[0], again.tensors[0]) and not torch.equal(first.tensors[0], other.tensors[0])
    originals = {tuple(x.flatten().tolist()) for x in dataset.tensors[0]}
    unchanged = sum(tuple(x.flatten().tolist()) in originals for x in first.tensors[0])
    assert unchanged <= len(dataset) // 10  # (CutMix's box can round to nothing when λ is close to 1)


def test_cutmix_pastes_a_box_where_mixup_blends_everything():
    dataset = _dataset()
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    images = dataset.tensors[0][order]
    cut = mix_images(dataset, "cutmix", seed=0).tensors[0]
    blend = mix_images(dataset, "mixup", seed=0).tensors[0]
    # CutMix: part of each image is untouched (outside the box); Mixup: a blend everywhere.
    untouched_cut = (cut == images).float().mean()
    untouched_blend = (blend == images).float().mean()
    assert untouched_cut > 0.2 and untouched_blend < 0.05


def test_image_level_baselines_share_the_single_class_set_but_are_their_own_experiments():
    single = ExperimentConfig(profile="smoke", data="single", n_calib=20)
    mixed = ExperimentConfig(profile="smoke", data="single-mixup", n_calib=20)
    assert experiment.synthetic_set_folder(single) == experiment.synthetic_set_folder(mixed)
    assert config_hash(single.identity()) != config_hash(mixed.identity())


def test_the_sources_and_their_identities_of_earlier_records_did_not_change():
    # The registry replaced hard-coded tuples; an identity stays what it was (k=1 for single-class sources).
    identity = ExperimentConfig(profile="smoke", data="genq", k=3).identity()
    assert identity["k"] == 1 and identity["partners"] is None
    assert ExperimentConfig(profile="smoke", data="mixup", k=3).identity()["k"] == 3


def test_a_profile_of_another_engine_is_read_but_not_added_to(tmp_path):
    config = ExperimentConfig(profile="mini-full", model="resnet18", data="real", seed=99)
    with pytest.raises(ConfigError, match="engine 1.*runs engine 2"):
        experiment.run(config, results_dir=tmp_path)
    assert not (tmp_path / "ptq").exists()


def test_a_worker_that_shares_the_grid_skips_what_another_is_running(tmp_path):
    config = ExperimentConfig(profile="smoke", data="real", n_calib=20, iters=1)
    lock = tmp_path / "locks" / f"{config_hash(config.resolved().identity())}.lock"
    lock.parent.mkdir()
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another worker runs it
        assert experiment.run_grid([config], results_dir=tmp_path, device="cpu", share=True) == []
    assert not (tmp_path / "ptq").exists()
