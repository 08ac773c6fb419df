"""The book's figures: every panel shows the data of the group it is titled with."""

import math

import matplotlib
import pandas as pd
import pytest

from mixq_core.report import (
    SOURCE_LABELS,
    compare_sources,
    pivot_sources,
    plot_differences,
    plot_sources,
    summary_table,
)
from mixq_core.sources import SOURCES

matplotlib.use("Agg")


def _frame() -> pd.DataFrame:
    """Records of two models, where one model has a bit setting the other lacks (the case that misplaced panels)."""
    rows = []
    cells = [("mobilenetv2_100", "W4A4"), ("resnet18", "W4A4"), ("resnet18", "W2A2")]
    for model_index, (model, bits) in enumerate(cells):
        for source_index, data in enumerate(("real", "single", "mixup")):
            for seed in (0, 1, 2):
                rows.append({"model": model, "bits": bits, "data": data, "seed": seed, "fp_top1": 93.0,
                             "top1": 80 + 5 * model_index + source_index + 0.1 * seed})
    return pd.DataFrame(rows)


def test_each_panel_of_the_source_figure_shows_its_own_group():
    table = summary_table(_frame())
    figure = plot_sources(table)
    axes = [axis for axis in figure.axes if axis.get_visible()]
    assert len(axes) == 3  # one per group that has records, none for the missing mobilenetv2_100 W2A2
    for axis in axes:
        model, bits = axis.get_title().split()
        expected = table[(table["model"] == model) & (table["bits"] == bits)]
        shown = [container.lines[0].get_ydata()[0] for container in axis.containers]
        assert shown == pytest.approx(list(expected["top1_mean"]))
        labels = [tick.get_text() for tick in axis.get_xticklabels()]
        assert labels == [SOURCE_LABELS[d] for d in expected["data"]]
        lows, highs = axis.get_ylim()
        assert highs - lows < 30  # zoomed on the data, not 0–100


def test_the_difference_figure_shows_each_baseline_with_two_standard_errors():
    table = summary_table(_frame())
    comparisons = {b: compare_sources(table, "mixup", b) for b in ("single", "real")}
    figure = plot_differences(comparisons)
    for axis in [axis for axis in figure.axes if axis.get_visible()]:  # a grid's spare panels are hidden
        model, bits = axis.get_title().split()
        for container, baseline in zip(axis.containers, comparisons, strict=True):
            row = comparisons[baseline].set_index(["model", "bits"]).loc[(model, bits)]
            assert container.lines[0].get_xdata()[0] == pytest.approx(row[f"mixup − {baseline}"])
            low, high = (cap.get_xdata()[0] for cap in container.lines[1])  # the error bar's two caps
            assert high - low == pytest.approx(4 * row["standard error"], abs=1e-6)
        # each comparison on its own row, the same in every panel
        assert [container.lines[0].get_ydata()[0] for container in axis.containers] == [0, 1]
    # one y axis: the labels, long, are written on the first panel of a row only
    assert [tick.get_text() for tick in figure.axes[0].get_yticklabels()] == ["mixup − single-class",
                                                                              "mixup − real\n(upper bound)"]
    one_seed = {"single": comparisons["single"].assign(**{"standard error": float("nan")})}
    for axis in [axis for axis in plot_differences(one_seed).axes if axis.get_visible()]:  # no spread: hollow
        assert axis.containers[0].lines[0].get_markerfacecolor() == "white"



def test_stacked_comparisons_keep_each_baselines_difference_and_verdict():
    from mixq_core.report import stack_comparisons

    table = summary_table(_frame())
    comparisons = {b: compare_sources(table, "mixup", b) for b in ("single", "real")}
    stacked = stack_comparisons(comparisons)
    assert len(stacked) == sum(len(t) for t in comparisons.values())
    assert list(stacked.columns) == ["mixup − baseline", "standard error", "verdict"]
    for baseline, compared in comparisons.items():
        for row in compared.itertuples(index=False):
            shown = stacked.loc[(row.model, row.bits, SOURCES[baseline].heading)]
            assert shown["mixup − baseline"] == compared.set_index(["model", "bits"]).loc[
                (row.model, row.bits), f"mixup − {baseline}"]
            assert shown["verdict"] == row.verdict
    assert stack_comparisons({"single": compare_sources(table, "mixup", "genq")}).empty  # no genq runs: nothing
    # baselines by their short headings, as the main table's columns: "GenQ", not "GenQ (single + energy filter)"
    headed = stack_comparisons({"genq": compare_sources(table.replace({"data": {"single": "genq"}}), "mixup", "genq")})
    assert set(headed.index.get_level_values("baseline")) == {"GenQ"}


def test_stacked_comparisons_keep_the_grid_order_of_models_and_bits_from_wide_to_narrow():
    from mixq_core.report import stack_comparisons

    frame = pd.DataFrame([{"model": model, "bits": bits, "data": data, "seed": seed, "top1": 80.0 + seed,
                           "fp_top1": 90.0}
                          for model, settings in (("resnet18", ["W2A2", "W2A4"]), ("mobilenetv2_100", ["W2A4", "W4A4"]))
                          for bits in settings for data in ("mixup", "single", "genq") for seed in (0, 1)])
    table = summary_table(frame)
    stacked = stack_comparisons({b: compare_sources(table, "mixup", b) for b in ("single", "genq")})
    assert stacked.index.tolist() == [
        (model, bits, SOURCES[baseline].heading)
        for model, bits in (("resnet18", "W2A4"), ("resnet18", "W2A2"), ("mobilenetv2_100", "W4A4"),
                            ("mobilenetv2_100", "W2A4"))
        for baseline in ("single", "genq")]

# ----------------------------------------------------------------------------- the ImageNet comparison table


def test_every_reference_row_names_its_source_and_where_it_was_read():
    from mixq_core.report import imagenet_reference

    reference = imagenet_reference()
    assert len(reference)
    for column in ("source", "url", "method", "calibration", "model"):
        assert (reference[column].str.strip() != "").all(), column
    assert reference["url"].str.startswith("https://").all()
    assert set(reference["second_hand"]) <= {"yes", "no"} and set(reference["data_free"]) <= {"yes", "no"}
    second_hand = reference["second_hand"] == "yes"
    assert reference.loc[second_hand, "source"].str.endswith("(second-hand)").all()
    assert not reference.loc[~second_hand, "source"].str.contains("second-hand").any()
    assert (reference["data_free"] == "yes").sum() >= 2  # the data-free peers: PSAQ-ViT and GenQ at least
    assert reference["method"].str.startswith("GenQ").any()


def test_the_comparison_table_shows_the_reference_file_untruncated():
    import csv

    from mixq_core.report import MAX_CELL_TEXT, REFERENCE_COLUMNS, REFERENCE_CSV, beside_reference, reference_display

    ours = pd.DataFrame([{"model": "resnet18", "bits": "W2A4", "method": "qdrop", "data": "mixup", "n_calib": 250,
                          "top1": 50.0, "fp_top1": 69.76, "drop": 19.76}])
    table = beside_reference(ours, ["resnet18", "resnet50"])
    assert list(table.columns) == REFERENCE_COLUMNS
    assert (table["source"] == "MixQ (this run)").sum() == 1
    # Rows differ in their shown text: method and source have columns of their own, none cut by pandas.
    text = table.select_dtypes(exclude="number")
    assert text.map(len).max().max() <= MAX_CELL_TEXT
    assert not table.duplicated(["method", "source", "model", "bits"]).any()
    assert "..." not in table.to_html() and "..." not in reference_display(table).to_html()
    # Every published row of these models appears, with its value as the file has it.
    with open(REFERENCE_CSV, newline="") as handle:
        published = [row for row in csv.DictReader(handle)
                     if row["model"] in ("resnet18", "resnet50") and int(row["w_bits"]) < 32]
    theirs = table[table["source"] != "MixQ (this run)"]
    assert len(theirs) == len(published)
    for (_, shown), row in zip(theirs.iterrows(), published, strict=True):
        assert shown["method"] == row["method"] and shown["bits"] == f"W{row['w_bits']}A{row['a_bits']}"
        assert shown["top1"] == pytest.approx(float(row["top1"]))
        if row["fp_top1"]:
            assert shown["drop"] == pytest.approx(float(row["fp_top1"]) - float(row["top1"]), abs=0.006)
        else:
            assert pd.isna(shown["drop"])
    html = reference_display(table).to_html()
    assert "nan" not in html.lower() and ">—</td>" in html  # a source without a full-precision number: a dash


