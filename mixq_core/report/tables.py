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
        text = format(0.0, spec)
    return text.replace("-", MINUS)


# assets/manifest.json labels of each world's generator_quality figures (benchmarks/generator_quality.py --label)
WORLD_QUALITY_LABELS = {"plain": "world plain", "gap": "world gap", "polysemy": "world polysemy",
                        "gap+polysemy": "world gap+polysemy"}


def world_generator_quality(worlds: Sequence[str]):
    """One row per world and recorded benchmark run (solver steps, guidance): its generator's judge agreement
    on single-class prompts, Fréchet distance to real test images, and how often a prompt for a polysemous
    name is drawn as the other concept, from ``assets/manifest.json`` (see :data:`WORLD_QUALITY_LABELS`)."""
    import pandas as pd

    from ..models import read_assets_manifest

    quality = read_assets_manifest().get("generator_quality", {})
    rows = []
    for world in worlds:
        for run in quality.get(WORLD_QUALITY_LABELS.get(world, world), {}).get("runs", []):
            row = {"world": world, "solver steps": run["steps"], "guidance": run["guidance"],
                   "single-class: judge agrees (%)": run["single_top1"],
                   "Fréchet distance to real test": run["fd_generated"],
                   "floor (real train vs test)": run["fd_real_floor"]}
            for word, split in (run.get("polysemy_split") or {}).items():
                row[f"'{word}' drawn as {split['other_class']} (%)"] = split["other"]
            rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["world", "solver steps", "guidance"])


# Columns of generator_quality_table: its heading, and the manifest field of a benchmark run it shows.
GENERATOR_QUALITY_COLUMNS = {
    "guidance": "guidance",
    "single-class: judge agrees (%)": "single_top1",
    "Fréchet distance (generated vs real test)": "fd_generated",
    "Fréchet distance floor (real train vs test)": "fd_real_floor",
    "two-class: both in top-2 (%)": "pair_both_in_top2",
    "two-class: one in top-2 (%)": "pair_any_in_top2",
    "real collage: both in top-2 (%)": "real_collage_both_in_top2",
    "two-class: both, judged item by item (%)": "pair_both_by_items",
    "real collage: both, item by item (%)": "real_collage_both_by_items",
    "images/s (CPU)": "images_per_second",
}


def generator_quality_table():
    """Every generator benchmark run recorded in ``assets/manifest.json`` (``benchmarks/generator_quality.py``),
    one row per generator and solver steps, with :data:`GENERATOR_QUALITY_COLUMNS` (NaN where a run did not
    measure it). The generator ablations come first, as the manifest lists them, then the worlds in the book's
    order (plain, gap, polysemy, gap+polysemy)."""
    import pandas as pd

    from ..models import read_assets_manifest

    quality = read_assets_manifest().get("generator_quality", {})
    worlds = [label for label in WORLD_QUALITY_LABELS.values() if label in quality]
    labels = [label for label in quality if label not in worlds] + worlds
    rows = [{"generator": label, "solver steps": run["steps"],
             **{heading: run.get(field) for heading, field in GENERATOR_QUALITY_COLUMNS.items()}}
            for label in labels for run in quality[label]["runs"]]
    if not rows:
        return pd.DataFrame(columns=["generator", "solver steps", *GENERATOR_QUALITY_COLUMNS]).set_index(
            ["generator", "solver steps"])
    return pd.DataFrame(rows).set_index(["generator", "solver steps"])


def judge_ceiling_table():
    """The judges' ceiling on two-item pictures recorded in ``assets/manifest.json``
    (``benchmarks/generator_quality.py --ceiling``): per judge and design of real two-item picture, the number
    of pictures and how often both items, or at least one, are in the judge's top-2."""
    import pandas as pd

    from ..models import read_assets_manifest

    ceiling = read_assets_manifest().get("judge_pair_ceiling", {})
    rows = [{"judge": judge, "real two-item pictures": design, "pictures": entry["pictures_per_design"],
             "both in top-2 (%)": scores["both_in_top2"], "one in top-2 (%)": scores["any_in_top2"]}
            for judge, entry in ceiling.items() for design, scores in entry["designs"].items()]
    columns = ["judge", "real two-item pictures", "pictures", "both in top-2 (%)", "one in top-2 (%)"]
    return pd.DataFrame(rows, columns=columns).set_index(["judge", "real two-item pictures"])


