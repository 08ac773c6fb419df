"""Resumable reconstruction and the cache placement: an interrupted run resumed, and a cache kept in CPU memory,
give exactly what an uninterrupted run with the cache on the device gives."""

import dataclasses

import pytest
import torch
from test_quant_helpers import noise_loader, tiny_cnn, tiny_vit

from mixq_core.errors import UnknownNameError
from mixq_core.quant import QuantConfig, ResumeError, quantize
from mixq_core.quant import reconstruct as reconstruct_module
from mixq_core.quant.reconstruct import cache_placement

FAST = {"compile": False, "act_init_images": 64, "batch_size": 16, "check_every": 10, "probe_every": 7}
TIMING = ("seconds", "iters_per_second")


class Interrupted(Exception):
    """Stands for a disconnect in the middle of a unit."""


def _config(**overrides) -> QuantConfig:
    return QuantConfig(**{**FAST, "w_bits": 2, "a_bits": 4, "iters": 20, "seed": 3, **overrides})


def _run(build, config, **kwargs):
    return quantize(build().eval(), config, noise_loader(64, seed=1), noise_loader(32, seed=2), **kwargs)


def _unit_values(trace, skip=TIMING) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(u).items() if k not in skip} for u in trace.units]


def _assert_same_model(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a(x), b(x))


def _interrupt_after(monkeypatch, units_done: int) -> None:
    """Let ``units_done`` units finish, then stop the next one in its middle (after its data is cached)."""
    real = reconstruct_module.reconstruct_unit
    calls = []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) > units_done:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(reconstruct_module, "reconstruct_unit", stopping)


@pytest.mark.parametrize("build, method, units_done", [(tiny_cnn, "qdrop", 2), (tiny_vit, "qdrop", 1),
                                                       (tiny_cnn, "adaround", 4)])
def test_interrupted_then_resumed_run_is_bit_identical(tmp_path, monkeypatch, build, method, units_done):
    config = _config(method=method)
    whole_model, whole = _run(build, config)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, units_done)
        with pytest.raises(Interrupted):
            _run(build, config, resume_dir=tmp_path / "resume")
    assert sorted(p.name for p in (tmp_path / "resume").iterdir()) == [
        "state.json", *(f"unit-{i:04d}.safetensors" for i in range(units_done))]
    resumed_model, resumed = _run(build, config, resume_dir=tmp_path / "resume")
    assert resumed.resumed_units == units_done and whole.resumed_units == 0
    _assert_same_model(whole_model, resumed_model)
    assert _unit_values(resumed) == _unit_values(whole)  # losses, gradient norms and probes of every step
    # A finished run's folder gives the result again without reconstructing anything.
    again_model, again = _run(build, config, resume_dir=tmp_path / "resume")
    assert again.resumed_units == len(whole.units)
    _assert_same_model(whole_model, again_model)


def test_a_folder_of_another_run_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "resume"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 1)
        with pytest.raises(Interrupted):
            _run(tiny_cnn, _config(), resume_dir=folder)
    with pytest.raises(ResumeError, match=r"another run \(it differs in w_bits 2 -> 3\)"):
        _run(tiny_cnn, _config(w_bits=3), resume_dir=folder)
    with pytest.raises(ResumeError, match=r"differs in model weights"):
        quantize(tiny_cnn(seed=1).eval(), _config(), noise_loader(64, seed=1), noise_loader(32, seed=2),
                 resume_dir=folder)
    with pytest.raises(ResumeError, match=r"differs in calibration images"):
        quantize(tiny_cnn().eval(), _config(), noise_loader(64, seed=5), noise_loader(32, seed=2), resume_dir=folder)
    # Where the cache is kept is no part of the result: that run may go on with another placement.
    _, trace = _run(tiny_cnn, _config(cache_device="cpu"), resume_dir=folder)
    assert trace.resumed_units == 1
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ResumeError, match="is not a resume folder .*todo.txt"):
        _run(tiny_cnn, _config(), resume_dir=tmp_path / "notes")


@pytest.mark.parametrize("build", [tiny_cnn, tiny_vit])
def test_cache_in_cpu_memory_gives_identical_results(build):
    on_device_model, on_device = _run(build, _config(cache_device="device"))
    on_host_model, on_host = _run(build, _config(cache_device="cpu"))
    _assert_same_model(on_device_model, on_host_model)
    assert _unit_values(on_host, TIMING + ("cache",)) == _unit_values(on_device, TIMING + ("cache",))
    assert {u.cache for u in on_host.units} == {"cpu"} and {u.cache for u in on_device.units} == {"device"}
    _, automatic = _run(build, _config(iters=2))  # auto: on a CPU the device is the CPU memory
    assert {u.cache for u in automatic.units} == {"device"}


