"""Aggregates and comparisons of records: mean ± std over seeds, one source against another with a verdict against the
seed spread, the probes per run, and :func:`readable`, which puts any of these tables in the book's words and number
format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..sources import SOURCES
from .records import SOURCE_LABELS, SOURCE_ORDER

MINUS = "\u2212"  # the typographic minus sign: a hyphen is shorter than a plus sign and breaks lines


def num(value: float, spec: str = "+.2f") -> str:
    """``value`` formatted by ``spec`` (default: signed, two decimals) with a true minus sign, as the book prints
    every number that can be negative. A value that rounds to zero prints as zero, not as "−0.00"."""
    text = format(value, spec)
    if float(text) == 0:
        text = format(abs(value) * 0, spec)  # a positive zero of the value's own type: "d" takes no float
    return text.replace("-", MINUS)


# The settings of a run (records_frame's columns) that seeds repeat: a group of summary_table must hold one of each
SETTING_COLUMNS = ("model", "bits", "data", "n_calib", "method", "iters", "steps", "guidance", "partners", "k")


def summary_table(frame, by=("model", "bits", "data")):
    """Mean, std and count of top-1 over seeds for each group, with the FP top-1 and the drop. Groups keep the
    order in which ``frame`` first names them (the grid's: models as planned), bit settings run from wide to
    narrow (W4A4, W2A4, W2A2) within each model, and sources take the book's order within each setting.

    A group must repeat one setting over seeds: where a setting in :data:`SETTING_COLUMNS` outside ``by`` varies
    within a group (a 20 000-step run beside 5000-step ones), a mean over it would mix two experiments, so this
    raises ``ValueError`` naming the column; filter the frame or add the column to ``by``."""
    grouped = frame.groupby(list(by), sort=False)
    varying = [column for column in SETTING_COLUMNS if column in frame.columns and column not in by
               and (grouped[column].nunique(dropna=False) > 1).any()]
    if varying:
        raise ValueError(f"summary_table: runs that differ in {', '.join(varying)} fall into one group of "
                         f"by={list(by)}, and their mean would mix different experiments; filter the frame to one "
                         f"value of each, or add {'them' if len(varying) > 1 else 'it'} to by")
    table = grouped.agg(top1_mean=("top1", "mean"), top1_std=("top1", "std"), seeds=("seed", "nunique"),
                        fp_top1=("fp_top1", "first")).reset_index()
    table["drop"] = table["fp_top1"] - table["top1_mean"]
    if "data" in by:
        table = table.sort_values([c for c in by if c != "data"] + ["data"], key=_book_position,
                                  kind="stable").reset_index(drop=True)
    return table


def _book_position(column):
    """Sort key of a table column in the book's order: bit settings from wide to narrow (W4A4, W2A4, W2A2,
    whatever the model), sources in :data:`SOURCE_ORDER`, numbers (steps, seeds) rising, anything else (models,
    worlds) in the order in which the column first names it."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return column
    if column.name == "bits":
        return column.map(lambda bits: tuple(-int(part) for part in bits[1:].split("A")))
    order = SOURCE_ORDER if column.name == "data" else dict.fromkeys(column)
    return column.map({value: i for i, value in enumerate(order)})


def mean_std(mean: float, std: float) -> str:
    """``"87.31 ± 0.42"`` (just the mean when there is one seed), with no-break spaces around the ±: in a
    narrow table column the cell may not wrap between a mean and its spread."""
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f}\u00a0±\u00a0{std:.2f}"


def pivot_sources(table, index=("model", "bits")):
    """The main table: one row per model and bits, one ``mean ± std`` column per data source (headed by its
    short name, :attr:`~mixq_core.sources.CalibrationSource.heading`), rows in the order of ``table``
    (:func:`summary_table`'s)."""
    import pandas as pd

    shown = table.assign(cell=[mean_std(m, s) for m, s in zip(table["top1_mean"], table["top1_std"], strict=True)])
    wide = shown.pivot_table(index=list(index), columns="data", values="cell", aggfunc="first", sort=False)
    # pivot_table orders each index level by itself; the rows follow the table instead
    rows = table[list(index)].drop_duplicates()
    wide = wide.reindex(pd.MultiIndex.from_frame(rows) if len(index) > 1 else pd.Index(rows[index[0]]))
    wide = wide[[s for s in SOURCE_ORDER if s in wide.columns]]
    wide = wide.rename(columns=lambda name: SOURCES[name].heading)  # "single + Mixup", not "single-mixup"
    fp = table.groupby(list(index), sort=False)["fp_top1"].first()
    wide.insert(0, "FP", fp.map(lambda v: f"{v:.2f}"))
    wide.columns.name = None  # shown, it would head the index column ("data" above "model") and name nothing there
    return wide.fillna("—")  # a source this setting did not run


