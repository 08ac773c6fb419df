"""The book's figures: one colour per source in every chapter, panels at most two across, legends below, and the
galleries of synthetic sets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from .probes import unit_traces
from .records import SOURCE_LABELS, SOURCE_ORDER


def source_palette() -> dict[str, tuple]:
    """One colour per source *label*, the same in every chapter (seaborn's tab10 in registry order)."""
    import seaborn as sns

    colours = sns.color_palette("tab10", len(SOURCE_ORDER))
    return {SOURCE_LABELS[name]: colour for name, colour in zip(SOURCE_ORDER, colours, strict=True)}


PANELS_ACROSS = 2  # at most this many panels side by side: the book column shrinks a wider figure, text and all


def legend_below(grid, columns: int | None = 2) -> None:
    """Move the legend of a seaborn figure-level plot (``relplot``, ``catplot``) from beside its panels to below
    them, in ``columns`` columns (None: all entries in one row, which keeps a legend of two variables, each
    entry after its variable's name, readable) and without a title: at the side it takes width from the panels,
    and the book column then shrinks the whole figure, text and all."""
    import seaborn as sns

    panels = grid.figure.subplotpars  # seaborn keeps the margin it made for the legend: centre on the panels
    columns = columns or len(grid.legend.texts)
    sns.move_legend(grid, "upper center", bbox_to_anchor=((panels.left + panels.right) / 2, 0.0), ncol=columns,
                    title=None, frameon=False)


# Colours for what is not a source (schedules, classifiers): greys, which no source's colour (tab10) is.
REGIME_PALETTE = {"short": "0.62", "long": "0.1"}


def grey_palette(names: Sequence[str]) -> dict[str, tuple]:
    """One grey per name, dark to light, for groups drawn beside the sources' colours (classifiers, say)."""
    import seaborn as sns

    return dict(zip(names, sns.color_palette("Greys_r", len(names) + 1), strict=False))


def panel_grid(n: int, width: float = 3.6, height: float = 3.0, sharey: bool = False):
    """A figure of ``n`` panels, at most :data:`PANELS_ACROSS` per row; unused panels are hidden.
    ``sharey``: one y axis for all, labelled on the first panel of each row only."""
    import matplotlib.pyplot as plt

    columns = min(n, PANELS_ACROSS)
    rows = math.ceil(n / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False,
                                layout="constrained", sharey=sharey)
    flat = list(axes.flat)
    for axis in flat[n:]:
        axis.set_visible(False)
    return figure, flat[:n]


def plot_sources(table, by=("model", "bits")):
    """One panel per group of a :func:`summary_table` that has records (panels are matched to groups by key,
    never by position): each source's mean top-1 with one standard deviation over seeds, and the float
    model's top-1 as a dashed line. The y axis spans the data, so differences of tenths of a point show."""
    groups = list(table.groupby(list(by), sort=False))
    figure, axes = panel_grid(len(groups))
    palette = source_palette()
    for axis, (key, rows) in zip(axes, groups, strict=True):
        rows = rows.reset_index(drop=True)
        for index, row in rows.iterrows():
            label = SOURCE_LABELS.get(row["data"], row["data"])
            std = 0.0 if math.isnan(row["top1_std"]) else row["top1_std"]
            axis.errorbar([index], [row["top1_mean"]], yerr=[std], fmt="o", capsize=3,
                          color=palette.get(label, "black"), label=label)
        axis.axhline(rows["fp_top1"].iloc[0], color="grey", ls="--", lw=1, label="full precision")
        axis.set_xticks(range(len(rows)), [SOURCE_LABELS.get(d, d) for d in rows["data"]], rotation=35, ha="right")
        axis.set_title(" ".join(key) if isinstance(key, tuple) else str(key))
        axis.set_ylabel("top-1 (%)")
    return figure


def _fold(label: str, width: int = 22) -> str:
    """A long axis label on two lines, broken before its parenthesis where it has one ("mixup − GenQ" over
    "(single + energy filter)"): on one line it took half the width of a two-panel figure."""
    import textwrap

    if len(label) <= width:
        return label
    if " (" in label:
        return label.replace(" (", "\n(", 1)
    return textwrap.fill(label, width)


def plot_differences(comparisons: dict[str, object], by=("model", "bits")):
    """``a − b`` for each baseline ``b`` (``{b: compare_sources(table, a, b)}``), one panel per group: the
    difference of mean top-1 with ±2 standard errors (the seed-spread criterion), and zero as a line. A
    difference with one seed on a side has no standard error: its point is hollow and has no bar."""
    import pandas as pd

    frames = [table.assign(baseline=b, compared=table.columns[len(by)].split(" − ")[0])
              .rename(columns={table.columns[len(by)]: "difference"})
              for b, table in comparisons.items() if not table.empty]
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    groups = list(frame.groupby(list(by), sort=False))
    # One row per comparison in every panel (a panel without it leaves its row empty): the labels, long, are
    # written once per row of panels, and the panels keep the room.
    comparisons_shown = dict.fromkeys(zip(frame["compared"], frame["baseline"], strict=True))
    rows_of = {key: row for row, key in enumerate(comparisons_shown)}
    figure, axes = panel_grid(len(groups), width=3.6, height=0.45 * len(rows_of) + 1.0, sharey=True)
    palette = source_palette()
    for axis, (key, rows) in zip(axes, groups, strict=True):
        for _, row in rows.iterrows():
            label = SOURCE_LABELS.get(row["baseline"], row["baseline"])
            one_seed = math.isnan(row["standard error"])
            color = palette.get(label, "black")
            axis.errorbar([row["difference"]], [rows_of[row["compared"], row["baseline"]]],
                          xerr=[0.0 if one_seed else 2 * row["standard error"]],
                          fmt="o", capsize=3, color=color, markerfacecolor="white" if one_seed else color)
        axis.axvline(0, color="grey", lw=1)
        axis.margins(x=0.25)
        axis.set_ylim(len(rows_of) - 0.5, -0.5)  # the first comparison on top
        axis.set_yticks(range(len(rows_of)), [_fold(f"{a} − {SOURCE_LABELS.get(b, b)}") for a, b in rows_of])
        axis.set_title(" ".join(key) if isinstance(key, tuple) else str(key), fontsize=10)
    figure.supxlabel("difference in top-1 (points)", fontsize=10)  # once: panels this narrow would overlap it
    return figure


def plot_unit_traces(records: list[dict], field: str, label: str, log: bool = False):
    """A per-unit trace (``grad_norm_rounding``, ``generalization_error``, ...) along the reconstruction steps:
    mean over units per run, then one line per source (band: one standard deviation over seeds), one panel
    per model and bits. None when no record has the trace."""
    import seaborn as sns

    traces = unit_traces(records, field)
    if traces.empty:
        return None
    traces["source"] = traces["data"].map(SOURCE_LABELS)
    traces["setting"] = traces["model"] + " " + traces["bits"]  # one panel per setting that has runs
    curves = traces.groupby(["setting", "source", "seed", "step"], as_index=False, sort=False)[field].mean()
    palette = source_palette()
    grid = sns.relplot(data=curves, x="step", y=field, hue="source", palette=palette,
                       hue_order=[s for s in palette if s in set(curves["source"])], col="setting",
                       col_wrap=PANELS_ACROSS, kind="line", errorbar="sd", height=3, aspect=1.4,
                       facet_kws={"sharey": False, "sharex": False})  # schedules differ in length by model
    grid.set_axis_labels("step within a unit", label)
    grid.set_titles("{col_name}")
    legend_below(grid)
    if log:
        grid.set(yscale="log")
    return grid


def set_gallery(folder: str | os.PathLike, n: int = 16, columns: int = 8, title: str | None = None):
    """A figure of the first ``n`` images of a synthetic set, titled by their prompted classes."""

    import matplotlib.pyplot as plt
    from PIL import Image

    from ..data import read_manifest

    entries = read_manifest(folder)[:n]
    rows = -(-len(entries) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.35), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, entry in zip(axes.flat, entries, strict=False):
        with Image.open(Path(folder) / entry["file"]) as image:
            axis.imshow(image.convert("L"), cmap="gray", vmin=0, vmax=255)
        # class names, not the prompt's words: the fixed template reads "a ankle boot"
        axis.set_title(" + ".join(entry.get("class_names") or [entry["prompt"].removeprefix("a photo of ")]),
                       fontsize=6)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure

