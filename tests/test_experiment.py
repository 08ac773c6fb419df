"""Experiments and the report helpers: config validation, record reuse, tables with seed statistics."""

import math

import pandas as pd
import pytest
import torch

from mixq_core import experiment, report
from mixq_core.analysis import frechet_distance
from mixq_core.errors import ConfigError, UnknownNameError
from mixq_core.experiment import ExperimentConfig
from mixq_core.profiles import load_profile


def test_config_validates_and_round_trips():
    config = ExperimentConfig(profile="smoke", data="mixup", k=3)
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UnknownNameError, match="accepted: genq, mixup, mixup-embed, noise, real, single"):
        ExperimentConfig(data="imagenet")
    with pytest.raises(ConfigError, match="k ≥ 2"):
        ExperimentConfig(data="mixup", k=1)
    with pytest.raises(ConfigError, match="unknown experiment config keys"):
        ExperimentConfig.from_dict({"bits": 4})
    with pytest.raises(UnknownNameError, match="model of profile"):
        ExperimentConfig(profile="smoke", model="resnet50").resolved()


def test_identity_ignores_fields_a_source_does_not_use():
    real = ExperimentConfig(profile="smoke", data="real")
    assert real.identity() == ExperimentConfig(profile="smoke", data="real", k=4, guidance=9.0).identity()
    single = ExperimentConfig(profile="smoke", data="single")
    assert single.identity() == ExperimentConfig(profile="smoke", data="single", k=3, partners="near").identity()
    assert single.identity() != ExperimentConfig(profile="smoke", data="single", guidance=9.0).identity()
    assert single.identity() != ExperimentConfig(profile="mini", data="single").identity()


def test_profile_extends_another():
    full, mini = load_profile("mini-full"), load_profile("mini")
    assert full["generator"] == mini["generator"] and full["name"] == "mini-full"
    assert full["grid_cnn"]["seeds"] == [0, 1, 2]


def test_grid_and_ablation_configs_cover_the_profile_sections():
    grid = experiment.grid_configs("mini-full", "grid_cnn")
    assert len(grid) == len(set(grid)) == 2 * 2 * 5 * 3 + 5 * 3  # + the extra sub-grid: resnet18 at W2A2
    assert {c.data for c in grid} == {"real", "noise", "single", "genq", "mixup"}
    assert {c.model for c in grid if (c.w_bits, c.a_bits) == (2, 2)} == {"resnet18"}
    ablations = experiment.ablation_configs("mini-full")
    assert [c.data for c in ablations["k"][::3]] == ["single", "mixup", "mixup", "mixup"]
    assert [c.k for c in ablations["k"][3::3]] == [2, 3, 4]
    assert {c.partners for c in ablations["partners"]} == {"random", "near", "far"}
    assert {c.data for c in ablations["mixing"]} == {"mixup", "mixup-embed"}


def test_grid_records_read_the_main_tables_without_ablation_runs(tmp_path):
    from mixq_core.results import save_record

    grid_cell = experiment.grid_configs("smoke", "grid_cnn")[0]
    ablation_cell = next(c for group in experiment.ablation_configs("smoke").values() for c in group
                         if c.resolved() not in {g.resolved() for g in experiment.grid_configs("smoke", "grid_cnn")})
    for config in (grid_cell, ablation_cell):
        save_record(experiment.ptq_kind("smoke"), config.resolved().identity(), {"top1": 1.0}, tmp_path)
    assert len(report.ptq_records("smoke", tmp_path)) == 2
    assert [r["config"] for r in report.grid_records("smoke", results_dir=tmp_path)] == [
        grid_cell.resolved().identity()]
    assert len(report.existing_records([ablation_cell, grid_cell], tmp_path)) == 2


def test_world_records_share_the_plain_worlds_real_and_noise_runs_cell_by_cell(tmp_path):
    from mixq_core.results import save_record

    def save(profile: str, data: str, model: str = "resnet18", top1: float = 50.0) -> None:
        config = ExperimentConfig(profile=profile, model=model, data=data, n_calib=20, iters=4)
        save_record(experiment.ptq_kind(profile), config.resolved().identity(),
                    {"config": config.resolved().to_dict(), "top1": top1}, tmp_path)

    for data in ("real", "noise", "single", "mixup"):
        save("smoke", data)
    save("smoke", "real", model="deit_mini")
    save("smoke-gap", "mixup", top1=60.0)
    worlds = {"plain": "smoke", "gap": "smoke-gap", "polysemy": "smoke-polysemy"}
    found = report.world_records(worlds, tmp_path)
    assert [len(found[w]) for w in worlds] == [5, 3, 0]  # gap: resnet18's real and noise, its own mixup
    assert {r["metrics"]["config"]["data"] for r in found["gap"]} == {"real", "noise", "mixup"}
    assert {r["metrics"]["config"]["model"] for r in found["gap"]} == {"resnet18"}
    assert [r["metrics"]["top1"] for r in found["gap"] if r["metrics"]["config"]["data"] == "mixup"] == [60.0]
    with pytest.raises(ConfigError, match="no 'worlds' section"):
        report.world_profiles("imagenet")