BEYOND = "beyond seed spread"  # the end of a verdict whose difference counts: "ahead, ..." or "behind, ..."


def beyond_spread(difference: float, error: float) -> bool:
    """The book's one rule for a difference that counts: more than twice its standard error (over seeds for
    top-1; binomial for a share of pictures, in :func:`reading_conclusion`)."""
    return abs(difference) > 2 * error


def difference_error(std_a: float, seeds_a: int, std_b: float, seeds_b: int) -> float:
    """The standard error of the difference of two means over seeds (NaN where either rests on one seed)."""
    if seeds_a > 1 and seeds_b > 1:
        return math.sqrt(std_a ** 2 / seeds_a + std_b ** 2 / seeds_b)
    return float("nan")


def compare_sources(table, a: str, b: str, by=("model", "bits")):
    """``a`` minus ``b`` per group: difference of mean top-1, its standard error, and a verdict: ``a`` ahead
    or behind beyond the seed spread (|Δ| > 2 SE), within it, or one seed only. Groups missing either source
    are skipped. The numbers are kept unrounded, so that a difference computed from them (a move between two
    tables) is judged on what was measured; :func:`readable` and :func:`num` round them for display."""
    import pandas as pd

    rows = []
    for key, group in table.groupby(list(by), sort=False):
        rows_a, rows_b = group[group["data"] == a], group[group["data"] == b]
        if rows_a.empty or rows_b.empty:
            continue
        ra, rb = rows_a.iloc[0], rows_b.iloc[0]
        se = difference_error(ra["top1_std"], ra["seeds"], rb["top1_std"], rb["seeds"])
        diff = ra["top1_mean"] - rb["top1_mean"]
        verdict = ("one seed: no spread to compare" if math.isnan(se) else
                   f"{'ahead' if diff > 0 else 'behind'}, {BEYOND}" if beyond_spread(diff, se) else
                   "within seed spread")
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     f"{a} − {b}": diff, "standard error": se, "verdict": verdict})
    return pd.DataFrame(rows, columns=[*by, f"{a} − {b}", "standard error", "verdict"])


def verdict_masks(comparison, column: str):
    """Which rows of a :func:`compare_sources` table have ``column`` beyond the seed spread ahead (> 0) or
    behind (< 0), within it, or only one seed to compare: one boolean column each, in that order."""
    import pandas as pd

    verdict = comparison["verdict"]
    beyond = verdict.str.endswith(BEYOND)
    return pd.DataFrame({"ahead": beyond & (comparison[column] > 0), "behind": beyond & (comparison[column] < 0),
                         "within seed spread": verdict == "within seed spread",
                         "one seed": verdict.str.startswith("one seed")})


def verdict_counts(comparison, column: str, by: str | None = "world"):
    """Per ``by`` group of a :func:`compare_sources` table (``by=None``: over the whole table, as one row): how
    many cells have ``column`` beyond the seed spread ahead (> 0) or behind (< 0), within it, or only one seed
    to compare (:func:`verdict_masks`): the words of every verdict in the book."""
    counts = verdict_masks(comparison, column)
    if by is None:
        return counts.sum()
    return counts.assign(**{by: comparison[by]}).groupby(by, observed=True, sort=False).sum()


def collapsed_settings(table, keep_share: float = 0.5) -> list[str]:
    """The settings ("model bits") of a :func:`summary_table` by model, bits and data where calibration on
    real images keeps less than ``keep_share`` of the full-precision top-1 in some group: the method itself
    fails there, so comparing data sources measures noise rather than calibration data."""
    real = table[table["data"] == "real"]
    failed = real[real["top1_mean"] < keep_share * real["fp_top1"]]
    return list(dict.fromkeys(failed["model"] + " " + failed["bits"]))


COLLAPSED = "collapsed: left out"  # the verdict shown where real-data calibration itself fails


def mark_collapsed(comparison, settings: Sequence[str]):
    """A :func:`compare_sources` table (by model and bits) for display: the verdict of each setting in
    ``settings`` (:func:`collapsed_settings`) reads :data:`COLLAPSED`, since there the difference measures
    noise, and the conclusions leave it out."""
    setting = comparison["model"] + " " + comparison["bits"]
    return comparison.assign(verdict=comparison["verdict"].where(~setting.isin(list(settings)), COLLAPSED))


