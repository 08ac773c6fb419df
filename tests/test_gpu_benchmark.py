"""The GPU benchmark's ingredients, checked without a GPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SD15 = REPO / "benchmarks" / "sd15"


def _config(name):
    return {k: v for k, v in json.loads((SD15 / name).read_text()).items() if not k.startswith("_")}


def test_sd15_configs_build_stable_diffusion_v15_sized_networks():
    """Parameter counts of SD v1.5's UNet, VAE and CLIP ViT-L/14 text tower (built on the meta
    device: shapes only, no memory), so the benchmark measures a network of the real size."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(_config("unet.json"))
        vae = AutoencoderKL.from_config(_config("vae.json"))
        text = CLIPTextModel(CLIPTextConfig(**_config("text_encoder.json")))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(unet) == 859_520_964
    assert count(vae) == 83_653_863
    assert count(text) == 123_060_480
    assert vae.config.scaling_factor == 0.18215 and unet.config.cross_attention_dim == 768


@pytest.mark.slow
def test_gpu_benchmark_runs_end_to_end_in_quick_mode_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu.py", "--quick", "--device", "cpu", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["synthesis"]["images"] == 8 and report["synthesis"]["images_per_second"] > 0
    assert [r["model"] for r in report["qdrop"]] == ["test_resnet", "test_vit"]
    assert all(r["projected_full_run_minutes"] > 0 and r["units"] for r in report["qdrop"] + report["qdrop_cpu"])
    assert "images/s" in done.stdout and "| test_resnet | cpu |" in done.stdout