def training_table(models: Sequence[str]):
    """How each of ``models`` was trained, from ``assets/manifest.json``: with which mixing (or plain), for how
    many epochs, its test top-1 and the training time in hours; "not trained" for a model that does not ship."""
    import pandas as pd

    from ..models import read_assets_manifest

    files = read_assets_manifest()["files"]
    rows = []
    for name in models:
        entry = files.get(f"{name}.safetensors")
        if entry is None:
            rows.append({"model": name, "training": "not trained"})
            continue
        rows.append({"model": name, "training": entry.get("mixing") or "plain", "epochs": str(entry["epochs"]),
                     "test top-1 (%)": entry["test_top1"],
                     "training time (h)": round(entry["train_seconds"] / 3600, 2)})
    return pd.DataFrame(rows).set_index("model")


def summary_table(frame, by=("model", "bits", "data")):
    """Mean, std and count of top-1 over seeds for each group, with the FP top-1 and the drop. Groups keep the
    order in which ``frame`` first names them (the grid's: models as planned), bit settings run from wide to
    narrow (W4A4, W2A4, W2A2) within each model, and sources take the book's order within each setting."""
    grouped = frame.groupby(list(by), sort=False)
    table = grouped.agg(top1_mean=("top1", "mean"), top1_std=("top1", "std"), seeds=("seed", "nunique"),
                        fp_top1=("fp_top1", "first")).reset_index()
    table["drop"] = table["fp_top1"] - table["top1_mean"]
    if "data" in by:
        table = table.sort_values([c for c in by if c != "data"] + ["data"], key=_book_position,
                                  kind="stable").reset_index(drop=True)
    return table


def _book_position(column):
    """Sort key of a table column in the book's order: bit settings from wide to narrow (W4A4, W2A4, W2A2,
    whatever the model), sources in :data:`SOURCE_ORDER`, anything else (models, worlds) in the order in
    which the column first names it."""
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


def compare_sources(table, a: str, b: str, by=("model", "bits")):
    """``a`` minus ``b`` per group: difference of mean top-1, its standard error, and a verdict: ``a`` ahead
    or behind beyond the seed spread (|Δ| > 2 SE), within it, or one seed only. Groups missing either source
    are skipped."""
    import pandas as pd

    rows = []
    for key, group in table.groupby(list(by), sort=False):
        rows_a, rows_b = group[group["data"] == a], group[group["data"] == b]
        if rows_a.empty or rows_b.empty:
            continue
        ra, rb = rows_a.iloc[0], rows_b.iloc[0]
        if ra["seeds"] > 1 and rb["seeds"] > 1:
            se = math.sqrt(ra["top1_std"] ** 2 / ra["seeds"] + rb["top1_std"] ** 2 / rb["seeds"])
        else:
            se = float("nan")
        diff = ra["top1_mean"] - rb["top1_mean"]
        verdict = ("one seed: no spread to compare" if math.isnan(se) else
                   f"{'ahead' if diff > 0 else 'behind'}, {BEYOND}" if beyond_spread(diff, se) else
                   "within seed spread")
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                     f"{a} − {b}": round(diff, 2), "standard error": round(se, 2), "verdict": verdict})
    return pd.DataFrame(rows, columns=[*by, f"{a} − {b}", "standard error", "verdict"])