def world_summary(versus_single, drops):
    """One row per world over the cells given: how many cells, the mean and median of mixup − single-class top-1,
    the :func:`verdict_counts` of that difference, and the mean drop from real-data calibration per generated
    source (``drops``: rows of world, data and ``drop from real``). Worlds keep their order."""
    counts = verdict_counts(versus_single, "mixup − single")
    by_world = versus_single.groupby("world", sort=False, observed=True)["mixup − single"]
    summary = counts.assign(cells=counts.sum(axis=1), **{"mixup − single": by_world.mean(),
                                                         "median mixup − single": by_world.median()})
    drop_means = drops.pivot_table(index="world", columns="data", values="drop from real", aggfunc="mean",
                                   observed=True)
    drop_means = drop_means[[source for source in SOURCE_ORDER if source in drop_means.columns]]  # the book's order
    drop_means.columns = [f"drop {source}" for source in drop_means.columns]
    return summary.join(drop_means)[["cells", "mixup − single", "median mixup − single", *counts.columns,
                                      *drop_means.columns]]


def classifier_comparison(table, mixed: str = "mixup", baseline: str = "single"):
    """:func:`compare_sources` of ``mixed`` against ``baseline`` for each architecture that has a mix-trained twin
    (:data:`~mixq_core.models.MIX_TRAINED_TWINS`) in ``table``, the plain and the mix-trained classifier side by
    side: one row per architecture, bits and classifier (``plain`` first). An architecture whose mix-trained twin
    has no comparison at all (deit_mini's, not trained) is left out; a setting its twin has not run yet keeps its
    plain row, so the table shows what is still missing."""
    from ..models import MIX_TRAINED_TWINS

    versus = compare_sources(table, mixed, baseline)
    twins = {mix: plain for mix, plain in MIX_TRAINED_TWINS.items() if mix in set(versus["model"])}
    versus = versus[versus["model"].isin([*twins, *twins.values()])]
    kind = versus["model"].map(lambda m: "mix-trained" if m in MIX_TRAINED_TWINS else "plain")
    versus = versus.assign(architecture=versus["model"].map(lambda m: MIX_TRAINED_TWINS.get(m, m)), classifier=kind)
    columns = ["architecture", "bits", "classifier", f"{mixed} − {baseline}", "standard error", "verdict"]
    classifiers = {"plain": 0, "mix-trained": 1}
    return versus.sort_values(["architecture", "bits", "classifier"], kind="stable", key=lambda column: (
        column.map(classifiers) if column.name == "classifier" else _book_position(column)))[columns]


FACTOR_LABELS = {"k": "classes per prompt", "n_calib": "calibration images", "guidance": "guidance scale",
                 "partners": "mixup partners", "mixing": "prompt or embedding mixing"}


# Display names of record and table fields, for column headings and axis labels.
FIELD_LABELS = {"n_calib": "calibration images", "top1": "top-1 (%)", "fp_top1": "full precision (%)",
                "drop": "drop (points)", "grad_norm": "gradient norm", "grad_norm_mean": "gradient norm",
                "grad_norm_rounding": "gradient norm", "generalization_error": "generalization error",
                "feature_trace_cov": "feature spread", "top1_mean": "top-1 mean (%)", "top1_std": "std",
                "seeds": "seeds", "data": "source", "iters": "steps", "k": "classes per prompt",
                "partners": "partners", "guidance": "guidance", "unit_index": "block", "bits": "bits",
                "model": "model", "seed": "seed", "mean_entropy": "prediction entropy (mean)",
                "top1_coverage": "classes predicted (share)", "top1_entropy": "entropy of predicted classes",
                "feature_mean_distance": "feature distance (mean pairwise)", "n_images": "images",
                "median_minutes": "median (min)", "range_minutes": "range (min)",
                "machines": "processor",
                "stated_by": "stated by"}


# Columns of differences besides those named "a − b", and of correlations: their numbers carry a sign either way
# ("+1.44", "−0.27"). In a table with two-level headings the lower level names the column.
SIGNED_COLUMNS = {"move", "r with top-1"}
# Columns that print ``digits`` decimals, though their values may all be below 1: a standard error, as the
# differences it belongs to (the prose prints "0.11", so the table does not print "0.114"), and a share in percent
# (rounding_table's), where a share that settled to a few in a million reads 0.00, not 0.000472. In a table with
# two-level headings either level may name the column (a pivot puts the value's name above its steps).
FIXED_DECIMAL_COLUMNS = {"standard error", "still soft (%)", "rounded away from nearest (%)"}


