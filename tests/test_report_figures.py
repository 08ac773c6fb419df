"""The book's figures: every panel shows the data of the group it is titled with."""

import matplotlib
import pandas as pd
import pytest

from mixq_core.report import SOURCE_LABELS, compare_sources, plot_differences, plot_sources, summary_table

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
    for axis in figure.axes:
        model, bits = axis.get_title().split()
        for container, baseline in zip(axis.containers, comparisons, strict=True):
            row = comparisons[baseline].set_index(["model", "bits"]).loc[(model, bits)]
            assert container.lines[0].get_xdata()[0] == pytest.approx(row[f"mixup − {baseline}"])
            low, high = (cap.get_xdata()[0] for cap in container.lines[1])  # the error bar's two caps
            assert high - low == pytest.approx(4 * row["standard error"], abs=1e-6)