def test_the_provenance_line_names_the_span_and_the_last_commit_not_every_hash():
    from mixq_core.report import provenance_line

    def record(day, commit):
        return {"metrics": {"profile": "mini-full"},
                "provenance": {"time_utc": f"2026-11-{day}T01:00:00Z", "git_commit": commit * 40, "torch": "2.14.1"}}

    records = [record(day, commit) for day, commit in (("27", "a"), ("25", "b"), ("26", "c"), ("27", "a"))]
    assert provenance_line(records) == ("4 records of profile mini-full by engine 1 made 2026-11-25 to 2026-11-27 "
                                        "(3 commits, the last aaaaaaaaaa); torch 2.14.1")
    assert provenance_line(records[:1]) == ("1 record of profile mini-full by engine 1 made 2026-11-27 "
                                            "(commit aaaaaaaaaa); torch 2.14.1")
    for seed, model in enumerate(("resnet18", "deit_mini", "resnet18")):  # the runs a page's figures draw
        records[seed]["config"] = {"model": model, "seed": seed}
    assert provenance_line(records[:3]).startswith(
        "3 records of profile mini-full (resnet18, deit_mini; seeds 0, 1, 2) by engine 1 ")
    assert provenance_line(records[:1]).startswith("1 record of profile mini-full (resnet18; seed 0) by engine 1 made")


def test_the_source_conclusion_counts_verdicts_and_leaves_collapsed_settings_out():
    from mixq_core.report import source_conclusion

    frame = _frame()
    frame.loc[frame["model"] == "mobilenetv2_100", "top1"] = 20.0 + frame["seed"]  # collapsed: real < FP / 2
    frame.loc[(frame["model"] == "resnet18") & (frame["bits"] == "W2A2") & (frame["data"] == "mixup"), "top1"] -= 2
    text = source_conclusion(summary_table(frame), baselines=("single",))
    assert "**Left out**: mobilenetv2_100 W4A4" in text
    # resnet18 W4A4: mixup 1 point above single (beyond the spread); W2A2: 1 point below (beyond it)
    assert ("over 2 settings: ahead by more than the seed spread in 1; behind by more than the seed spread in 1 "
            "(mean difference +0.00 points)") in text
    # in this frame the best generated source (mixup at W4A4, single at W2A2) beats real by 2 and 1 points
    assert "(most often" in text and "real images are ahead in 0 of 2 settings, and real minus best is −1.50" in text


def test_the_generator_quality_table_shows_every_recorded_run_ablations_first_then_the_worlds_in_order():
    from mixq_core.models import read_assets_manifest
    from mixq_core.report import GENERATOR_QUALITY_COLUMNS, WORLD_QUALITY_LABELS, generator_quality_table

    quality = read_assets_manifest()["generator_quality"]
    table = generator_quality_table()
    assert len(table) == sum(len(entry["runs"]) for entry in quality.values())
    generators = list(dict.fromkeys(table.index.get_level_values("generator")))
    worlds = [label for label in WORLD_QUALITY_LABELS.values() if label in quality]
    assert generators[-len(worlds):] == worlds and set(generators) == set(quality)
    first = quality[generators[0]]["runs"][0]
    assert table.iloc[0]["single-class: judge agrees (%)"] == first["single_top1"]
    assert table.index[0] == (generators[0], first["steps"])
    assert list(table.columns) == list(GENERATOR_QUALITY_COLUMNS)

def test_the_manifest_tables_show_the_judges_ceiling_and_how_each_model_was_trained():
    from mixq_core.models import read_assets_manifest
    from mixq_core.report import judge_ceiling_table, training_table

    manifest = read_assets_manifest()
    ceiling = judge_ceiling_table()
    judge, entry = next(iter(manifest["judge_pair_ceiling"].items()))
    design, scores = next(iter(entry["designs"].items()))
    assert ceiling.loc[(judge, design), "both in top-2 (%)"] == scores["both_in_top2"]
    assert len(ceiling) == sum(len(e["designs"]) for e in manifest["judge_pair_ceiling"].values())
    trained = training_table(["resnet18", "resnet18_mix", "no_such_model"])
    shipped = manifest["files"]["resnet18_mix.safetensors"]
    assert trained.loc["resnet18", "training"] == "plain"
    assert trained.loc["resnet18_mix", "training"] == shipped["mixing"]
    assert trained.loc["resnet18_mix", "training time (h)"] == round(shipped["train_seconds"] / 3600, 2)
    assert trained.loc["no_such_model", "training"] == "not trained"
    from mixq_core.report import shipped_files_table

    files = shipped_files_table().set_index("file")
    assert set(files.index) == set(manifest["files"])
    name, entry = next(iter(manifest["files"].items()))
    assert files.loc[name, "command"] == entry["command"] and entry["sha256"].startswith(files.loc[name, "sha256"][:-1])

def test_probe_means_are_per_setting_and_source_in_the_books_order():
    from mixq_core.report import probe_means

    per_run = pd.DataFrame([{"bits": bits, "data": data, "seed": seed, "grad_norm": 1.0 + seed,
                             "generalization_error": 0.1 * seed, "top1": 90.0 + seed}
                            for bits in ("W2A2", "W4A4", "W2A4") for data in ("mixup", "real", "genq", "single")
                            for seed in (0, 1)])
    means = probe_means(per_run)
    assert list(means.index.get_level_values("bits").unique()) == ["W4A4", "W2A4", "W2A2"]  # wide to narrow
    assert list(means.loc["W4A4"].index) == ["real", "single", "genq", "mixup"]  # SOURCE_ORDER, not alphabetical
    assert means.loc[("W2A2", "mixup")].tolist() == pytest.approx([1.5, 0.05, 90.5])

def test_the_probe_table_gives_each_setting_its_ratios_and_correlations_without_noise():
    from mixq_core.report import correlation_reading, probe_table

    per_run = pd.DataFrame([{"model": model, "bits": "W2A4", "data": data, "seed": seed,
                             "grad_norm": norm + 0.01 * seed, "generalization_error": 3.0 - norm,
                             "top1": 90 + sign * (10 * norm + seed)}
                            for model, sign in (("resnet18", 1), ("resnet18_mix", -1))
                            for data, norm in (("single", 1.0), ("mixup", 2.0)) for seed in range(3)])
    noise = pd.DataFrame([{"model": "resnet18", "bits": "W2A4", "data": "noise", "seed": 0, "grad_norm": 50.0,
                           "generalization_error": 50.0, "top1": 10.0}])
    only_single = per_run[per_run["data"] == "single"].assign(bits="W2A2")  # no mixup: no row
    wide_bits = per_run[per_run["model"] == "resnet18"].assign(bits="W4A4")  # wider: comes first in the book
    table = probe_table(pd.concat([per_run, noise, only_single, wide_bits]))
    assert list(table.index) == [("resnet18", "W4A4"), ("resnet18", "W2A4"), ("resnet18_mix", "W2A4")]
    assert list(table[("", "runs")]) == [6, 6, 6]  # the noise run counts nowhere
    table = table.drop(("resnet18", "W4A4"))
    ratio = table[("gradient norm", "mixup ÷ single")]
    assert ratio.iloc[0] == pytest.approx(2.01 / 1.01)
    assert table[("generalization error", "mixup ÷ single")].iloc[0] == pytest.approx(0.5)
    correlation = table[("gradient norm", "r with top-1")]
    assert correlation.iloc[0] > 0.9 and correlation.iloc[1] < -0.9  # the noise run would have reversed the first
    assert correlation_reading(correlation, "gradient norm") == (
        "Across each setting's runs on images, a smaller gradient norm goes with higher accuracy, as the paper "
        "argues (r ≤ −0.50), in 1 of 2 settings, with *lower* accuracy (r ≥ +0.50) in 1, and neither clearly in 0.")
    assert probe_table(only_single).empty