def readable(frame, digits: int = 2, short_sources: bool = False):
    """``frame`` for display: human column and index names (:data:`FIELD_LABELS`), source names as their labels,
    numbers rounded to ``digits`` (other columns of values below 1 to three significant digits; a column with
    negative values as text, with a true minus sign; a column of differences or correlations, "a − b" or
    :data:`SIGNED_COLUMNS`, with a sign on every number and ``digits`` decimals at most, as the prose prints them),
    columns that hold nothing (all NaN) left out, and a dash where a row has no value. ``short_sources``: sources
    by their short headings ("GenQ", as the main table's columns), for a table that must stay narrow on a phone."""
    import pandas as pd

    shown = frame.dropna(axis=1, how="all").copy()
    index = [name for name in shown.index.names if name is not None]
    if index:
        shown = shown.reset_index()
    for column in ("data", "source"):
        if column in shown.columns:
            names = {name: source.heading for name, source in SOURCES.items()} if short_sources else SOURCE_LABELS
            shown[column] = shown[column].map(lambda d, names=names: names.get(d, d))
    shown = shown.rename(columns=lambda c: FIELD_LABELS.get(c, c) if isinstance(c, str) else c)
    if index:
        shown = shown.set_index([FIELD_LABELS.get(n, n) for n in index])
    for position in range(shown.shape[1]):  # by position: two compared tables side by side repeat column names
        values = shown.iloc[:, position]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            label = shown.columns[position]
            name = label[-1] if isinstance(label, tuple) else label
            signed = isinstance(name, str) and (" − " in name or name in SIGNED_COLUMNS)
            fixed = any(level in FIXED_DECIMAL_COLUMNS for level in (label if isinstance(label, tuple) else (label,)))
            largest = values.abs().max()
            # small values keep three significant digits, unless they are differences, correlations, errors or shares
            small = largest and largest < 1 and not math.isnan(largest) and not signed and not fixed
            decimals = max(digits, 2 - math.floor(math.log10(largest))) if small else digits
            values = values.round(decimals)
            if pd.api.types.is_float_dtype(values):
                values = values + 0.0  # a value rounded to -0.0 becomes 0.0, which prints without a sign
            # A column printed as text (below) gets one count of decimals down the column, the fewest that show
            # every value, as pandas prints a numeric column: 0.10 beside 0.11, not 0.1; -0.20, not -0.200.
            present = values.dropna()
            fewest = next((d for d in range(decimals + 1) if (present.round(d) == present).all()), decimals)
            spec = "d" if pd.api.types.is_integer_dtype(values) else f".{fewest}f"
            if signed or (values < 0).any():  # as text: a true minus sign, and a plus on a difference (as in prose)
                spec = f"+{spec}" if signed else spec
                values = values.astype(object).map(lambda v, spec=spec: v if pd.isna(v) else num(v, spec))
            elif values.isna().any():  # as text too: the dashes below make the column text
                values = values.map(lambda v, spec=spec: v if pd.isna(v) else format(v, spec))
        if values.isna().any():  # a value a row does not have: a dash, not NaN
            values = values.astype(object).where(values.notna(), "—")
        shown.isetitem(position, values)
    return shown


def stack_comparisons(comparisons: dict[str, object], by=("model", "bits")):
    """``{b: compare_sources(table, a, b)}`` as one long table, one row per group and baseline ``b``, with the
    columns ``a − baseline``, ``standard error`` and ``verdict``: narrower than the tables side by side. A baseline
    is named by its short heading ("GenQ", "single + Mixup"), as the main table's columns are, so that the
    column stays narrow on a phone."""
    import pandas as pd

    frames = []
    for baseline, table in comparisons.items():
        if table.empty:
            continue
        difference = table.columns[len(by)]  # "a − b"
        frames.append(table.rename(columns={difference: difference.split(" − ")[0] + " − baseline"})
                      .assign(baseline=SOURCES[baseline].heading if baseline in SOURCES else baseline))
    if not frames:
        return pd.DataFrame()
    # grouped by setting in the book's order (see summary_table), baselines in the order given within each
    stacked = pd.concat(frames, ignore_index=True).sort_values(list(by), key=_book_position, kind="stable")
    return stacked.set_index([*by, "baseline"])


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"

