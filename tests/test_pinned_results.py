"""Three fixed experiments whose top-1 and record identity are pinned: a change of structure (the CLI, the
executors, where calibration images are loaded) must leave a result bit-identical on the CPU. A change that
means to alter results (a new engine) updates these numbers on purpose."""

import pytest
import torch

from mixq_core import experiment
from mixq_core.experiment import ExperimentConfig
from mixq_core.models import ASSETS_DIR

SMALL = {"profile": "smoke", "model": "resnet18", "w_bits": 2, "a_bits": 4, "iters": 2}
# (config, its record's hash, its top-1 on the smoke profile's 500 test images, computed on the CPU)
PINNED = [
    (ExperimentConfig(**SMALL, data="real", method="rtn", n_calib=16), "a0051ee1c344bf12", 88.2),
    (ExperimentConfig(**SMALL, data="real", method="qdrop", n_calib=16), "c268194787a83808", 87.2),
    (ExperimentConfig(**SMALL, data="single", method="qdrop", n_calib=10), "ad4fa7251d597161", 85.6),
]


@pytest.mark.parametrize("config, record_hash, top1", PINNED, ids=["rtn-real", "qdrop-real", "qdrop-single"])
def test_identity_is_pinned(config, record_hash, top1):
    assert experiment.config_hash(config.identity()) == record_hash


@pytest.mark.slow
@pytest.mark.skipif(not (ASSETS_DIR / "resnet18.safetensors").exists(), reason="assets/resnet18.safetensors is absent")
@pytest.mark.parametrize("config, record_hash, top1", PINNED, ids=["rtn-real", "qdrop-real", "qdrop-single"])
def test_top1_is_pinned_on_the_cpu(config, record_hash, top1, tmp_path):
    torch.set_num_threads(1)
    record = experiment.run(config, results_dir=tmp_path, device="cpu")
    assert (record["config_hash"], record["metrics"]["top1"]) == (record_hash, top1)