def test_the_probe_and_ablation_conclusions_are_computed_from_their_tables():
    from mixq_core.report import ablation_conclusion, probe_conclusion

    per_run = pd.DataFrame([{"bits": "W2A4", "data": data, "seed": seed, "grad_norm": norm + 0.01 * seed,
                             "top1": 90 - 10 * norm - seed}
                            for data, norm in (("single", 1.0), ("mixup", 2.0)) for seed in range(3)])
    text = probe_conclusion(per_run, "grad_norm", "gradient norm")
    assert "mixup-class sets give 1.99× the gradient norm of single-class sets" in text
    assert ("across its 6 runs on images (noise left out) the correlation of gradient norm with top-1 is r = −0.9"
            in text and "as the paper argues" in text)
    # a noise run far out on both axes would reverse r on its own: it is left out
    with_noise = pd.concat([per_run, pd.DataFrame([{"bits": "W2A4", "data": "noise", "seed": 0, "grad_norm": 0.0,
                                                    "top1": 10.0}])])
    text = probe_conclusion(with_noise, "grad_norm", "gradient norm")
    assert "across its 6 runs on images" in text and "r = −0.9" in text
    flat = per_run.assign(top1=90 + 10 * per_run["grad_norm"])  # larger norms with higher accuracy
    assert "smaller values go with *lower* accuracy, against the paper's argument" in probe_conclusion(
        flat, "grad_norm", "gradient norm")
    two_models = pd.concat([per_run.assign(model="resnet18"), per_run.assign(model="resnet18_mix", grad_norm=1.0)])
    lines = probe_conclusion(two_models, "grad_norm", "gradient norm", by=("model", "bits")).splitlines()
    assert lines[0].startswith("- **resnet18 W2A4**: mixup-class sets give 1.99× the gradient norm")
    assert lines[1].startswith("- **resnet18_mix W2A4**: mixup-class sets give 1.00× the gradient norm")
    negative = per_run.assign(generalization_error=per_run["grad_norm"] - 1.5)  # single ≈ -0.5, mixup ≈ +0.5
    assert "mixup-class sets give a generalization error of 0.51 against −0.49 for single-class sets" in \
        probe_conclusion(negative, "generalization_error", "generalization error")
    assert probe_conclusion(per_run[per_run["data"] == "single"], "grad_norm", "gradient norm") == (
        "No setting has runs of both mixup and single yet.")
    results = {"k": pd.DataFrame({"k": [1, 1, 2, 2], "top1": [91.0, 91.2, 90.0, 90.2]})}
    assert ablation_conclusion(results, {"k": "k"}) == (
        "- **classes per prompt**: best at 1 (91.10 %), 1.00 points above 2, beyond the seed spread "
        "(standard error 0.14).")
    close = {"k": pd.DataFrame({"k": [1, 1, 2, 2], "top1": [91.0, 91.4, 90.9, 91.3]})}  # 0.1 apart, std 0.28, 2 seeds
    assert "0.10 points above 2, within the seed spread (standard error 0.28)." in ablation_conclusion(
        close, {"k": "k"})
    best_once = pd.DataFrame({"k": [1, 2, 2], "top1": [91.0, 90.0, 90.2]})  # one seed for the best level
    runner_once = pd.DataFrame({"k": [1, 1, 2], "top1": [91.0, 91.2, 90.0]})  # one seed for the runner-up
    for one_seed in (best_once, runner_once):
        assert ablation_conclusion({"k": one_seed}, {"k": "k"}).endswith("one seed on a side, no spread to compare.")


def test_readable_tables_have_human_headings_sensible_digits_and_no_nan():
    from mixq_core.report import readable

    left = pd.DataFrame({"model": ["resnet18", "resnet18"], "data": ["mixup", "genq"], "top1": [91.234, 90.0],
                         "grad_norm": [0.012345, 0.0009], "verdict": ["within seed spread", None],
                         "empty": [float("nan")] * 2}).set_index(["model", "data"])
    shown = readable(pd.concat([left, left[["top1"]]], axis=1))  # a repeated column name, as side-by-side tables have
    assert list(shown.columns) == ["top-1 (%)", "gradient norm", "verdict", "top-1 (%)"]  # the empty column left out
    assert shown.index.names == ["model", "source"] and list(shown.index.get_level_values(1)) == [
        SOURCE_LABELS["mixup"], SOURCE_LABELS["genq"]]
    assert shown.iloc[0, 0] == 91.23 and list(shown.iloc[:, 1]) == [0.0123, 0.0009]  # three significant digits
    assert shown.iloc[1, 2] == "—" and not shown.isna().any().any()
    short = readable(left, short_sources=True)  # a narrow table: the sources' short headings
    assert list(short.index.get_level_values(1)) == [SOURCES["mixup"].heading, "GenQ"]


def test_readable_prints_negative_numbers_with_a_true_minus_and_one_number_of_decimals():
    from mixq_core.report import num, readable

    shown = readable(pd.DataFrame({"mixup − single": [-2.814, 0.5, float("nan")], "seeds": [3, -1, 2],
                                   "top1": [91.0, 90.5, 89.25]}))
    assert list(shown["mixup − single"]) == ["\u22122.81", "+0.50", "—"]  # a difference: signed, one decimal count
    assert list(shown["seeds"]) == ["3", "\u22121", "2"]
    assert list(shown["top-1 (%)"]) == [91.0, 90.5, 89.25]  # no negative value: the column stays numeric
    tiny = readable(pd.DataFrame({"generalization error": [-0.0004, 1.5]}))["generalization error"]
    assert not math.copysign(1, tiny.iloc[0]) < 0  # rounded to zero: no "-0.00"
    assert num(-0.5) == "\u22120.50" and num(0.5) == "+0.50" and num(-0.0123, ".3g") == "\u22120.0123"
    assert num(-0.004) == "+0.00" and num(-0.004, ".2f") == "0.00"
    assert num(0, "+d") == "+0" and num(-3, "d") == "\u22123"  # an integer format takes an integer zero
    # a column with a gap becomes text for its dash; its numbers keep one count of decimals
    gapped = readable(pd.DataFrame({"standard error": [0.11, 0.1, float("nan")], "seeds": [3.0, float("nan"), 2.0]}))
    assert list(gapped["standard error"]) == ["0.11", "0.10", "—"] and list(gapped["seeds"]) == ["3", "—", "2"]
    # a share in percent that settled to a few in a million, under a pivot's two-level heading: two decimals
    settled = pd.DataFrame({("still soft (%)", 5000): [3.73], ("still soft (%)", 20000): [0.000472],
                            ("top-1 (%)", 20000): [0.000472]})
    assert readable(settled).iloc[0].tolist() == [3.73, 0.0, 0.000472]  # top-1 is no share: three digits
    small = readable(pd.DataFrame({"mixup − single": [-0.2, 0.15]}))["mixup − single"]
    assert list(small) == ["\u22120.20", "+0.15"]  # not "−0.200": the decimals the values need, no more
    moved = readable(pd.DataFrame({"move": [1.4412, 0.2688], "standard error": [0.4312, 0.1249]}))
    assert list(moved["move"]) == ["+1.44", "+0.27"] and list(moved["standard error"]) == [0.43, 0.12]
    # differences and correlations below 1 print as the prose does, two decimals; other small values keep three
    # significant digits; under a two-level heading the lower level names the column
    two_level = pd.MultiIndex.from_tuples([("gradient norm", "r with top-1"), ("gradient norm", "mixup ÷ single"),
                                           ("", "mixup − single")])
    shown = readable(pd.DataFrame([[0.929, 0.855, 0.123], [-0.982, 0.9, -0.5]], columns=two_level))
    assert list(shown.iloc[:, 0]) == ["+0.93", "\u22120.98"] and list(shown.iloc[:, 1]) == [0.855, 0.9]
    assert list(shown.iloc[:, 2]) == ["+0.12", "\u22120.50"]