def unit_traces(records: list[dict], field: str):
    """Long table of a per-unit trace field (e.g. ``grad_norm_rounding``) for plotting: one row per
    record, unit and window/probe step."""
    import pandas as pd

    from ..experiment import TRACE_WINDOW

    rows = []
    for record in records:
        metrics = record["metrics"]
        config = metrics["config"]
        for index, unit in enumerate(metrics["units"]):
            values = unit[field]
            steps = unit["probe_steps"] if field.startswith(("probe", "generalization")) else \
                [i * TRACE_WINDOW for i in range(len(values))]
            for step, value in zip(steps, values, strict=True):
                rows.append({"model": config["model"], "bits": f"W{config['w_bits']}A{config['a_bits']}",
                             "data": config["data"], "seed": config["seed"], "unit": unit["name"],
                             "unit_index": index, "step": step, field: value})
    return pd.DataFrame(rows)


def unit_summary(records: list[dict]):
    """One row per record and unit: final generalization error and mean gradient norms."""
    import pandas as pd

    rows = []
    for record in records:
        metrics = record["metrics"]
        config = metrics["config"]
        for index, unit in enumerate(metrics["units"]):
            gen = unit["generalization_error"]
            grad = unit["grad_norm_rounding"]
            rows.append({"model": config["model"], "bits": f"W{config['w_bits']}A{config['a_bits']}",
                         "data": config["data"], "seed": config["seed"], "unit": unit["name"], "unit_index": index,
                         "generalization_error": gen[-1] if gen else float("nan"),
                         "probe_loss_after": unit["probe_loss_after"], "loss_after": unit["loss_after"],
                         "grad_norm_mean": sum(grad) / len(grad) if grad else float("nan"),
                         "top1": metrics["top1"]})
    return pd.DataFrame(rows)


def run_probes(records: list[dict]):
    """One row per record: its top-1 and its probes averaged over blocks (mean gradient norm of the
    reconstruction loss w.r.t. the rounding parameters; final generalization error)."""
    summary = unit_summary(records)
    if summary.empty:
        return summary
    return summary.groupby(["model", "bits", "data", "seed"], as_index=False, sort=False).agg(
        grad_norm=("grad_norm_mean", "mean"), generalization_error=("generalization_error", "mean"),
        top1=("top1", "first"))


def verdict_counts(comparison, column: str, by: str | None = "world"):
    """Per ``by`` group of a :func:`compare_sources` table (``by=None``: over the whole table, as one row): how
    many cells have ``column`` beyond the seed spread ahead (> 0) or behind (< 0), within it, or only one seed
    to compare: the words of every verdict in the book."""
    import pandas as pd

    verdict = comparison["verdict"]
    beyond = verdict.str.endswith(BEYOND)
    counts = pd.DataFrame({"ahead": beyond & (comparison[column] > 0), "behind": beyond & (comparison[column] < 0),
                           "within seed spread": verdict == "within seed spread",
                           "one seed": verdict.str.startswith("one seed")})
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
    side: one row per architecture, bits and classifier (``plain`` first)."""
    from ..models import MIX_TRAINED_TWINS

    versus = compare_sources(table, mixed, baseline)
    versus = versus[versus["model"].isin([*MIX_TRAINED_TWINS, *MIX_TRAINED_TWINS.values()])]
    kind = versus["model"].map(lambda m: "mix-trained" if m in MIX_TRAINED_TWINS else "plain")
    versus = versus.assign(architecture=versus["model"].map(lambda m: MIX_TRAINED_TWINS.get(m, m)), classifier=kind)
    columns = ["architecture", "bits", "classifier", f"{mixed} − {baseline}", "standard error", "verdict"]
    classifiers = {"plain": 0, "mix-trained": 1}
    return versus.sort_values(["architecture", "bits", "classifier"], kind="stable", key=lambda column: (
        column.map(classifiers) if column.name == "classifier" else _book_position(column)))[columns]


def _ratio(value: float, reference: float) -> str:
    """``value`` as a multiple of ``reference`` ("0.85×"), or "" where a ratio would not read: it does only
    between positive values, and a generalization error can be negative after few steps."""
    return f"{value / reference:.2f}×" if reference > 0 and value >= 0 else ""


def _probe_means(per_run, by: Sequence[str]):
    """Mean gradient norm and generalization error of a :func:`run_probes` table per ``by`` and source."""
    return per_run.groupby([*by, "data"], observed=True, sort=False)[["grad_norm", "generalization_error"]].mean()


def probe_means(per_run, by: Sequence[str] = ("bits",)):
    """The mean gradient norm, generalization error and top-1 of a :func:`run_probes` table per setting (``by``)
    and source, rows in the book's order (bit settings from wide to narrow, sources in :data:`SOURCE_ORDER`)."""
    means = per_run.groupby([*by, "data"], observed=True, sort=False)[
        ["grad_norm", "generalization_error", "top1"]].mean().reset_index()
    return means.sort_values([*by, "data"], key=_book_position, kind="stable").set_index([*by, "data"])