def test_verdict_counts_split_cells_by_direction_beyond_the_spread():
    comparison = pd.DataFrame({"world": ["plain", "plain", "gap", "gap"], "mixup − single": [-3.0, 0.5, 2.0, -0.1],
                               "verdict": ["behind, beyond seed spread", "within seed spread",
                                           "ahead, beyond seed spread", "within seed spread"]})
    counts = report.verdict_counts(comparison, "mixup − single")
    assert counts.loc["plain"].tolist() == [0, 1, 1, 0] and counts.loc["gap"].tolist() == [1, 0, 1, 0]


def test_world_conclusion_states_each_worlds_verdict_and_its_shift_from_plain():
    versus_single = pd.DataFrame({"world": ["plain", "plain", "gap", "gap", "polysemy", "polysemy"],
                                  "mixup − single": [-0.4, -0.2, 0.6, 0.2, 0.1, -0.1],
                                  "verdict": ["behind, beyond seed spread", "within seed spread",
                                              "ahead, beyond seed spread", "within seed spread", "within seed spread",
                                              "within seed spread"]})
    drops = pd.DataFrame({"world": ["plain", "plain", "gap", "gap", "polysemy", "polysemy"],
                          "data": ["single", "mixup"] * 3, "drop from real": [0.2, 0.4, 1.2, 1.0, 0.3, 0.3]})
    summary = report.world_summary(versus_single, drops)
    assert summary.index.tolist() == ["plain", "gap", "polysemy"]
    assert summary.loc["gap", "cells"] == 2 and summary.loc["gap", "ahead"] == 1
    assert summary.loc["gap", "mixup − single"] == pytest.approx(0.4)
    assert summary.loc["plain", "drop mixup"] == pytest.approx(0.4)
    text = report.world_conclusion(summary)
    assert "**plain**: mixup-class prompts fall behind single-class prompts beyond the seed spread in 1 of 2" in text
    assert "**gap**: mixup-class prompts beat single-class prompts beyond the seed spread in 1 of 2" in text
    assert "**polysemy**: no difference exceeds the seed spread in any of 2" in text
    # gap: margin 0.4 against plain's -0.3; generated sources 1.1 below real against plain's 0.3
    assert summary.loc["plain", "median mixup − single"] == pytest.approx(-0.3)
    assert ("**gap against plain**: mixup's margin over single-class prompts changes by +0.70 pt on average "
            "(+0.70 pt in the median); the cells it loses beyond the seed spread go from 1 to 0") in text
    assert "+0.80 pt further below real-data calibration" in text
    # polysemy's mean is exactly 0: not a lead
    assert ("**In short**: mixup-class prompts lead single-class prompts on average in gap; their mean margin gains "
            "most against plain in gap (+0.70 pt, while the cells they lose beyond the seed spread go from 1 to 0); "
            "over all worlds they win beyond the seed spread in 1 and lose beyond it in 1 of 6 cells.") == (
        text.splitlines()[0])  # the answer opens the conclusion
    assert "nothing to conclude" in report.world_conclusion(summary.iloc[0:0])
    # one seed (the smoke profile's worlds): no cell is judged, and none is counted as "within the spread"
    one_seed = versus_single.assign(verdict="one seed: no spread to compare")
    text = report.world_conclusion(report.world_summary(one_seed, drops))
    assert "**plain**: all 2 cells have one seed so far: no verdict against the seed spread (mean" in text
    assert "no difference exceeds" not in text
    assert text.splitlines()[0].endswith("over all worlds every one of the 6 cells rests on one seed so far, so "
                                         "none is won or lost beyond the seed spread.")
    one_cell = report.world_summary(one_seed.iloc[[0, 2]], drops)  # one cell per world
    assert "**plain**: its one cell has one seed so far" in report.world_conclusion(one_cell)
    mixed = versus_single.assign(verdict=["behind, beyond seed spread", "one seed: no spread to compare"] * 3)
    text = report.world_conclusion(report.world_summary(mixed, drops))
    assert ("**plain**: mixup-class prompts fall behind single-class prompts beyond the seed spread in 1 of 1 cell "
            "with several seeds, 1 more on one seed") in text
    assert "(3 of them on one seed, with no verdict)." in text
    # every world's margin below plain's: the best of them loses least, it does not gain
    behind = versus_single.assign(**{"mixup − single": [0.4, 0.2, -0.6, -0.2, -0.1, -0.1]})
    assert "their mean margin loses least against plain in polysemy (−0.40 pt" in report.world_conclusion(
        report.world_summary(behind, drops))


