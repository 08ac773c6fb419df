"""The grid on a local Ray instance: same records as the local executor, retries, failures by name."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mixq_core import executor, experiment
from mixq_core.errors import ConfigError, UnknownNameError
from mixq_core.profiles import write_profile
from mixq_core.reproduce import reproduce

MIXUP_POINT = "resnet18 W4A4 mixup g=3.0 n=20 iters=4 seed=0"


@pytest.fixture(scope="module")
def grid_profile(tmp_path_factory):
    """The smoke profile cut to two grid points that need one synthetic set (made in shards)."""
    write_profile("smoke-executor", tmp_path_factory.mktemp("profiles"), extends="smoke",
                  grid_cnn={"models": ["resnet18"], "bits": [[4, 4]], "data": ["noise", "mixup"], "seeds": [0],
                            "n_calib": 20, "iters": 4},
                  grid_vit=None, ablations=None)
    return "smoke-executor"


def _comparable(value):
    """A record without what measures time or names the run (wall times, timestamps, folders)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()
                if "seconds" not in k and k not in ("provenance", "set_folder")}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _records(folder: Path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.rglob("ptq/*/*.json"))}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    yield ray
    ray.shutdown()


def test_the_plan_lists_every_grid_point_once():
    plan = executor.profile_plan("smoke")
    assert len(plan) == len(set(plan))
    labels = [executor.experiment_label(c) for c in plan]
    assert len(set(labels)) == len(labels)  # names report failures: no two grid points share one
    assert "resnet18 W4A4 mixup g=3.0 n=20 iters=4 seed=0" in labels
    assert "deit_mini W4A4 real n=20 iters=4 seed=0" in labels
    assert any("mixup-embed" in label for label in labels) and any("near" in label for label in labels)


def test_unknown_executor_and_misplaced_options_are_refused():
    with pytest.raises(UnknownNameError, match="accepted: local, ray"):
        executor.run_plan("smoke", "dask")
    with pytest.raises(ConfigError, match="--executor ray only"):
        executor.run_plan("smoke", "local", shards=3)


def test_ray_records_equal_local_records_and_a_rerun_skips_them(grid_profile, local_ray, tmp_path):
    local = executor.run_locally(grid_profile, results_dir=tmp_path / "local")
    assert local.failures == [] and local.done["experiments"] == 2
    on_ray = executor.run_on_ray(grid_profile, results_dir=tmp_path / "ray", shards=2)
    assert on_ray.failures == []
    assert on_ray.done == {"synthesis": 3, "experiments": 2, "notebooks": 0}  # 2 shards + the set's manifest
    local_records, ray_records = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert sorted(local_records) == sorted(ray_records) and len(local_records) == 2
    for name, record in local_records.items():
        assert _comparable(record) == _comparable(ray_records[name]), name
    again = executor.run_on_ray(grid_profile, results_dir=tmp_path / "ray", shards=2)
    assert again.done == {"synthesis": 0, "experiments": 0, "notebooks": 0} and again.failures == []


def test_a_failing_grid_point_is_retried_once_then_reported_by_name(grid_profile, tmp_path, monkeypatch):
    calls = []
    real_run = executor.run

    def flaky(config, *args):  # noise fails once, mixup fails every time
        calls.append(config.data)
        if config.data == "noise" and calls.count("noise") == 1:
            raise RuntimeError("worker lost")
        if config.data == "mixup":
            raise RuntimeError("out of memory in block layer1.0")
        return real_run(config, *args)

    monkeypatch.setattr(executor, "run", flaky)
    report = executor.run_locally(grid_profile, results_dir=tmp_path)
    assert calls.count("noise") == calls.count("mixup") == executor.ATTEMPTS == 2
    assert [(f.stage, f.name) for f in report.failures] == [("experiments", MIXUP_POINT)]
    assert report.failures[0].error == "RuntimeError: out of memory in block layer1.0"
    assert report.done["experiments"] == 1  # noise made it on its retry
    assert len(_records(tmp_path)) == 1


@pytest.mark.parametrize("executor_name, options", [("local", {}), ("ray", {"shards": 1})])
def test_both_executors_report_a_failing_grid_point_by_name(grid_profile, local_ray, tmp_path, executor_name,
                                                            options):
    [mixup] = [c for c in executor.profile_plan(grid_profile) if c.data == "mixup"]
    damaged = experiment.synthetic_set_folder(mixup, tmp_path)  # the set is there; its manifest is not JSON
    damaged.mkdir(parents=True)
    (damaged / "manifest.jsonl").write_text("not json\n")
    report = executor.run_plan(grid_profile, executor_name, results_dir=tmp_path, **options)
    assert [(f.stage, f.name) for f in report.failures] == [("experiments", MIXUP_POINT)]
    assert "manifest.jsonl line 1 is not a JSON object" in report.failures[0].error
    assert report.done["experiments"] == 1 and len(_records(tmp_path)) == 1


def test_reproduce_with_ray_runs_the_notebooks_as_tasks(grid_profile, local_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notebooks").mkdir()
    cells = [new_code_cell("profile = 'x'", metadata={"tags": ["parameters"]}),
             new_code_cell("open('ran.txt', 'w').write(profile)")]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "P",
                                                           "language": "python"}})
    (tmp_path / "notebooks" / "01_note.ipynb").write_text(nbformat.writes(nb))
    result = reproduce(grid_profile, skip_book=True, executor="ray", shards=1, results_dir=tmp_path / "results")
    assert result["executor"]["done"]["notebooks"] == 1 and result["executor"]["done"]["experiments"] == 2
    assert (tmp_path / "ran.txt").read_text() == grid_profile
    assert (tmp_path / "executed" / "01_note.ipynb").exists()