def probe_ratios(per_run, by: Sequence[str] = ("model", "bits"), mixed: str = "mixup", baseline: str = "single"):
    """Per setting (``by``) of a :func:`run_probes` table, each probe's mean over ``mixed`` runs as a multiple of
    its mean over ``baseline`` runs; NaN where a setting lacks one of the two, or where a ratio would not read
    (see :func:`_ratio`: a generalization error can be negative). Rows in the book's order: settings as
    ``per_run`` first names them, bit settings from wide to narrow."""
    import pandas as pd

    means = _probe_means(per_run, by)
    rows = {}
    for key, group in means.groupby(level=list(range(len(by))), observed=True, sort=False):
        group = group.droplevel(list(range(len(by))))
        if mixed not in group.index or baseline not in group.index:
            continue
        rows[key] = {field: (group.loc[mixed, field] / group.loc[baseline, field]
                             if _ratio(group.loc[mixed, field], group.loc[baseline, field]) else math.nan)
                     for field in group.columns}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["grad_norm", "generalization_error"])
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=list(by)) if len(by) > 1 else frame.index.rename(by[0])
    if frame.empty:
        return frame
    return frame.reset_index().sort_values(list(by), key=_book_position, kind="stable").set_index(list(by))


PROBE_NAMES = {"grad_norm": "gradient norm", "generalization_error": "generalization error"}


def probe_table(per_run, by: Sequence[str] = ("model", "bits"), mixed: str = "mixup", baseline: str = "single"):
    """The paper's two probes per setting (``by``) of a :func:`run_probes` table that has both ``mixed`` and
    ``baseline`` runs, one row each in the book's order, for a chapter to show as a table rather than a sentence
    per setting: the number of runs on images, and under each probe's name its mean over ``mixed`` runs as a
    multiple of its mean over ``baseline`` runs (:func:`probe_ratios`; NaN where a ratio does not read) and its
    correlation with top-1 across the runs on images (NaN with fewer than three). Gaussian noise is left out of
    both: the lower bound sits far out on both axes and alone would set the correlation."""
    import pandas as pd

    ratios = probe_ratios(per_run, by, mixed, baseline)
    images = per_run[per_run["data"] != "noise"].set_index(list(by))
    settings = per_run[list(by)].drop_duplicates().sort_values(list(by), key=_book_position, kind="stable")
    ratio_name = f"{mixed} ÷ {baseline}"
    rows, keys = [], []
    for key in settings.itertuples(index=False, name=None):
        key = key if len(by) > 1 else key[0]
        if key not in ratios.index:
            continue
        runs = images.loc[[key]]
        row = {("", "runs"): len(runs)}
        for field, name in PROBE_NAMES.items():
            row[(name, ratio_name)] = ratios.loc[key, field]
            row[(name, "r with top-1")] = runs[field].corr(runs["top1"]) if len(runs) > 2 else math.nan
        rows.append(row)
        keys.append(key)
    index = pd.MultiIndex.from_tuples(keys, names=list(by)) if len(by) > 1 else pd.Index(keys, name=by[0])
    columns = pd.MultiIndex.from_tuples([("", "runs")] + [(name, part) for name in PROBE_NAMES.values()
                                                            for part in (ratio_name, "r with top-1")])
    return pd.DataFrame(rows, index=index, columns=columns)

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
            largest = values.abs().max()
            # small values keep three significant digits, unless they are differences or correlations
            small = largest and largest < 1 and not math.isnan(largest) and not signed
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