def test_classifier_comparison_sets_each_mix_trained_model_beside_its_plain_twin():
    rows = [("resnet18", "W2A4", "mixup", 80.0, 0.2), ("resnet18", "W2A4", "single", 82.0, 0.2),
            ("resnet18_mix", "W2A4", "mixup", 83.0, 0.2), ("resnet18_mix", "W2A4", "single", 82.9, 0.2),
            ("resnet18", "W2A2", "mixup", 50.0, 0.2), ("resnet18", "W2A2", "single", 51.0, 0.2),
            ("mobilenetv2_100", "W2A4", "mixup", 60.0, 0.2), ("mobilenetv2_100", "W2A4", "single", 61.0, 0.2)]
    table = pd.DataFrame(rows, columns=["model", "bits", "data", "top1_mean", "top1_std"]).assign(seeds=3)
    comparison = report.classifier_comparison(table)
    assert comparison[["architecture", "bits", "classifier"]].values.tolist() == [
        ["resnet18", "W2A4", "plain"], ["resnet18", "W2A4", "mix-trained"], ["resnet18", "W2A2", "plain"]]
    text = report.classifier_conclusion(comparison)
    assert ("**resnet18 W2A4**: mixup-class minus single-class is −2.00 pt, behind, beyond seed "
            "spread on the plain classifier and +0.10 pt, within seed spread on the mix-trained one.") in text
    assert "W2A2" not in text  # no mix-trained run there: nothing to compare
    # the move: +0.10 - (-2.00), standard error hypot(0.163, 0.163) = 0.23
    assert "The mix-trained classifier moves it by +2.10 pt (standard error 0.23): beyond the seed spread." in text
    assert ("moves the difference beyond the seed spread in 1 of the 1 setting with seeds on both sides, and "
            "changes the verdict in 1.") in text
    same = comparison.assign(verdict="within seed spread")
    assert "beyond the seed spread in 1 of the 1 setting with seeds on both sides, though the verdict stays the same" \
        in report.classifier_conclusion(same)
    # a verdict that flips at the edge of its spread while the move stays within it (the long grid's W2A4 so far)
    edge = report.classifier_comparison(pd.DataFrame(
        [("resnet18", "W2A4", "mixup", 91.48, 0.16), ("resnet18", "W2A4", "single", 91.94, 0.02),
         ("resnet18_mix", "W2A4", "mixup", 91.09, 0.08), ("resnet18_mix", "W2A4", "single", 91.31, 0.14)],
        columns=["model", "bits", "data", "top1_mean", "top1_std"]).assign(seeds=2))
    assert edge["verdict"].tolist() == ["behind, beyond seed spread", "within seed spread"]
    text = report.classifier_conclusion(edge)
    assert "moves it by +0.24 pt (standard error 0.16): within the seed spread." in text
    assert ("does not move the difference beyond the seed spread in the 1 setting with seeds on both sides; the "
            "verdict reads differently in 1, where a difference sits near twice its standard error.") in text
    unmoved = comparison.assign(**{"mixup − single": [-2.0, -1.9, -1.0]}, verdict="behind, beyond seed spread")
    assert ("does not change the answer: in the 1 setting with seeds on both sides the difference moves within the "
            "seed spread and the verdict stays the same.") in report.classifier_conclusion(unmoved)
    assert "nothing to conclude" in report.classifier_conclusion(comparison.iloc[:1])
    # one seed on the mix-trained side: the setting is listed, but no verdict is compared or claimed
    one_seed = report.classifier_comparison(table.assign(seeds=[3, 3, 1, 1, 3, 3, 3, 3]))
    text = report.classifier_conclusion(one_seed)
    assert "+0.10 pt, one seed: no spread to compare on the mix-trained one" in text
    assert "no verdict yet. 1 setting has both classifiers, but with one seed on a side" in text
    assert "change the answer" not in text and "changes the verdict" not in text
    assert report.classifier_comparison(table[table["model"] == "mobilenetv2_100"]).empty
    # a plain model whose mix-trained twin never ran (deit_mini's is not trained): no row without a partner
    assert report.classifier_comparison(table[table["model"] != "resnet18_mix"]).empty