def test_grid_progress_counts_the_seeds_with_a_record_against_the_plan(tmp_path):
    import json
    import shutil

    from mixq_core.report import grid_progress
    from mixq_core.results import RESULTS_DIR

    empty = grid_progress("mini-long", results_dir=tmp_path)
    assert empty.loc[("resnet18", "W2A4", 5000), "real"] == "0/3"
    assert empty.loc[("resnet18", "W2A4", 20000), "real"] == "0/1"  # the convergence cell: one seed
    assert empty.loc[("resnet18", "W2A4", 20000), "single"] == "—"  # not in the plan
    assert empty.loc[("resnet18", "W2A4", 5000), "noise"] == "0/1"
    assert empty.loc[("resnet18", "W2A4", 5000), "GenQ"] == "0/3"  # headed by the short name, as in pivot_sources
    assert "genq" not in empty.columns
    mobilenet = empty.loc["mobilenetv2_100"].index.get_level_values("bits").tolist()
    assert mobilenet == ["W4A4", "W2A4"]  # the book's order, wide to narrow, whatever the plan's order
    committed = sorted((RESULTS_DIR / "ptq" / "mini-long").glob("*.json"))
    chosen = next(path for path in committed
                  if (c := json.loads(path.read_text())["metrics"]["config"])["model"] == "resnet18"
                  and (c["w_bits"], c["a_bits"], c["data"], c["iters"]) == (2, 4, "real", 5000))
    (tmp_path / "ptq" / "mini-long").mkdir(parents=True)
    shutil.copy(chosen, tmp_path / "ptq" / "mini-long" / chosen.name)
    one = grid_progress("mini-long", results_dir=tmp_path)
    assert one.loc[("resnet18", "W2A4", 5000), "real"] == "1/3"
    assert (one != empty).sum().sum() == 1  # and nothing else moved


def _config(path):
    import json

    return json.loads(path.read_text())["metrics"]["config"]


def test_the_grid_plan_estimates_from_records_of_the_same_model_and_steps(tmp_path):
    import json
    import shutil

    from mixq_core.experiment import grid_configs
    from mixq_core.report import grid_plan, grid_progress, plan_cells, progress_table, run_seconds
    from mixq_core.results import RESULTS_DIR

    committed = sorted((RESULTS_DIR / "ptq" / "mini-long").glob("*.json"))
    # a three-seed cell (the noise cells run one seed), so the check below reads "1/3" whichever record lands first
    path = next(p for p in committed if _config(p)["model"] == "resnet18" and _config(p)["data"] == "real"
                and _config(p)["iters"] == 5000)
    record = json.loads(path.read_text())
    (tmp_path / "ptq" / "mini-long").mkdir(parents=True)
    shutil.copy(path, tmp_path / "ptq" / "mini-long" / path.name)
    plan = grid_plan(grid_configs("mini-long", "grid_cnn"), results_dir=tmp_path)
    assert plan["done"].sum() == 1
    waiting = plan[~plan["done"]]
    same = waiting[(waiting["model"] == "resnet18") & (waiting["steps"] == 5000)]
    assert (same["seconds"] == run_seconds(record)).all()
    assert (same["basis"] == "median of 1 runs at 5000 steps").all()
    unit_seconds = sum(unit["seconds"] for unit in record["metrics"]["units"])
    longer = waiting[(waiting["model"] == "resnet18") & (waiting["steps"] == 20000)]
    assert longer["seconds"].tolist() == pytest.approx([run_seconds(record) + 3 * unit_seconds] * 2)
    unknown = waiting[waiting["model"] == "mobilenetv2_100"]
    assert unknown["seconds"].isna().all() and (unknown["basis"] == "no record of mobilenetv2_100 yet").all()

    config = record["metrics"]["config"]
    cells = {(c["model"], c["bits"], c["steps"], c["data"]): c for c in plan_cells(plan)}
    own = cells[(config["model"], f"W{config['w_bits']}A{config['a_bits']}", config["iters"], config["data"])]
    assert own["seeds_run"] == "1/3" and own["hours_left"] == round(2 * run_seconds(record) / 3600, 2)
    assert cells[("mobilenetv2_100", "W2A4", 2000, "real")]["hours_left"] is None  # no guess without a record
    assert progress_table(plan).equals(grid_progress("mini-long", sections=("grid_cnn",), results_dir=tmp_path))

    from mixq_core.report import plan_line

    # mobilenetv2_100's runs have no estimate, so the line gives no hours rather than a partial sum
    line = plan_line("long", "mini-long", plan, [record])
    schedule = f"{record['metrics']['config']['n_calib']} images × {record['metrics']['config']['iters']} steps"
    assert line.startswith(f"- **long** (profile `mini-long`): 1 of {len(plan)} runs ({schedule}), "
                           f"{len(plan) - 1} still to run. 1 record of profile mini-long")
    resnet18_only = plan[plan["model"] == "resnet18"]
    hours = resnet18_only.loc[~resnet18_only["done"], "seconds"].sum() / 3600
    assert f"still to run, about {hours:.1f} single-thread hours by the records so far." in plan_line(
        "long", "mini-long", resnet18_only, [record])
    assert ", complete. " in plan_line("long", "mini-long", plan.assign(done=True), [record])
    assert plan_line("long", "mini-long", plan.assign(done=False), []).endswith(  # no record: no provenance
        f"0 of {len(plan)} runs (none yet), {len(plan)} still to run.")


def test_grid_plan_on_the_command_line_is_strict_json_whose_counts_add_up(capsys):
    import json

    from mixq_core.cli import main

    assert main(["grid", "--profile", "mini-long", "--models", "resnet18", "--plan"]) == 0

    def no_nan(value):
        raise AssertionError(f"{value} in the JSON")

    plan = json.loads(capsys.readouterr().out, parse_constant=no_nan)
    assert plan["experiments"] == plan["done"] + plan["left"]
    assert plan["done"] == sum(int(cell["seeds_run"].split("/")[0]) for cell in plan["cells"])
    assert plan["experiments"] == sum(int(cell["seeds_run"].split("/")[1]) for cell in plan["cells"])


