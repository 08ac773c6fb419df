import json
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mixq_core import experiment, models, results
from mixq_core.errors import UnknownNameError
from mixq_core.executor import profile_plan
from mixq_core.models import MINI_MODELS, read_assets_manifest
from mixq_core.profiles import PROFILE_NAMES, load_profile
from mixq_core.quant import METHODS
from mixq_core.reproduce import ReproduceError, list_pages, reproduce

REQUIRED_KEYS = {"dataset", "vocabulary", "models", "weights", "eval_data", "eval_batch_size", "generator", "steps",
                 "guidance", "resolution", "n_calib", "n_synth"}


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_parse_and_name_existing_models(name):
    import timm

    profile = load_profile(name)
    assert REQUIRED_KEYS <= profile.keys()
    known = set(MINI_MODELS) if profile["weights"] == "assets" else set(timm.list_models(pretrained=False))
    assert set(profile["models"]) <= known
    tags = profile.get("pretrained_tags") or {}
    assert set(tags) <= set(profile["models"])
    assert all(f"{model}.{tag}" in timm.list_pretrained(f"{model}.{tag}") for model, tag in tags.items())
    for section in ("grid_cnn", "grid_vit"):
        for config in (experiment.grid_configs(name, section) if profile.get(section) else []):
            assert config.resolved().method in METHODS and config.model in profile["models"]


@pytest.mark.parametrize("name", ["mini", "smoke"])
def test_world_profiles_change_only_the_generator_and_run_only_generated_sources(name):
    from mixq_core.generator import WORLDS, generator_name
    from mixq_core.report import world_profiles

    worlds = world_profiles(name)
    assert list(worlds) == list(WORLDS)
    plain = load_profile(worlds["plain"])
    for world, profile_name in list(worlds.items())[1:]:
        profile = load_profile(profile_name)
        assert profile["generator"] == generator_name(world)
        assert {k: profile[k] for k in ("steps", "guidance", "n_calib", "iters", "dataset", "weights")} == {
            k: plain[k] for k in ("steps", "guidance", "n_calib", "iters", "dataset", "weights")}
        configs = [c for s in experiment.GRID_SECTIONS if profile.get(s)
                   for c in experiment.grid_configs(profile_name, s)]
        assert configs and {c.data for c in configs} <= set(experiment.SYNTHETIC_SOURCES)
        plain_cells = {(c.model, c.w_bits, c.a_bits, c.n_calib, c.iters) for s in experiment.GRID_SECTIONS
                       if plain.get(s) for c in experiment.grid_configs(worlds["plain"], s)}
        assert {(c.model, c.w_bits, c.a_bits, c.n_calib, c.iters) for c in configs} <= plain_cells
        assert not profile.get("ablations")


def test_imagenet_profile_pins_every_models_pretrained_tag():
    profile = load_profile("imagenet")
    assert set(profile["pretrained_tags"]) == set(profile["models"])
    assert profile["iters"] == 20000 and profile["n_calib"] == 1024 and profile["first_last_8bit"] is True


def test_expected_profiles_exist_and_unknown_one_is_refused():
    assert {"mini", "smoke", "imagenet"} <= set(PROFILE_NAMES)
    with pytest.raises(UnknownNameError, match="accepted: imagenet, .*mini"):
        load_profile("cifar")


def test_a_profile_file_is_parsed_once_and_each_caller_gets_its_own_copy(tmp_path, monkeypatch):
    from mixq_core import profiles

    parsed = []
    parse = profiles._parse_profile_file
    monkeypatch.setattr(profiles, "_parse_profile_file", lambda name, path: parsed.append(name) or parse(name, path))
    profiles.write_profile("cached", tmp_path, extends="smoke", iters=3)
    first = load_profile("cached")
    first["grid_cnn"]["models"].append("changed")  # a caller's change stays in its copy
    assert load_profile("cached")["grid_cnn"]["models"] == load_profile("smoke")["grid_cnn"]["models"]
    assert parsed.count("cached") == 1
    profiles.write_profile("cached", tmp_path, extends="smoke", iters=5)  # a changed file is read again
    assert load_profile("cached")["iters"] == 5


def test_config_hash_ignores_key_order_and_sees_values():
    assert results.config_hash({"a": 1, "b": [1, 2]}) == results.config_hash({"b": [1, 2], "a": 1})
    assert results.config_hash({"a": 1}) != results.config_hash({"a": 2})


def test_record_round_trip_carries_provenance(tmp_path):
    path = results.save_record("fp", {"model": "m"}, {"top1": 91.5}, tmp_path)
    record = json.loads(path.read_text())
    assert record["metrics"] == {"top1": 91.5} and record["config_hash"] == path.stem
    assert {"torch", "timm", "git_commit", "time_utc"} <= record["provenance"].keys()
    assert record["provenance"]["threads"] == torch.get_num_threads() >= 1  # what a run's seconds were spent on
    assert record["provenance"]["cpu"] is None or record["provenance"]["cpu"].strip()
    assert results.load_records("fp", tmp_path) == [record]
    assert results.load_record("fp", {"model": "other"}, tmp_path) is None