def test_collapsed_settings_are_those_where_real_data_calibration_itself_fails():
    table = pd.DataFrame({"model": ["cnn", "cnn", "cnn", "vit"], "bits": ["W2A4", "W2A4", "W4A4", "W2A4"],
                          "data": ["real", "single", "real", "real"], "top1_mean": [18.0, 30.0, 89.0, 45.1],
                          "fp_top1": [91.5, 91.5, 91.5, 90.0]})
    # real 18.0 < 0.5 × 91.5 collapses; 45.1 is just above half of 90.0; a generated source never decides
    assert report.collapsed_settings(table) == ["cnn W2A4"]
    assert report.collapsed_settings(table, keep_share=0.6) == ["cnn W2A4", "vit W2A4"]


def test_records_frame_counts_classes_per_prompt():
    def record(data: str, k: int = 2) -> dict:
        config = ExperimentConfig(profile="smoke", data=data, k=k).to_dict()
        return {"config_hash": data, "metrics": {"config": config, "top1": 50.0, "fp_top1": 60.0, "drop": 10.0,
                                                 "n_eval": 10, "seconds": {"quantize_seconds": 1.0}}}

    frame = report.records_frame([record("real"), record("single"), record("genq"), record("mixup", k=3)])
    assert frame["k"].tolist()[1:] == [1, 1, 3] and pd.isna(frame["k"].iloc[0])


def test_run_writes_a_record_and_reuses_it(tmp_path, monkeypatch):
    torch.set_num_threads(2)
    config = ExperimentConfig(profile="smoke", data="noise", n_calib=16, iters=2)
    record = experiment.run(config, results_dir=tmp_path)
    metrics = record["metrics"]
    assert record["config_hash"] and record["provenance"]["torch"]
    assert metrics["n_calib"] == 16 and metrics["config"]["iters"] == 2
    assert 0 <= metrics["top1"] <= 100
    assert metrics["drop"] == pytest.approx(metrics["fp_top1"] - metrics["top1"], abs=0.01)
    unit = metrics["units"][1]
    assert len(unit["generalization_error"]) == len(unit["probe_steps"]) >= 1
    assert set(metrics["seconds"]) >= {"quantize_seconds", "eval_seconds", "synthesis_seconds"}

    def fail(*args, **kwargs):
        raise AssertionError("the record should have been reused")

    monkeypatch.setattr(experiment, "quantize", fail)
    assert experiment.run(config, results_dir=tmp_path) == record
    with pytest.raises(AssertionError, match="reused"):
        experiment.run(config, results_dir=tmp_path, force=True)


def _frame(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"model": "m", "bits": "W2A4", "data": data, "seed": seed, "top1": top1, "fp_top1": 90.0}
            for data, tops in values.items() for seed, top1 in enumerate(tops)]
    return pd.DataFrame(rows)


def test_summary_and_comparison_use_mean_std_and_standard_error():
    table = report.summary_table(_frame({"mixup": [80.0, 82.0, 84.0], "single": [79.0, 80.0, 81.0],
                                         "real": [85.0, 85.0, 85.0]}))
    assert list(table["data"]) == ["real", "single", "mixup"]  # the book's source order
    mixup = table[table["data"] == "mixup"].iloc[0]
    assert mixup["top1_mean"] == 82.0 and mixup["top1_std"] == 2.0 and mixup["drop"] == 8.0
    compared = report.compare_sources(table, "mixup", "single").iloc[0]
    se = math.sqrt(4 / 3 + 1 / 3)
    assert compared["mixup − single"] == 2.0 and compared["standard error"] == pytest.approx(se)  # unrounded
    assert compared["verdict"] == "within seed spread"  # |2.0| < 2 × 1.29
    far = report.summary_table(_frame({"mixup": [88.0, 88.5, 89.0], "single": [79.0, 80.0, 81.0]}))
    assert report.compare_sources(far, "mixup", "single").iloc[0]["verdict"] == "ahead, beyond seed spread"
    assert report.compare_sources(far, "single", "mixup").iloc[0]["verdict"] == "behind, beyond seed spread"
    wide = report.pivot_sources(table)
    assert list(wide.columns) == ["FP", "real", "single", "mixup"]
    assert wide.loc[("m", "W2A4"), "mixup"] == "82.00\u00a0±\u00a02.00"


def test_frechet_distance_is_zero_for_equal_sets_and_sees_a_mean_shift():
    features = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shifted = features + torch.tensor([3.0] + [0.0] * 7)
    assert frechet_distance(features, shifted) == pytest.approx(9.0, rel=1e-6)
    with pytest.raises(ConfigError, match="equal width"):
        frechet_distance(features, features[:, :4])
