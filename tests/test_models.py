import json
import shutil
import subprocess
import sys

import pytest
import torch

from mixq_core import models
from mixq_core.data import fashion_mnist, make_loader, subset
from mixq_core.errors import ChecksumError, DatasetNotFoundError, UnknownNameError

PLAIN = ["deit_mini", "mobilenetv2_100", "resnet18"]
# The mix-trained models join once trained (`mixq train-mini resnet18_mix` writes them into the manifest).
SHIPPED = sorted(n for n in models.MINI_MODELS if f"{n}.safetensors" in models.read_assets_manifest()["files"])


def test_the_plain_models_ship():
    assert set(PLAIN) <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(models.MINI_MODELS))
def test_mini_models_forward_and_backward(name):
    model = models.create_mini_model(name)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unknown_mini_model_names_the_accepted_ones():
    accepted = "accepted: deit_mini, deit_mini_mix, mobilenetv2_100, resnet18, resnet18_mix"
    with pytest.raises(UnknownNameError, match=accepted):
        models.create_mini_model("vgg16")


def test_checkpoint_round_trip_is_exact_in_fp16(tmp_path):
    torch.manual_seed(0)
    model = models.create_mini_model("resnet18")
    model.layer1[0].bn1.running_mean.normal_()  # buffers travel too
    models.save_checkpoint(model, tmp_path / "m.safetensors")
    assert not list(tmp_path.glob(".m.safetensors.*"))  # no temporary file left behind
    reloaded = models.load_checkpoint(models.create_mini_model("resnet18"), tmp_path / "m.safetensors")
    for (key, a), b in zip(model.state_dict().items(), reloaded.state_dict().values(), strict=True):
        expected = a.half().float() if a.is_floating_point() else a
        assert torch.equal(b, expected), key


def test_shipped_files_match_their_manifest_hashes():
    manifest = models.read_assets_manifest()
    for name in SHIPPED:
        assert f"{name}.safetensors" in manifest["files"], name
    for filename, entry in manifest["files"].items():
        assert models.sha256_of(models.ASSETS_DIR / filename) == entry["sha256"], filename
        assert entry["command"].startswith("mixq ")


def test_shipped_models_fit_the_size_budget():
    total = sum((models.ASSETS_DIR / f"{name}.safetensors").stat().st_size for name in SHIPPED)
    # The three plain models take 28 MiB in fp16; the mix-trained twins (issue 19) add a second resnet18
    # (21.4 MiB) and a second deit_mini (2.3 MiB). The budget holds those and catches anything larger.
    assert total <= 56 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_reaches_its_manifest_accuracy(name):
    entry = models.read_assets_manifest()["files"][f"{name}.safetensors"]
    model = models.load_mini_model(name)
    metrics = models.evaluate(model, make_loader(subset(fashion_mnist("test"), 2000, seed=0), batch_size=500))
    assert metrics["n_images"] == 2000
    assert abs(metrics["top1"] - entry["test_top1"]) <= 1.0, (metrics["top1"], entry["test_top1"])


def _copy_assets(tmp_path, name="resnet18"):
    shutil.copy(models.ASSETS_DIR / f"{name}.safetensors", tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(models.read_assets_manifest()))
    return tmp_path


def test_tampered_checkpoint_is_refused(tmp_path):
    assets = _copy_assets(tmp_path)
    with open(assets / "resnet18.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ChecksumError, match="sha256 .* but the manifest records"):
        models.load_mini_model("resnet18", assets_dir=assets)


def test_missing_checkpoint_names_the_rebuild_command(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="mixq train-mini resnet18"):
        models.load_mini_model("resnet18", assets_dir=tmp_path)


def test_training_smoke_run_lowers_the_loss(tmp_path):
    summary = models.train_mini("resnet18", tmp_path / "r.safetensors", epochs=2, limit=512)
    assert summary["final_loss"] < summary["first_loss"]
    assert (tmp_path / "r.safetensors").exists() and summary["test_images"] == 10_000


@pytest.mark.slow
def test_compiled_training_smoke_run_lowers_the_loss_and_records_it(tmp_path):
    summary = models.train_mini("resnet18", tmp_path / "r.safetensors", epochs=2, limit=512, compile=True)
    assert summary["compile"] is True and summary["final_loss"] < summary["first_loss"]
    assert "compile" not in models.TRAIN_RECIPES["resnet18"]  # the shipped recipe stays eager


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mixq_core.cli", *args], capture_output=True, text=True,
                          env={**__import__("os").environ, "MIXQ_QUIET": "1"})