def test_fp_evaluation_reuses_its_record_unless_forced(tmp_path, monkeypatch):
    calls = []

    def fake_top1(profile, model, limit, seed, data_root=None, device=None):
        calls.append(model)
        return {"top1": 50.0 + len(calls), "n_images": 10}

    monkeypatch.setattr(experiment, "fp_top1", fake_top1)
    first = experiment.run_fp_evaluation("smoke", "resnet18", results_dir=tmp_path)
    again = experiment.run_fp_evaluation("smoke", "resnet18", results_dir=tmp_path)
    assert len(calls) == 1 and again == first
    forced = experiment.run_fp_evaluation("smoke", "resnet18", force=True, results_dir=tmp_path)
    assert len(calls) == 2 and forced["metrics"]["top1"] == 52.0
    # a retrained checkpoint (another sha256 in the manifest) is a new record, never the old one reused
    monkeypatch.setattr(models, "read_assets_manifest",
                        lambda: {"files": {"resnet18.safetensors": {"sha256": "retrained"}}})
    retrained = experiment.run_fp_evaluation("smoke", "resnet18", results_dir=tmp_path)
    assert len(calls) == 3 and retrained["config"]["weights_sha256"] == "retrained"
    assert first["config"]["weights_sha256"] == read_assets_manifest()["files"]["resnet18.safetensors"]["sha256"]


def test_synthetic_set_folder_changes_with_the_weights_that_make_the_set(monkeypatch):
    single = experiment.ExperimentConfig(profile="smoke", data="single")
    genq = experiment.ExperimentConfig(profile="smoke", data="genq")
    before = {c.data: experiment.synthetic_set_folder(c) for c in (single, genq)}
    files = dict(read_assets_manifest()["files"])
    monkeypatch.setattr(models, "read_assets_manifest",
                        lambda: {"files": {**files, "resnet18.safetensors": {"sha256": "retrained"}}})
    # a retrained classifier changes the GenQ set it filters, not the plain single-class set
    assert experiment.synthetic_set_folder(single) == before["single"]
    assert experiment.synthetic_set_folder(genq) != before["genq"]
    generator_file = "mini-generator/unet/diffusion_pytorch_model.safetensors"
    monkeypatch.setattr(models, "read_assets_manifest",
                        lambda: {"files": {**files, generator_file: {"sha256": "retrained"}}})
    assert experiment.synthetic_set_folder(single) != before["single"]


def test_stale_weights_names_a_retrained_classifier_or_generator(monkeypatch):
    files = dict(read_assets_manifest()["files"])
    config = experiment.ExperimentConfig(profile="smoke", data="mixup").resolved()
    made_with = experiment.shipped_weights(experiment.load_profile("smoke"), config)
    assert made_with["model"] == files["resnet18.safetensors"]["sha256"] and len(made_with["generator"]) == 2
    record = {"config": config.to_dict(), "metrics": {"config": config.to_dict(), "weights_sha256": made_with,
                                                      "fp_top1": files["resnet18.safetensors"]["test_top1"]}}
    assert experiment.stale_weights(record) == []
    generator_file = "mini-generator/unet/diffusion_pytorch_model.safetensors"
    monkeypatch.setattr(models, "read_assets_manifest",
                        lambda: {"files": {**files, generator_file: {"sha256": "retrained"}}})
    monkeypatch.setattr(experiment, "read_assets_manifest", models.read_assets_manifest)
    assert experiment.stale_weights(record) == ["generator (sha256 changed)"]
    retrained = {**files["resnet18.safetensors"], "sha256": "retrained", "test_top1": 93.5}
    monkeypatch.setattr(models, "read_assets_manifest",
                        lambda: {"files": {**files, "resnet18.safetensors": retrained}})
    monkeypatch.setattr(experiment, "read_assets_manifest", models.read_assets_manifest)
    stale = experiment.stale_weights(record)
    assert stale[0].startswith("resnet18 (FP top-1") and stale[1] == "model (sha256 changed)"
    old_record = {**record, "metrics": {k: v for k, v in record["metrics"].items() if k != "weights_sha256"}}
    assert experiment.stale_weights(old_record) == [stale[0]]  # made before records kept hashes: FP top-1 only


def _notebook(path, source, title=None):
    cells = [new_code_cell("profile = 'x'\nsection = 'x'", metadata={"tags": ["parameters"]}), new_code_cell(source)]
    cells = [new_markdown_cell(title)] + cells if title else cells
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "P",
                                                                      "language": "python"}}), path)