def test_auto_cache_placement_moves_the_cache_off_a_full_gpu():
    gpu, gib = torch.device("cuda"), 1 << 30
    assert cache_placement("auto", gpu, cache_bytes=6 * gib, step_bytes=gib, free_bytes=10 * gib) == "device"
    assert cache_placement("auto", gpu, cache_bytes=9 * gib, step_bytes=gib, free_bytes=10 * gib) == "cpu"
    assert cache_placement("auto", torch.device("cpu"), cache_bytes=9 * gib, step_bytes=gib, free_bytes=0) == "device"
    assert cache_placement("cpu", gpu, 0, 0) == "cpu" and cache_placement("device", gpu, 9 * gib, 0, 0) == "device"
    with pytest.raises(UnknownNameError, match="cache_device 'gpu'; accepted: auto, cpu, device"):
        QuantConfig(cache_device="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_cache_in_pinned_memory_gives_identical_results():
    def run(cache_device):
        model = tiny_cnn().eval().cuda()
        loader = [(x.cuda(), y) for x, y in noise_loader(64, seed=1)]
        return quantize(model, _config(cache_device=cache_device), loader)

    (on_device_model, on_device), (on_host_model, on_host) = run("device"), run("cpu")
    for key, value in on_device_model.state_dict().items():
        assert torch.equal(value, on_host_model.state_dict()[key]), key
    assert _unit_values(on_host, TIMING + ("cache",)) == _unit_values(on_device, TIMING + ("cache",))


# ----------------------------------------------------------------------------- experiment.run and `mixq quantize`


needs_resnet18 = pytest.mark.skipif(
    not __import__("mixq_core.models", fromlist=["ASSETS_DIR"]).ASSETS_DIR.joinpath("resnet18.safetensors").exists(),
    reason="assets/resnet18.safetensors is absent (mixq train-mini resnet18)")


@needs_resnet18
def test_experiment_resumed_gives_the_record_of_an_uninterrupted_run(tmp_path, monkeypatch):
    from mixq_core import experiment

    config = experiment.ExperimentConfig(profile="smoke", data="noise", n_calib=16, iters=4)
    whole = experiment.run(config, results_dir=tmp_path / "whole")
    folder = experiment.resume_folder(config, tmp_path / "resume")
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        with pytest.raises(Interrupted):
            experiment.run(config, results_dir=tmp_path / "resumed", resume_dir=folder)
    resumed = experiment.run(config, results_dir=tmp_path / "resumed", resume_dir=folder)
    assert resumed["config_hash"] == whole["config_hash"] == folder.name  # the record's identity is unchanged
    for key in ("top1", "fp_top1", "n_eval", "n_calib", "quant_config", "engine"):
        assert resumed["metrics"][key] == whole["metrics"][key], key
    strip = lambda units: [{k: v for k, v in u.items() if k != "seconds"} for u in units]  # noqa: E731
    assert strip(resumed["metrics"]["units"]) == strip(whole["metrics"]["units"])
    assert {u["cache"] for u in whole["metrics"]["units"]} == {"device"}


@needs_resnet18
def test_resumable_grid_goes_on_from_its_folder_and_removes_it(tmp_path, monkeypatch):
    from mixq_core import experiment

    config = experiment.ExperimentConfig(profile="smoke", data="noise", n_calib=16, iters=4)
    root = tmp_path / "resume"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        with pytest.raises(Interrupted):
            experiment.run_grid([config], results_dir=tmp_path / "results", device="cpu", resume_root=root)
    folder = experiment.resume_folder(config, root)
    assert (folder / "state.json").exists()  # the stopped run left its finished units
    [record] = experiment.run_grid([config], results_dir=tmp_path / "results", device="cpu", resume_root=root)
    whole = experiment.run(config, results_dir=tmp_path / "whole")
    assert record["config_hash"] == whole["config_hash"] and record["metrics"]["top1"] == whole["metrics"]["top1"]
    assert not folder.exists()  # deleted once the record is written


@needs_resnet18
def test_quantize_command_resumes_from_its_folder(capsys, tmp_path, monkeypatch):
    import json

    from mixq_core.cli import main

    monkeypatch.chdir(tmp_path)  # records go to ./results
    argv = ["quantize", "--profile", "smoke", "--model", "resnet18", "--w-bits", "4", "--a-bits", "8", "--data",
            "noise", "--iters", "2", "--n-calib", "32", "--resume", str(tmp_path / "resume")]
    assert main([*argv[:-2], "--force"]) == 0
    whole = json.loads(capsys.readouterr().out)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        with pytest.raises(Interrupted):
            main([*argv, "--force"])
    assert main([*argv, "--force"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert whole["resumed_units"] == 0 and resumed["resumed_units"] == 3
    assert resumed["top1"] == whole["top1"] and resumed["config_hash"] == whole["config_hash"]
    assert main([*argv[:6], "2", *argv[7:]]) == 2  # --w-bits 2 with the W4 run's folder
    assert "holds the reconstruction of another run (it differs in w_bits 4 -> 2)" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main([*argv[:-1], str(tmp_path / "file")]) == 2
    assert "resume folder" in capsys.readouterr().err