def test_cli_evaluate_prints_one_json_line():
    done = run_cli("evaluate", "--profile", "mini", "--model", "resnet18", "--limit", "500")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "resnet18" and result["n_images"] == 500 and 80 < result["top1"] <= 100


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--model", "vgg16"], "unknown model 'vgg16' for profile 'mini'; accepted: resnet18"),
    (["evaluate", "--profile", "cifar", "--model", "resnet18"],
     "unknown profile 'cifar'; accepted: imagenet, imagenet-colab, mini"),
    (["evaluate", "--profile", "imagenet", "--model", "resnet18", "--imagenet-val", "/nonexistent"],
     "could not load timm's pretrained weights 'resnet18.a1_in1k'"),
])
def test_cli_errors_are_one_message_without_traceback(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.startswith("mixq evaluate: error:")
    assert message in done.stderr


def test_cli_evaluate_scores_a_synthetic_set_against_its_prompts(tmp_path):
    from PIL import Image

    from mixq_core.data import fashion_mnist_tensors

    images, labels = fashion_mnist_tensors("test")
    (tmp_path / "images").mkdir()
    lines = []
    for i in range(40):  # real test images standing in for generated ones, prompted with their true class
        Image.fromarray(images[i, 0].numpy()).save(tmp_path / "images" / f"{i:04d}.png")
        lines.append(json.dumps({"file": f"images/{i:04d}.png", "classes": [int(labels[i])]}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    done = run_cli("evaluate", "--model", "resnet18", "--data", str(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n_images"] == 40 and result["top1"] >= 85 and result["data"] == str(tmp_path)


def test_mixing_gives_mixed_images_and_soft_targets():
    mix = models.mixer("deit", seed=0)
    images, labels = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    mixed, targets = mix(images.clone(), labels)
    assert targets.shape == (8, 10) and torch.allclose(targets.sum(1), torch.ones(8))
    assert (targets > 0.2).sum(1).max() == 2  # two classes share the label of a mixed picture
    assert not torch.equal(mixed, images)
    assert models.mixer(None, seed=0) is None
    with pytest.raises(UnknownNameError, match="accepted: deit, rsb-a1"):
        models.mixer("augmix", seed=0)


def test_training_loss_on_soft_targets_agrees_with_smoothed_cross_entropy_on_labels():
    logits, labels = torch.randn(6, 10), torch.arange(6)
    smoothed = 0.9 * torch.nn.functional.one_hot(labels, 10).float() + 0.1 / 10  # what Mixup makes of unmixed images
    assert torch.allclose(models.training_loss(logits, smoothed), models.training_loss(logits, labels), atol=1e-6)
    assert not torch.allclose(models.training_loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))


def test_interrupted_training_resumes_bit_for_bit(tmp_path, monkeypatch):
    straight = models.train_mini("deit_mini_mix", tmp_path / "straight.safetensors", epochs=2, limit=256)
    real_augment, calls = models.augment, []

    def stop_in_second_epoch(images, generator, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # two steps per epoch: stop at the first step of the second epoch
            raise KeyboardInterrupt
        return real_augment(images, generator, *args, **kwargs)

    monkeypatch.setattr(models, "augment", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        models.train_mini("deit_mini_mix", tmp_path / "resumed.safetensors", epochs=2, limit=256,
                          resume_dir=tmp_path / "state")
    assert not (tmp_path / "resumed.safetensors").exists()
    assert json.loads((tmp_path / "state" / "state.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(models, "augment", real_augment)
    with pytest.raises(models.TrainingResumeError, match="another training run"):
        models.train_mini("deit_mini_mix", tmp_path / "other.safetensors", epochs=2, limit=256, seed=1,
                          resume_dir=tmp_path / "state")
    resumed = models.train_mini("deit_mini_mix", tmp_path / "resumed.safetensors", epochs=2, limit=256,
                                resume_dir=tmp_path / "state")
    assert (tmp_path / "resumed.safetensors").read_bytes() == (tmp_path / "straight.safetensors").read_bytes()
    assert resumed["final_loss"] == straight["final_loss"] and not (tmp_path / "state").exists()


def test_the_recorded_training_command_leaves_out_the_resume_folder():
    from mixq_core.cli import _without_option

    assert _without_option(["resnet18_mix", "--resume", "runs/a", "--seed", "1"], "--resume") == \
        ["resnet18_mix", "--seed", "1"]
    assert _without_option(["resnet18_mix", "--resume=runs/a"], "--resume") == ["resnet18_mix"]


def test_a_file_as_training_resume_folder_is_one_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    done = run_cli("train-mini", "resnet18_mix", "--limit", "64", "--out", str(tmp_path / "m.safetensors"),
                   "--resume", str(tmp_path / "a-file"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "training resume folder" in done.stderr and "is an existing file" in done.stderr