def test_reproduce_reports_the_failed_notebook_and_runs_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "01_fails.ipynb", "raise RuntimeError('boom in cell')")
    _notebook(tmp_path / "notebooks" / "02_works.ipynb", "open('ran.txt', 'w').write(profile)")
    with pytest.raises(ReproduceError, match="01_fails: .*boom in cell") as info:
        reproduce("smoke", skip_book=True)
    assert "02_works" not in str(info.value)
    assert (tmp_path / "ran.txt").read_text() == "smoke"  # the papermill parameter reached the notebook
    assert (tmp_path / "executed" / "02_works.ipynb").exists()


def test_unknown_notebook_names_the_available_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "00_a.ipynb", "1")
    assert [p.name for p in list_pages(["00_a"])] == ["00_a"]
    with pytest.raises(UnknownNameError, match="accepted: 00_a"):
        list_pages(["99_b"])


def test_a_notebook_with_page_variants_runs_once_per_page_with_its_parameters_and_title(tmp_path, monkeypatch):
    from mixq_core import reproduce as reproduce_module

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "03_both.ipynb", "open(f'{section}.txt', 'w').write(profile)",
              title="# Both sections")
    monkeypatch.setattr(reproduce_module, "PAGE_VARIANTS", {"03_first": ("03_both", {"section": "a"}, "First"),
                                                            "04_second": ("03_both", {"section": "b"}, "Second")})
    assert [p.name for p in list_pages()] == ["03_first", "04_second"]
    assert [p.name for p in list_pages(["03_both"])] == ["03_first", "04_second"]  # a notebook selects its pages
    assert [p.name for p in list_pages(["04_second.ipynb"])] == ["04_second"]
    reproduce("smoke", skip_book=True)
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text() == "smoke"
    for page, title in (("03_first", "First"), ("04_second", "Second")):
        executed = nbformat.read(tmp_path / "executed" / f"{page}.ipynb", as_version=4)
        assert executed.cells[0].source.splitlines()[0] == f"# {title}"
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]  # the page shows one


def test_a_strict_book_refuses_pages_executed_with_another_profile(tmp_path, monkeypatch):
    from mixq_core import reproduce as reproduce_module

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    for name in ("01_a", "02_b"):
        _notebook(tmp_path / "notebooks" / f"{name}.ipynb", "1")
    reproduce("smoke", skip_book=True)
    assert reproduce_module.page_profiles() == {"01_a": "smoke", "02_b": "smoke"}
    monkeypatch.setattr(reproduce_module, "check_checkout", lambda book: None)
    built = []
    monkeypatch.setattr(reproduce_module, "build_book", lambda strict: built.append(strict))
    reproduce("smoke", notebooks=["02_b"], strict=True)  # one profile throughout: the book is built
    assert built == [True]
    with pytest.raises(ReproduceError, match=r"mix profiles.*: 01_a \(smoke\)\."):
        reproduce("mini-short", notebooks=["02_b"], strict=True)  # 01_a still holds smoke's numbers
    assert built == [True]  # refused before jupyter-book ran
    reproduce("mini-short", notebooks=["02_b"])  # not strict: a warning, then the book
    assert built == [True, False]
    assert reproduce_module.page_profiles() == {"01_a": "smoke", "02_b": "mini-short"}


REPO = Path(__file__).resolve().parents[1]
PUBLISHED_PROFILES = ("mini-full", "mini-gap", "mini-polysemy", "mini-gap-polysemy", "mini-short",
                      "mini-long")  # committed under results/ptq


@pytest.mark.parametrize("name", PUBLISHED_PROFILES)
def test_committed_records_belong_to_their_profiles_experiments(name):
    """Every committed record is one the book still finds: its file name is its config's hash, and that config
    is the identity of one of the profile's grid or ablation experiments as the code defines them today."""
    stored = sorted((REPO / "results" / experiment.ptq_kind(name)).glob("*.json"))
    if not stored:
        pytest.skip(f"no committed records for {name}")
    expected = {results.config_hash(c.identity()) for c in profile_plan(name)}  # grid sections and ablations
    for path in stored:
        record = json.loads(path.read_text())
        assert record["kind"] == experiment.ptq_kind(name)
        assert path.stem == record["config_hash"] == results.config_hash(record["config"])
        assert record["config_hash"] in expected, f"{path} is no experiment of profile {name}"
        assert record["provenance"]["git_commit"] and record["metrics"]["config"]["profile"] == name
        assert not (stale := experiment.stale_weights(record)), f"{path} was made with other weights: {stale}; rerun it"
        # Each table comes from one engine: the one its profile states.
        assert experiment.record_engine(record) == experiment.profile_engine(load_profile(name)), path