def test_grid_data_selects_only_those_sources(capsys):
    import json

    from mixq_core.cli import main

    assert main(["grid", "--profile", "mini-long", "--models", "resnet18_mix", "--data", "single", "mixup",
                 "--seeds", "1", "2", "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {(cell["data"], cell["bits"]) for cell in plan["cells"]} == {
        (data, bits) for data in ("single", "mixup") for bits in ("W2A4", "W2A2")}
    assert plan["experiments"] == 8  # 2 sources × 2 bits × seeds 1 and 2


def test_run_times_give_the_median_minutes_per_model_and_schedule_and_say_what_spent_them():
    from mixq_core.report import run_times

    def record(model, iters, quantize_seconds, made):
        return {"metrics": {"config": {"model": model, "iters": iters},
                            "seconds": {"quantize_seconds": quantize_seconds, "eval_seconds": 60.0,
                                        "synthesis_seconds": 9999.0}},
                "provenance": made}

    new = {"cpu": "AMD EPYC", "threads": 1, "gpu": None}
    records = [record("resnet18", 5000, 1740.0, new), record("resnet18", 5000, 2340.0, {}),
               record("resnet18", 5000, 1980.0, new), record("deit_mini", 2000, 540.0, {**new, "gpu": "H200"}),
               record("mobilenetv2_100", 2000, 600.0, {**new, "cpu": "Intel(R) Xeon(R)  Processor"})]
    table = run_times(records).set_index(["model", "steps"])
    long = table.loc[("resnet18", 5000)]
    assert (long["runs"], long["median_minutes"], long["range_minutes"]) == (3, 34.0, "30.0\u201340.0")
    assert (long["machines"], long["threads"], long["stated_by"]) == ("AMD EPYC", "1", "2 of 3")
    assert tuple(run_times(records[1:2]).loc[0, ["machines", "stated_by"]]) == ("not recorded", "0 of 1")
    vit = table.loc[("deit_mini", 2000)]
    assert (vit["machines"], vit["stated_by"]) == ("H200", "all 1")  # synthesis (shared by cells) left out above
    assert table.loc[("mobilenetv2_100", 2000), "machines"] == "Intel Xeon Processor"  # no trademark signs
    convergence = record("resnet18", 20000, 7000.0, new)  # a grid's convergence section comes last
    assert run_times([*records, convergence])[["model", "steps"]].values.tolist() == [
        ["resnet18", 5000], ["resnet18", 20000], ["deit_mini", 2000], ["mobilenetv2_100", 2000]]


def _summary(means: dict[str, float], model="resnet18", bits="W2A4"):
    import pandas as pd

    return pd.DataFrame([{"model": model, "bits": bits, "data": data, "top1_mean": mean, "top1_std": 0.1,
                          "seeds": 3, "fp_top1": 93.0} for data, mean in means.items()])


def test_the_regime_comparison_ranks_only_the_sources_both_schedules_ran():
    from mixq_core.report import regime_comparison

    short = _summary({"real": 91.6, "single": 91.2, "mixup": 90.9, "noise": 89.0})
    long = _summary({"real": 92.4, "single": 91.9, "mixup": 91.6})  # no noise cell in the long schedule
    both = regime_comparison(short, long).set_index("data")
    assert list(both.index) == ["real", "single", "mixup"]
    assert both["rank short"].tolist() == [1, 2, 3] and both["rank long"].tolist() == [1, 2, 3]
    assert both.loc["mixup", "long − short"] == pytest.approx(0.7)
    assert both.loc["single", "top-1 short"] == "91.20\u00a0±\u00a00.10"


def test_ranking_changes_name_mixups_rank_and_every_swap_with_its_gaps():
    from mixq_core.report import ranking_changes, ranking_swaps, regime_conclusion

    short = _summary({"real": 91.6, "single": 91.2, "single-cutmix": 91.25, "mixup": 90.9})
    same = _summary({"real": 92.4, "single": 91.9, "single-cutmix": 91.95, "mixup": 91.6})
    assert ranking_changes(short, same) == ["resnet18 W2A4: mixup-class 4th of 4 in both, the same order"]
    swapped = _summary({"real": 92.4, "single": 91.9, "single-cutmix": 91.8, "mixup": 92.0})
    (line,) = ranking_changes(short, swapped)
    assert line.startswith("resnet18 W2A4: mixup-class 4th of 4 short, 2nd long, ")
    # std 0.1 over 3 seeds on each side: a gap counts beyond 2 × 0.082 = 0.16 pt
    assert ("single + image CutMix and single-class swap places (single + image CutMix − single-class +0.05 pt "
            "short, −0.10 pt long; within the seed spread in both)") in line
    assert ("single-class and mixup-class swap places (single-class − mixup-class +0.30 pt short, −0.10 pt long; "
            "beyond the seed spread short only)") in line
    assert ("single + image CutMix and mixup-class swap places (single + image CutMix − mixup-class +0.35 pt short, "
            "−0.20 pt long; beyond the seed spread in both)") in line
    assert line.count(" pt short") == 3  # CutMix/single, CutMix/mixup and single/mixup; real stays first
    swaps = ranking_swaps(short, swapped)
    assert ranking_changes(short, swapped, swaps=swaps) == [line]  # the swaps a caller already has are the same
    assert ranking_changes(short, swapped, swaps=swaps.iloc[:0])[0].endswith("the same order")  # and are used
    conclusion = regime_conclusion(short, swapped, {"genq": swapped.iloc[:0]}, swapped.iloc[:0])
    assert ("**Ranking of sources, short against long**: 1 of 1 settings change order. Of the 3 swaps: 1 beyond "
            "the seed spread in both schedules (a real reversal), 1 in one schedule only, 1 in neither.") in conclusion
    (line,) = ranking_changes(short, swapped.assign(seeds=1))  # one seed in the long schedule: no spread there
    assert "(single + image CutMix − single-class +0.05 pt short, −0.10 pt long; within the seed spread short, " \
           "one seed in the other)" in line
    assert "+0.30 pt short, −0.10 pt long; beyond the seed spread short only, one seed in the other)" in line
    (line,) = ranking_changes(short.assign(seeds=1), swapped.assign(seeds=1))
    assert line.count("one seed: no spread") == 3 and "within" not in line
    assert ("- **mixup-class − GenQ (single + energy filter)**: no long-schedule cell has both sources yet."
            in conclusion.splitlines())


def test_the_conclusion_counts_where_mixup_is_last_and_tallies_its_verdicts():
    import pandas as pd

    from mixq_core.report import compare_sources, regime_conclusion

    w2a4 = _summary({"real": 92.4, "single": 91.9, "genq": 91.7, "mixup": 91.5, "noise": 89.0})
    w2a2 = _summary({"real": 90.5, "single": 89.3, "mixup": 89.6}, bits="W2A2").assign(seeds=1)
    long = pd.concat([w2a4, w2a2], ignore_index=True)
    versus = {other: compare_sources(long, "mixup", other) for other in ("single", "genq")}
    lines = regime_conclusion(long, long, versus, long.iloc[:0]).splitlines()
    first = lines[0]  # the answer opens the conclusion, as a paragraph of its own
    # W2A4: last of single, genq, mixup (noise below it is not a generated source); W2A2: ahead of single.
    # Verdicts: W2A4 vs single -0.4 and vs genq -0.2 with SE 0.08 → behind; W2A2 vs single: one seed.
    assert first == ("**In short**: in the long schedule, mixup-class prompts are last among the generated "
                     "sources in 1 of 2 settings. Of their 3 comparisons with a baseline, 2 are behind beyond the "
                     "seed spread, 0 ahead beyond it, 0 within it, and 1 still rests on one seed: no verdict there "
                     "until its seeds have run.") and lines[1] == ""
    # each baseline's verdicts grouped: a group of up to two settings names them
    assert ("- **mixup-class − single-class** in the long schedule: behind, beyond the seed spread in 1 setting "
            "(resnet18 W2A4 −0.40 pt); one seed so far, no verdict in 1 setting (resnet18 W2A2 +0.30 pt).") in lines
    # a larger group gives its count and the range of its differences, nearest zero first
    from mixq_core.report.conclusions import _verdict_groups

    many = pd.DataFrame({"model": ["a", "b", "c"], "bits": ["W2A4"] * 3, "mixup − single": [-0.3, -12.6, -2.8],
                         "verdict": ["behind, beyond seed spread"] * 3})
    assert _verdict_groups(many, "mixup − single") == (
        "behind, beyond the seed spread in 3 settings (−0.30 to −12.60 pt)")
    # signs mixed (likely within the spread): lowest to highest, so the range holds every difference
    mixed = many.assign(**{"mixup − single": [-0.3, 0.02, 0.2], "verdict": ["within seed spread"] * 3})
    assert _verdict_groups(mixed, "mixup − single") == "within the seed spread in 3 settings (−0.30 to +0.20 pt)"


def _record_with_units(data, seed, units, top1=90.0, iters=5000):
    """A record as the engine writes it, reduced to what the unit summaries read."""
    return {"metrics": {"config": {"model": "resnet18", "w_bits": 2, "a_bits": 4, "data": data, "seed": seed,
                                   "iters": iters},
                        "profile": "mini-long", "n_calib": 1024, "engine": 2, "top1": top1, "units": units},
            "provenance": {}}


def _unit(name, grad_norms, generalization, soft=None, flipped=None):
    return {"name": name, "grad_norm_rounding": grad_norms, "generalization_error": generalization,
            "probe_steps": [500 * (i + 1) for i in range(len(generalization))], "probe_loss_after": 0.5,
            "loss_after": 0.4, "soft_share": soft, "flipped_share": flipped}


def test_run_probes_average_each_runs_blocks_the_way_the_paper_reads_them():
    from mixq_core.report import run_probes, unit_traces

    records = [_record_with_units("mixup", 0, [_unit("layer1.0", [1.0, 3.0], [0.5, 0.2]),
                                               _unit("layer1.1", [4.0, 4.0], [0.9, 0.6])], top1=91.0),
               _record_with_units("single", 0, [_unit("layer1.0", [2.0, 2.0], [0.1, 0.1])])]
    from mixq_core.report import regime_conclusion

    table = _summary({"single": 91.0, "mixup": 91.0})
    # two runs: ratios (mixup 3.0 against 2.0, 0.4 against 0.1), but too few runs for a correlation
    assert ("- **The paper's two probes** (their table is in the section on the two analyses): against single-class "
            "sets, mixup-class sets give a smaller gradient norm in 0 of 1 and a smaller generalization error in 0 "
            "of 1 settings.") in regime_conclusion(table, table, {}, table.iloc[:0],
                                                   probes=run_probes(records)).splitlines()
    probes = run_probes(records).set_index("data")
    # per block: mean gradient norm over the run, generalization error at its last probe; then mean over blocks
    assert probes.loc["mixup", "grad_norm"] == pytest.approx((2.0 + 4.0) / 2)
    assert probes.loc["mixup", "generalization_error"] == pytest.approx((0.2 + 0.6) / 2)
    assert probes.loc["mixup", "top1"] == 91.0 and probes.loc["single", "grad_norm"] == 2.0
    # a convergence run of the same model, bits, source and seed is a run of its own, not averaged with its twin
    longer = _record_with_units("single", 0, [_unit("layer1.0", [6.0, 6.0], [0.3, 0.3])], top1=92.0, iters=20000)
    both = run_probes([*records, longer])
    assert both["iters"].tolist() == [5000, 5000, 20000] and both["grad_norm"].tolist() == [3.0, 2.0, 6.0]
    trace = unit_traces(records[:1], "generalization_error")
    assert trace["step"].tolist() == [500, 1000, 500, 1000] and trace["unit_index"].tolist() == [0, 0, 1, 1]
    # a negative generalization error (few steps) gives the two means, not a ratio
    records[1]["metrics"]["units"][0]["generalization_error"] = [-0.1, -0.1]  # no ratio reads: left out
    assert "mixup-class sets give a smaller gradient norm in 0 of 1 settings." in regime_conclusion(
        table, table, {}, table.iloc[:0], probes=run_probes(records))
    # a third run gives a correlation: the smaller gradient norm goes with the higher top-1
    records.append(_record_with_units("single", 1, [_unit("layer1.0", [1.0, 1.0], [0.1, 0.1])], top1=93.0))
    assert ("Across each setting's runs on images (|r| ≥ 0.50), a smaller gradient norm goes with higher accuracy "
            "in 1 of 1 and with lower accuracy in 0") in regime_conclusion(table, table, {}, table.iloc[:0],
                                                                           probes=run_probes(records))


def test_the_rounding_table_keeps_the_records_models_and_orders_bits_and_steps():
    from mixq_core.report import rounding_table

    rounding = pd.DataFrame([{"model": model, "bits": bits, "iters": iters, "soft_share": soft, "flipped_share": 0.1}
                             for model, bits, iters, soft in (
                                 ("resnet18", "W2A2", 5000, 0.04), ("resnet18", "W4A4", 200, 0.97),
                                 ("resnet18", "W2A2", 200, 0.96), ("resnet18", "W2A2", 200, 0.98),
                                 ("mobilenetv2_100", "W2A4", 2000, 0.3), ("deit_mini", "W2A4", 2000, 0.28))])
    table = rounding_table(rounding)
    assert list(table.index) == [("resnet18", "W4A4", 200), ("resnet18", "W2A2", 200), ("resnet18", "W2A2", 5000),
                                 ("mobilenetv2_100", "W2A4", 2000), ("deit_mini", "W2A4", 2000)]
    assert table.loc[("resnet18", "W2A2", 200), "still soft (%)"] == pytest.approx(97.0)  # mean over runs, in %
    assert table["rounded away from nearest (%)"].tolist() == pytest.approx([10.0] * 5)


def test_rounding_summary_is_the_mean_over_units_and_nan_for_records_without_the_diagnostics():
    import math

    from mixq_core.report import rounding_summary

    new = _record_with_units("real", 0, [_unit("stem", [1.0], [0.1], soft=0.02, flipped=0.10),
                                         _unit("layer1.0", [1.0], [0.1], soft=0.06, flipped=0.08)])
    old = _record_with_units("real", 1, [_unit("stem", [1.0], [0.1])], iters=200)
    del old["metrics"]["engine"]  # records of the first engine do not say so
    table = rounding_summary([new, old])
    assert table.loc[0, "soft_share"] == pytest.approx(0.04) and table.loc[0, "flipped_share"] == pytest.approx(0.09)
    assert math.isnan(table.loc[1, "soft_share"]) and table.loc[1, "engine"] == 1 and table.loc[1, "iters"] == 200


def test_the_convergence_cell_is_set_beside_the_same_runs_of_the_main_schedule():
    from mixq_core.report import convergence_conclusion, convergence_runs, regime_conclusion, rounding_summary

    def run(data, seed, iters, top1, soft):
        return _record_with_units(data, seed, [_unit("stem", [1.0], [0.1], soft=soft, flipped=0.1)], top1, iters)

    records = [run("real", 0, 5000, 92.4, 0.04), run("real", 1, 5000, 92.2, 0.04),  # seed 1 has no longer run
               run("mixup", 0, 5000, 91.5, 0.05), run("single", 0, 5000, 91.9, 0.04),  # nor has single
               run("real", 0, 20000, 92.6, 0.01), run("mixup", 0, 20000, 91.9, 0.02)]
    runs = convergence_runs(records, 20000)
    assert list(zip(runs["data"], runs["seed"], runs["iters"], strict=True)) == [
        ("real", 0, 5000), ("real", 0, 20000), ("mixup", 0, 5000), ("mixup", 0, 20000)]
    line = convergence_conclusion(runs, 20000)
    assert line == ("- **resnet18 W2A4**, 5000 → 20000 steps, seed 0: real (upper bound) 92.40 → 92.60 % "
                    "(+0.20 pt; still soft 4.0 → 1.0 %); mixup-class 91.50 → 91.90 % (+0.40 pt; still soft 5.0 → "
                    "2.0 %). Mixup-class minus real: −0.90 pt at 5000 steps, −0.70 pt at 20000 steps.")
    assert convergence_runs(records[:4], 20000).empty
    assert convergence_conclusion(convergence_runs(records[:4], 20000), 20000) == (
        "No run with 20000 steps has a record yet.")
    waiting = convergence_runs([records[0], records[4], records[5]], 20000)  # mixup's 5000-step run missing
    assert convergence_conclusion(waiting, 20000).endswith(
        "mixup-class has only its 20000-step run so far. Mixup-class minus real: −0.70 pt at 20000 steps.")
    long = _summary({"real": 92.3, "mixup": 91.5})
    conclusion = regime_conclusion(long, long, {}, rounding_summary(records), runs)
    assert ("resnet18 W2A4, 5000 steps: 4.2 % still soft, 10.0 % away from nearest; "
            "resnet18 W2A4, 20000 steps: 1.5 % still soft, 10.0 % away from nearest.") in conclusion
    records.append(run("mixup", 0, 2000, 91.0, 0.24))  # a shorter schedule leaves a quarter undecided
    assert ("resnet18 W2A4, 2000 steps: 24.0 % still soft (not settled), 10.0 % away from nearest; "
            "resnet18 W2A4, 5000 steps") in regime_conclusion(long, long, {}, rounding_summary(records), runs)
    assert "- **Convergence at 20000 steps**: **resnet18 W2A4**, 5000 → 20000 steps" in conclusion
    # one seed at 20 000 steps: each move beside the spread of that source over the main schedule's seeds
    main = _summary({"real": 92.3, "mixup": 91.5}).assign(top1_std=[0.14, 0.25], seeds=[3, 1])
    assert convergence_conclusion(runs, 20000, main).startswith(
        "- **resnet18 W2A4**, 5000 → 20000 steps, seed 0: real (upper bound) 92.40 → 92.60 % (+0.20 pt against a "
        "standard deviation of 0.14 pt over the 3 seeds at 5000 steps; still soft 4.0 → 1.0 %); mixup-class 91.50 "
        "→ 91.90 % (+0.40 pt; still soft")  # mixup's main schedule has one seed here: no spread to set beside
    assert "(+0.20 pt against a standard deviation of 0.14 pt" in regime_conclusion(main, main, {},
                                                                                     rounding_summary(records), runs)
    two_seeds = convergence_runs(records[:6] + [run("real", 1, 20000, 92.5, 0.01)], 20000)
    assert ", seeds 0, 1: " in convergence_conclusion(two_seeds, 20000)
    assert convergence_conclusion(runs.iloc[:0], None) == "This profile plans no convergence cell."


def test_the_conclusion_reads_the_verdicts_where_the_long_schedule_settled():
    from mixq_core.report import regime_conclusion, rounding_summary, settled_settings

    def run(model, data, seed, iters, soft):
        record = _record_with_units(data, seed, [_unit("stem", [1.0], [0.1], soft=soft, flipped=0.1)], 90.0, iters)
        record["metrics"]["config"]["model"] = model
        return record

    records = [run("resnet18", data, seed, 5000, 0.03) for data in ("single", "mixup") for seed in range(3)]
    records += [run("resnet18", "mixup", 0, 20000, 0.01)]  # a convergence run: not the main schedule
    records += [run("mobilenetv2_100", data, seed, 2000, 0.3) for data in ("single", "mixup") for seed in range(3)]
    rounding = rounding_summary(records)
    assert settled_settings(rounding) == {("resnet18", "W2A4"): (5000, True),
                                          ("mobilenetv2_100", "W2A4"): (2000, False)}
    assert settled_settings(rounding[rounding["iters"] == 20000]) == {("resnet18", "W2A4"): (20000, True)}
    long = pd.concat([_summary({"single": 91.9, "mixup": 91.4}),
                      _summary({"single": 85.0, "mixup": 72.0}).assign(model="mobilenetv2_100")], ignore_index=True)
    versus = {"single": compare_sources(long, "mixup", "single")}
    opening = regime_conclusion(long, long, versus, rounding).split("\n")[0]
    assert opening.endswith(
        "Where the long schedule settled (at most 5 % of rounding variables still soft at hardening; 1 of 2 "
        "settings), mixup-class − single-class is behind, beyond the seed spread in 1 setting (resnet18 W2A4 "
        "−0.50 pt). It did not settle in the other 1 setting (mobilenetv2_100 W2A4 at 2000 steps), which sits "
        "between the short regime and the paper's.")
    unsettled = rounding_summary([r for r in records if r["metrics"]["config"]["model"] == "mobilenetv2_100"])
    assert regime_conclusion(long, long, versus, unsettled).split("\n")[0].endswith(
        "The long schedule settled (at most 5 % of rounding variables still soft at hardening) in no setting "
        "(mobilenetv2_100 W2A4 at 2000 steps), which sits between the short regime and the paper's.")
    assert "settled" not in regime_conclusion(long, long, versus, rounding.iloc[:0]).split("\n")[0]


def test_the_schedule_shift_judges_the_move_of_mixup_minus_single_against_both_schedules_spread():
    import pandas as pd

    from mixq_core.report import regime_conclusion, schedule_shift

    short = pd.concat([_summary({"single": 87.9, "mixup": 83.6}, bits="W2A2").assign(top1_std=[0.15, 0.68]),
                       _summary({"single": 91.2, "mixup": 90.9})], ignore_index=True)
    long = pd.concat([_summary({"single": 89.5, "mixup": 86.7}, bits="W2A2").assign(top1_std=[0.19, 0.17], seeds=2),
                      _summary({"single": 91.9, "mixup": 91.5}).assign(seeds=[2, 1])], ignore_index=True)
    shift = schedule_shift(short, long).set_index("bits")
    # W2A2: -4.30 → -2.80; SE short hypot(0.15, 0.68)/sqrt(3) = 0.40, long hypot(0.19, 0.17)/sqrt(2) = 0.18
    assert shift.loc["W2A2", "move"] == pytest.approx(1.5)
    assert shift.loc["W2A2", "standard error"] == pytest.approx(0.44, abs=0.005)
    assert shift.loc["W2A2", "verdict"] == "beyond seed spread"
    assert shift.loc["W2A4", "verdict"] == "one seed: no spread to compare"  # one long seed of mixup
    conclusion = regime_conclusion(short, long, {}, long.iloc[:0])
    assert ("- **mixup-class − single-class, short schedule → long**: resnet18 W2A2 −4.30 → −2.80 pt (moves +1.50 pt, "
            "standard error 0.44; beyond seed spread); resnet18 W2A4 −0.30 → −0.40 pt (moves −0.10 pt; one seed: no "
            "spread to compare).") in conclusion.splitlines()


def test_probe_ratios_divide_the_mixed_mean_by_the_baseline_mean_and_refuse_a_ratio_across_zero():
    import math

    import pandas as pd

    from mixq_core.report import probe_ratios

    per_run = pd.DataFrame({"model": ["resnet18"] * 4 + ["deit_mini"] * 2 + ["mobilenetv2_100"],
                            "bits": ["W2A4"] * 7,
                            "data": ["mixup", "mixup", "single", "real", "mixup", "single", "mixup"],
                            "grad_norm": [1.0, 3.0, 4.0, 9.0, 1.0, 2.0, 1.0],
                            "generalization_error": [0.4, 0.2, 0.1, 0.0, 0.5, -0.1, 0.3]})
    ratios = probe_ratios(per_run)
    assert ratios.loc[("resnet18", "W2A4"), "grad_norm"] == pytest.approx(2.0 / 4.0)
    assert ratios.loc[("resnet18", "W2A4"), "generalization_error"] == pytest.approx(0.3 / 0.1)
    # a negative baseline: the ratio would not read, so no number; a setting without the baseline: no row
    assert math.isnan(ratios.loc[("deit_mini", "W2A4"), "generalization_error"])
    assert ("mobilenetv2_100", "W2A4") not in ratios.index
    assert list(ratios.index) == [("resnet18", "W2A4"), ("deit_mini", "W2A4")]  # the order per_run names them
    wide = per_run.assign(bits="W4A4")  # listed after W2A4 here, but wider: first within each model
    ordered = probe_ratios(pd.concat([per_run, wide]))
    assert list(ordered.index) == [("resnet18", "W4A4"), ("resnet18", "W2A4"), ("deit_mini", "W4A4"),
                                   ("deit_mini", "W2A4")]


def test_reading_conclusion_sets_each_share_against_chance_and_the_twin_against_its_binomial_error():
    from mixq_core.report import reading_conclusion

    def scores(generated, collages):
        return {"generated": {"both_in_top2": generated}, "collages": {"both_in_top2": collages}}

    text = reading_conclusion({"resnet18": scores(2.5, 6.0), "resnet18_mix": scores(9.0, 7.0),
                               "deit_mini": scores(6.0, 6.0)}, 200, {"both_in_top2": 2.2},
                              {"resnet18_mix": "resnet18", "deit_mini_mix": "deit_mini"}).splitlines()
    # 2.5 % of 200: standard error sqrt(0.025 * 0.975 / 200) = 1.1 %
    assert text[0] == ("- **generated**, both prompted classes in the top-2 (200 pictures): resnet18 2.5 ± 1.1 %, "
                       "resnet18_mix 9.0 ± 2.0 %, deit_mini 6.0 ± 1.7 %; chance 2.2 %.")
    # +6.5 pt against 2 × hypot(1.10, 2.02) = 4.6: beyond; +1.0 pt against 2 × hypot(1.68, 1.80) = 4.9: within
    assert text[2] == ("- **resnet18_mix against resnet18, generated**: +6.5 pt, beyond two standard errors of the "
                       "two shares.")
    assert text[3] == ("- **resnet18_mix against resnet18, collages**: +1.0 pt, within two standard errors of the "
                       "two shares.")
    assert len(text) == 4  # deit_mini_mix was not read: no line for it


def test_legend_below_puts_a_facet_legend_under_the_panels_and_centres_it_on_them():
    import seaborn as sns

    from mixq_core.report import legend_below

    frame = pd.DataFrame({"step": [0, 1] * 4, "value": [1.0, 2.0, 2.0, 1.0] * 2,
                          "source": ["single-class"] * 2 + ["mixup-class"] * 2 + ["single-class"] * 2
                          + ["mixup-class"] * 2, "bits": ["W4A4"] * 4 + ["W2A4"] * 4})
    grid = sns.relplot(data=frame, x="step", y="value", hue="source", col="bits", col_wrap=2, kind="line")
    legend_below(grid)
    figure = grid.figure
    figure.canvas.draw()
    legend = figure.legends[-1].get_window_extent()
    panels = [axis.get_window_extent() for axis in grid.axes.flat]
    assert legend.y1 <= min(panel.y0 for panel in panels)  # below every panel, not beside them
    centre = (min(panel.x0 for panel in panels) + max(panel.x1 for panel in panels)) / 2
    assert abs((legend.x0 + legend.x1) / 2 - centre) < 0.05 * figure.bbox.width


def test_a_collapsed_setting_shows_no_verdict():
    from mixq_core.report import COLLAPSED, collapsed_settings, mark_collapsed

    frame = pd.DataFrame([{"model": model, "bits": "W2A4", "data": data, "seed": seed, "fp_top1": 90.0,
                           "top1": top1 + seed} for model, real in (("resnet18", 88.0), ("mobilenetv2_100", 20.0))
                          for data, top1 in (("real", real), ("single", real - 2), ("mixup", real - 6))
                          for seed in range(3)])
    table = summary_table(frame)
    collapsed = collapsed_settings(table)
    assert collapsed == ["mobilenetv2_100 W2A4"]  # real data keeps 21 of 90 points there
    shown = mark_collapsed(compare_sources(table, "mixup", "single"), collapsed).set_index("model")["verdict"]
    assert shown["mobilenetv2_100"] == COLLAPSED and shown["resnet18"] == "behind, beyond seed spread"


def test_ratio_reading_counts_the_cells_on_each_side_of_one():
    from mixq_core.report import ratio_reading

    ratios = pd.Series([0.8, 0.9, 1.2, float("nan")])
    assert ratio_reading(ratios, "gradient norm") == (
        "Mixup-class sets give the smaller gradient norm, as the paper expects, in 2 of 3 cells, and the larger in 1.")


def test_summary_table_keeps_models_in_grid_order_and_bits_from_wide_to_narrow():
    frame = pd.DataFrame([{"model": model, "bits": bits, "data": data, "seed": 0, "top1": 80.0, "fp_top1": 90.0}
                          for model, settings in (("resnet18", ["W2A2", "W2A4"]), ("mobilenetv2_100", ["W2A4", "W4A4"]))
                          for bits in settings for data in ("mixup", "real")])
    table = summary_table(frame)
    assert list(zip(table["model"], table["bits"], table["data"], strict=True)) == [
        ("resnet18", "W2A4", "real"), ("resnet18", "W2A4", "mixup"), ("resnet18", "W2A2", "real"),
        ("resnet18", "W2A2", "mixup"), ("mobilenetv2_100", "W4A4", "real"), ("mobilenetv2_100", "W4A4", "mixup"),
        ("mobilenetv2_100", "W2A4", "real"), ("mobilenetv2_100", "W2A4", "mixup")]
    assert pivot_sources(table).index.tolist() == [("resnet18", "W2A4"), ("resnet18", "W2A2"),
                                                   ("mobilenetv2_100", "W4A4"), ("mobilenetv2_100", "W2A4")]


def test_summary_table_will_not_average_runs_of_different_schedules_into_one_mean():
    frame = _frame().assign(iters=5000)
    frame.loc[frame.index[0], "iters"] = 20000  # one convergence run beside the main schedule's seeds
    with pytest.raises(ValueError, match=r"differ in iters .*by=\['model', 'bits', 'data'\]"):
        summary_table(frame)
    split = summary_table(frame, by=("model", "bits", "data", "iters"))
    real = split[(split["model"] == "mobilenetv2_100") & (split["data"] == "real")].set_index("iters")
    assert real["seeds"].to_dict() == {5000: 2, 20000: 1} and len(split) == len(summary_table(_frame())) + 1


def test_a_results_page_shows_the_published_grid_where_its_records_exist():
    from mixq_core.report import grid_records, shown_records

    shown, records = shown_records("mini", ["grid_cnn"])  # mini's tables_from: the committed mini-full grid
    assert shown == "mini-full" and records == grid_records("mini-full", ["grid_cnn"]) and records


def test_the_main_table_heads_each_source_by_its_short_name_in_the_book_order():
    frame = pd.DataFrame([{"model": "resnet18", "bits": "W2A4", "data": data, "seed": 0, "top1": 80.0, "fp_top1": 90.0}
                          for data in ("single-cutmix", "genq", "real", "single-mixup", "mixup")])
    assert list(pivot_sources(summary_table(frame)).columns) == [
        "FP", "real", "GenQ", "mixup", "single +\u00a0Mixup", "single +\u00a0CutMix"]


def test_the_reference_table_heads_its_numbers_readably_and_keeps_the_data_field_names():
    from mixq_core.report import REFERENCE_COLUMNS, beside_reference, reference_display

    table = beside_reference(pd.DataFrame(columns=REFERENCE_COLUMNS), ["resnet18"])
    html = reference_display(table).to_html()
    assert ">float</th>" in html and ">top-1</th>" in html and "fp_top1" not in html
    assert list(table.columns) == REFERENCE_COLUMNS


def test_the_grid_plan_estimates_from_the_latest_records_when_there_are_many(tmp_path):
    import json

    from mixq_core.experiment import grid_configs
    from mixq_core.report import RECENT_RUNS, grid_plan, run_seconds
    from mixq_core.results import RESULTS_DIR

    committed = sorted((RESULTS_DIR / "ptq" / "mini-long").glob("*.json"))
    record = next(json.loads(p.read_text()) for p in committed
                  if _config(p)["model"] == "resnet18" and _config(p)["iters"] == 5000)
    folder = tmp_path / "ptq" / "mini-long"
    folder.mkdir(parents=True)
    # Old, slow runs first (one from before records stated a time), then RECENT_RUNS fast ones: only these count.
    minutes = [90, 80, 70] + [20 + i for i in range(RECENT_RUNS)]
    for i, wait in enumerate(minutes):
        copy = json.loads(json.dumps(record))
        copy["metrics"]["config"]["seed"] = 100 + i  # not a planned seed: every planned run stays to run
        copy["metrics"]["seconds"] = {"quantize_seconds": 60.0 * wait}
        if i == 0:
            copy["provenance"].pop("time_utc", None)
        else:
            copy["provenance"]["time_utc"] = f"2026-11-{10 + i:02d}T00:00:00Z"
        (folder / f"{i:016x}.json").write_text(json.dumps(copy))
    plan = grid_plan(grid_configs("mini-long", "grid_cnn"), results_dir=tmp_path)
    waiting = plan[(plan["model"] == "resnet18") & (plan["steps"] == 5000) & ~plan["done"]]
    assert len(waiting) and (waiting["seconds"] == 60.0 * 22).all()  # median of 20..24 minutes
    assert (waiting["basis"] == f"median of the {RECENT_RUNS} latest of {len(minutes)} runs at 5000 steps").all()
    assert run_seconds(record) != 60.0 * 22  # the estimate did come from the copies
    # the latest runs of the mix-trained twin, the same network, count for the plain model's estimate too
    for i in range(3, len(minutes)):
        copy = json.loads((folder / f"{i:016x}.json").read_text())
        copy["metrics"]["config"]["model"] = "resnet18_mix"
        (folder / f"{i:016x}.json").write_text(json.dumps(copy))
    plan = grid_plan(grid_configs("mini-long", "grid_cnn"), results_dir=tmp_path)
    waiting = plan[(plan["model"] == "resnet18") & (plan["steps"] == 5000) & ~plan["done"]]
    assert (waiting["seconds"] == 60.0 * 22).all()


def test_unit_rounding_gives_each_units_shares_in_forward_order_and_skips_units_without_them():
    from mixq_core.report import unit_rounding

    config = {"model": "resnet18", "w_bits": 2, "a_bits": 4, "data": "mixup", "seed": 1, "iters": 5000}
    units = [{"soft_share": 0.5, "flipped_share": 0.1}, {"name": "fc"},  # a unit without the diagnostics
             {"soft_share": 0.02, "flipped_share": 0.12}]
    table = unit_rounding([{"metrics": {"config": config, "units": units}}])
    assert table["unit_index"].tolist() == [0, 2]
    assert table["soft_share"].tolist() == [0.5, 0.02] and table["flipped_share"].tolist() == [0.1, 0.12]
    assert (table["bits"] == "W2A4").all() and (table["iters"] == 5000).all()
    assert unit_rounding([]).empty


def test_a_difference_counts_only_beyond_twice_its_standard_error_and_one_seed_prints_no_spread():
    from mixq_core.report import beyond_spread, mean_std

    assert beyond_spread(-0.21, 0.1) and beyond_spread(0.21, 0.1)
    assert not beyond_spread(0.2, 0.1)  # exactly twice: not beyond
    assert not beyond_spread(1.0, float("nan"))  # no spread (one seed): never beyond
    assert mean_std(91.3449, 0.123) == "91.34\u00a0±\u00a00.12"  # no-break spaces: the cell cannot wrap at ±
    assert mean_std(91.3449, float("nan")) == "91.34" and mean_std(91.3449, None) == "91.34"


def test_the_long_regime_tables_come_out_empty_without_records():
    """Chapter 13 runs on a results folder with no record yet (its sections say so): the frames it builds on keep
    their columns, so the tables grouped from them are empty rather than a KeyError."""
    from mixq_core.report import probe_table, records_frame, regimes_frame, run_probes

    assert summary_table(records_frame([])).empty
    frame = regimes_frame({"short": [], "long": []})
    assert {"model", "bits", "data", "top1", "regime"} <= set(frame.columns) and frame.empty
    assert probe_table(run_probes([])).empty
