"""Tables and plots from result records: what the notebooks show, computed in one place.

Every number a notebook prints comes from a record under ``results/`` (see
:mod:`mixq_core.results`); these helpers only select, aggregate and draw. Aggregates over
seeds are ``mean ± std`` (sample standard deviation, ``n - 1``), and a difference between two
data sources is called *beyond the seed spread* when it exceeds twice its standard error
``sqrt(s_a²/n_a + s_b²/n_b)`` (a rough two-sided 95 % criterion; with 3 seeds it is a
screening rule, not a significance test).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .experiment import (
    GRID_SECTIONS,
    PTQ_KIND,
    REAL_SOURCES,
    SYNTHETIC_SOURCES,
    ExperimentConfig,
    grid_section_configs,
    ptq_kind,
    record_engine,
    stored_record,
)
from .profiles import load_profile
from .results import RESULTS_DIR, load_records
from .sources import SOURCES, source_names

SOURCE_ORDER = source_names()  # the registry's order (mixq_core.sources): the order of every table
MIXED_SOURCES = tuple(name for name, s in SOURCES.items() if s.mixes_classes)  # prompts name k ≥ 2 classes
SOURCE_LABELS = {name: source.label for name, source in SOURCES.items()}


MINUS = "\u2212"  # the typographic minus sign: a hyphen is shorter than a plus sign and breaks lines


def num(value: float, spec: str = "+.2f") -> str:
    """``value`` formatted by ``spec`` (default: signed, two decimals) with a true minus sign, as the book prints
    every number that can be negative. A value that rounds to zero prints as zero, not as "−0.00"."""
    text = format(value, spec)
    if float(text) == 0:
        text = format(0.0, spec)
    return text.replace("-", MINUS)


def source_palette() -> dict[str, tuple]:
    """One colour per source *label*, the same in every chapter (seaborn's tab10 in registry order)."""
    import seaborn as sns

    colours = sns.color_palette("tab10", len(SOURCE_ORDER))
    return {SOURCE_LABELS[name]: colour for name, colour in zip(SOURCE_ORDER, colours, strict=True)}


def ptq_records(profile: str, results_dir: str | os.PathLike | None = None) -> list[dict]:
    """The quantization records a profile made (under ``results/ptq/<profile>/``)."""
    results_dir = RESULTS_DIR if results_dir is None else results_dir
    return load_records(ptq_kind(profile), results_dir)


def existing_records(configs: list[ExperimentConfig], results_dir: str | os.PathLike | None = None) -> list[dict]:
    """The records of ``configs`` found under ``results_dir``, in their order; nothing is run."""
    results_dir = RESULTS_DIR if results_dir is None else results_dir
    found = (stored_record(c, results_dir) for c in configs)
    return [record for record in found if record is not None]


def grid_records(profile: str, sections: Sequence[str] = GRID_SECTIONS,
                 results_dir: str | os.PathLike | None = None) -> list[dict]:
    """The records of a profile's grid sections found on disk: the main tables, without its ablation runs."""
    return existing_records(grid_section_configs(profile, tuple(sections)), results_dir)


def shown_records(profile: str, sections: Sequence[str] = GRID_SECTIONS) -> tuple[str, list[dict]]:
    """What a results page shows: the records of the profile's published grid (its ``tables_from``) where they
    exist, else the profile's own; with the name of the profile they come from."""
    published = load_profile(profile).get("tables_from", profile)
    records = grid_records(published, sections)
    return (published, records) if records else (profile, grid_records(profile, sections))


def world_profiles(profile: str) -> dict[str, str]:
    """The profile's ``worlds.profiles``: ``{world: profile holding that world's grid}`` (plain first)."""
    spec = load_profile(profile).get("worlds")
    if not spec:
        raise ConfigError(f"profile {profile!r} has no 'worlds' section")
    return dict(spec["profiles"])


def world_records(worlds: dict[str, str], results_dir: str | os.PathLike | None = None) -> dict[str, list[dict]]:
    """The grid records of each generator world (``{world: profile}``, the plain world first), found on disk.

    Real and noise calibration never touch the generator, so every world shows the plain world's
    records for them: only the generated sources are run per world. A world gets them only for the
    (model, bits) cells it has generated records for, so a partly run world is compared cell by cell.
    """
    plain, *generated = worlds
    found = {plain: grid_records(worlds[plain], results_dir=results_dir)}
    shared = [r for r in found[plain] if r["metrics"]["config"]["data"] in REAL_SOURCES]
    for world in generated:
        own = [r for r in grid_records(worlds[world], results_dir=results_dir)
               if r["metrics"]["config"]["data"] in SYNTHETIC_SOURCES]
        cells = {_cell(r) for r in own}
        found[world] = [r for r in shared if _cell(r) in cells] + own
    return found


def _cell(record: dict) -> tuple:
    config = record["metrics"]["config"]
    return config["model"], config["w_bits"], config["a_bits"]


# assets/manifest.json labels of each world's generator_quality figures (benchmarks/generator_quality.py --label)
WORLD_QUALITY_LABELS = {"plain": "world plain", "gap": "world gap", "polysemy": "world polysemy",
                        "gap+polysemy": "world gap+polysemy"}


def world_generator_quality(worlds: Sequence[str]):
    """One row per world and recorded benchmark run (solver steps, guidance): its generator's judge agreement
    on single-class prompts, Fréchet distance to real test images, and how often a prompt for a polysemous
    name is drawn as the other concept, from ``assets/manifest.json`` (see :data:`WORLD_QUALITY_LABELS`)."""
    import pandas as pd

    from .models import read_assets_manifest

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


def worlds_frame(records_by_world: dict[str, list[dict]]):
    """:func:`records_frame` of every world's records, with a ``world`` column (worlds in their given order)."""
    return labelled_frame(records_by_world, "world")


def labelled_frame(records_by_label: dict[str, list[dict]], column: str):
    """:func:`records_frame` of each group's records, with the group's name in ``column``, an ordered category
    in the given order (groups without records are left out)."""
    import pandas as pd

    frames = [records_frame(records).assign(**{column: label}) for label, records in records_by_label.items()
              if records]
    if not frames:
        return records_frame([]).assign(**{column: []})
    frame = pd.concat(frames, ignore_index=True)
    frame[column] = pd.Categorical(frame[column], categories=list(records_by_label), ordered=True)
    return frame


def records_frame(records: list[dict]):
    """One row per record: the config fields, top-1, FP top-1, drop, seconds, record hash."""
    import pandas as pd

    rows = []
    for record in records:
        metrics = record["metrics"]
        config = metrics["config"]
        # k = classes per prompt: 1 for single-class sets (their config keeps the unused default), none for real/noise
        data = config["data"]
        classes_per_prompt = config["k"] if data in MIXED_SOURCES else 1 if data in SYNTHETIC_SOURCES else None
        rows.append({**{key: config[key] for key in ("model", "w_bits", "a_bits", "data", "n_calib", "method",
                                                     "iters", "seed", "steps", "guidance", "partners")},
                     "k": classes_per_prompt,
                     "bits": f"W{config['w_bits']}A{config['a_bits']}", "top1": metrics["top1"],
                     "fp_top1": metrics["fp_top1"], "drop": metrics["drop"], "n_eval": metrics["n_eval"],
                     "quantize_seconds": metrics["seconds"]["quantize_seconds"], "record": record["config_hash"]})
    return pd.DataFrame(rows)


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

    from .experiment import TRACE_WINDOW

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


def _count_change(before: int, after: int) -> str:
    """"go from 3 to 5", or "stay at 3"."""
    return f"stay at {int(before)}" if int(before) == int(after) else f"go from {int(before)} to {int(after)}"


def world_conclusion(summary) -> str:
    """The plain conclusion of a :func:`world_summary` table, in sentences computed from it: per world whether
    mixup-class prompts beat single-class ones beyond the seed spread, and how each world's margin (mean and
    median over cells, and the cells lost beyond the seed spread) and drop from real data compare with the
    first (plain) world's."""
    if summary.empty or summary["cells"].sum() == 0:
        return "No cell has been run in every world yet, so there is nothing to conclude."
    lines = []
    for world, row in summary.iterrows():
        cells, better, worse = int(row["cells"]), int(row["ahead"]), int(row["behind"])
        if better and not worse:
            verdict = f"mixup-class prompts beat single-class prompts beyond the seed spread in {better} of {cells}"
        elif worse and not better:
            verdict = (f"mixup-class prompts fall behind single-class prompts beyond the seed spread in {worse} "
                       f"of {cells}")
        elif better and worse:
            verdict = f"mixup-class prompts win beyond the seed spread in {better} and lose in {worse} of {cells}"
        else:
            verdict = f"no difference exceeds the seed spread in any of {cells}"
        lines.append(f"- **{world}**: {verdict} cell{'s' * (cells != 1)} "
                     f"(mean mixup − single {num(row['mixup − single'])} pt).")
    plain, *others = summary.index
    drop_columns = [c for c in summary.columns if c.startswith("drop ")]
    mean_drop = summary[drop_columns].mean(axis=1)
    for world in others:
        gain = summary.loc[world, "mixup − single"] - summary.loc[plain, "mixup − single"]
        median_gain = summary.loc[world, "median mixup − single"] - summary.loc[plain, "median mixup − single"]
        # A mean over a handful of cells can move with one of them: the median and the lost cells say whether
        # the shift is broad.
        lines.append(f"- **{world} against {plain}**: mixup's margin over single-class prompts changes by "
                     f"{num(gain)} pt on average ({num(median_gain)} pt in the median); the cells it loses beyond "
                     f"the seed spread {_count_change(summary.loc[plain, 'behind'], summary.loc[world, 'behind'])}, "
                     f"and the generated sources fall "
                     f"{num(mean_drop[world] - mean_drop[plain])} pt further below real-data calibration on average.")
    ahead = [world for world in summary.index if summary.loc[world, "mixup − single"] > 0]
    shifts = summary["mixup − single"] - summary.loc[plain, "mixup − single"]
    best = shifts.drop(plain).idxmax() if others else plain
    lines.append(f"- **In short**: mixup-class prompts lead single-class prompts on average in "
                 f"{', '.join(ahead) if ahead else 'no world'}; their mean margin gains most against plain in "
                 f"{best} ({num(shifts[best])} pt, while the cells they lose beyond the seed spread "
                 f"{_count_change(summary.loc[plain, 'behind'], summary.loc[best, 'behind'])}); over all worlds "
                 f"they win beyond the seed spread in "
                 f"{int(summary['ahead'].sum())} and lose beyond it in {int(summary['behind'].sum())} of "
                 f"{int(summary['cells'].sum())} cells.")
    return "\n".join(lines)


# How a conclusion says each column of :func:`verdict_counts`.
VERDICT_WORDS = {"ahead": "ahead by more than the seed spread", "behind": "behind by more than the seed spread",
                 "within seed spread": "within the seed spread", "one seed": "one seed only, so no spread to compare"}


def source_conclusion(table, mixed: str = "mixup", baselines: Sequence[str] = ("single", "genq"),
                      by=("model", "bits")) -> str:
    """The plain conclusion of a :func:`summary_table` (by model, bits, data), in sentences computed from it:
    for each baseline, in how many settings ``mixed`` is ahead or behind beyond the seed spread, and by how
    much on average; then how far the best generated source stays from real-data calibration. Settings where
    the method itself collapses (:func:`collapsed_settings`) are left out, and named."""
    lines = []
    collapsed = collapsed_settings(table) if tuple(by) == ("model", "bits") else []
    if collapsed:
        table = table[~(table["model"] + " " + table["bits"]).isin(collapsed)]
        lines.append(f"- **Left out**: {', '.join(collapsed)}, where even real-data calibration keeps less than half "
                     f"of the full-precision top-1: the method fails there, and differences between sources are "
                     f"noise.")
    name = SOURCE_LABELS.get(mixed, mixed)
    for baseline in baselines:
        versus = compare_sources(table, mixed, baseline, by)
        if versus.empty:
            continue
        column = f"{mixed} − {baseline}"
        counts = verdict_counts(versus, column, by=None)
        settings = len(versus)
        found = "; ".join(f"{VERDICT_WORDS[verdict]} in {int(n)}" for verdict, n in counts.items() if n)
        lines.append(f"- **{name} against {SOURCE_LABELS.get(baseline, baseline)}**, over {settings} "
                     f"setting{'s' * (settings != 1)}: {found} (mean difference {num(versus[column].mean())} points).")
    generated = table[table["data"].isin(SYNTHETIC_SOURCES)]
    real = table[table["data"] == "real"].set_index(list(by))["top1_mean"]
    if not generated.empty and not real.empty:
        best = generated.loc[generated.groupby(list(by), sort=False)["top1_mean"].idxmax()].set_index(list(by))
        gap = (real - best["top1_mean"]).dropna()
        if not gap.empty:
            winners = best.loc[gap.index, "data"].map(lambda d: SOURCE_LABELS.get(d, d)).value_counts()
            lines.append(f"- **Real data against the best generated source** (most often {winners.index[0]}): "
                         f"real images are ahead in {int((gap > 0).sum())} of {len(gap)} "
                         f"setting{'s' * (len(gap) != 1)}, and real minus best is {num(gap.mean())} points on "
                         f"average.")
    return "\n".join(lines) if lines else "No setting has both sources yet, so there is nothing to conclude."


def classifier_comparison(table, mixed: str = "mixup", baseline: str = "single"):
    """:func:`compare_sources` of ``mixed`` against ``baseline`` for each architecture that has a mix-trained twin
    (:data:`~mixq_core.models.MIX_TRAINED_TWINS`) in ``table``, the plain and the mix-trained classifier side by
    side: one row per architecture, bits and classifier (``plain`` first)."""
    from .models import MIX_TRAINED_TWINS

    versus = compare_sources(table, mixed, baseline)
    versus = versus[versus["model"].isin([*MIX_TRAINED_TWINS, *MIX_TRAINED_TWINS.values()])]
    kind = versus["model"].map(lambda m: "mix-trained" if m in MIX_TRAINED_TWINS else "plain")
    versus = versus.assign(architecture=versus["model"].map(lambda m: MIX_TRAINED_TWINS.get(m, m)), classifier=kind)
    columns = ["architecture", "bits", "classifier", f"{mixed} − {baseline}", "standard error", "verdict"]
    classifiers = {"plain": 0, "mix-trained": 1}
    return versus.sort_values(["architecture", "bits", "classifier"], kind="stable", key=lambda column: (
        column.map(classifiers) if column.name == "classifier" else _book_position(column)))[columns]


def classifier_conclusion(comparison, mixed: str = "mixup", baseline: str = "single") -> str:
    """The plain answer of a :func:`classifier_comparison` table, in sentences computed from it: per architecture
    and bits, ``mixed`` against ``baseline`` on the plain and on the mix-trained classifier; how far the
    mix-trained classifier moves that difference, against the standard error of the move (the two sides'
    errors combined); and whether the verdict (ahead / behind beyond the seed spread, within it) differs. The
    answer rests on the move: a verdict can flip on a difference near twice its standard error while the two
    classifiers agree within their spread. A setting with one seed on either classifier has no spread: it is
    listed, and left out of the answer."""
    column = f"{mixed} − {baseline}"
    names = SOURCE_LABELS.get(mixed, mixed), SOURCE_LABELS.get(baseline, baseline)
    lines, changed, moved, judged, one_seed = [], 0, 0, 0, 0
    for (architecture, bits), rows in comparison.groupby(["architecture", "bits"], sort=False):
        by_classifier = rows.set_index("classifier")
        if not {"plain", "mix-trained"} <= set(by_classifier.index):
            continue
        plain, mix = by_classifier.loc["plain"], by_classifier.loc["mix-trained"]
        line = (f"- **{architecture} {bits}**: {names[0]} minus {names[1]} is {num(plain[column])} pt, "
                f"{plain['verdict']} on the plain classifier and {num(mix[column])} pt, {mix['verdict']} on the "
                "mix-trained one.")
        if math.isnan(plain["standard error"]) or math.isnan(mix["standard error"]):
            one_seed += 1
        else:
            judged += 1
            changed += plain["verdict"].split(",")[0] != mix["verdict"].split(",")[0]
            shift, error = mix[column] - plain[column], math.hypot(plain["standard error"], mix["standard error"])
            moved += beyond_spread(shift, error)
            line += (f" The mix-trained classifier moves it by {num(shift)} pt (standard error {error:.2f}): "
                     f"{'beyond' if beyond_spread(shift, error) else 'within'} the seed spread.")
        lines.append(line)
    if not judged + one_seed:
        return (f"No setting has {names[0]} and {names[1]} runs on both a plain and a mix-trained classifier yet, so "
                "there is nothing to conclude.")
    if not judged:
        have = "1 setting has" if one_seed == 1 else f"{one_seed} settings have"
        lines.append(f"- **In short**: no verdict yet. {have} both classifiers, but with one seed on a side, so "
                     "there is no seed spread to judge a change of verdict against.")
        return "\n".join(lines)
    settings = f"{judged} setting{'s' * (judged != 1)} with seeds on both sides"
    if moved:
        answer = (f"moves the difference beyond the seed spread in {moved} of the {settings}"
                  + (f", and changes the verdict in {changed}" if changed else ", though the verdict stays the same"))
    elif changed:
        answer = (f"does not move the difference beyond the seed spread in {'the' if judged == 1 else 'any of the'} "
                  f"{settings}; the verdict reads differently in {changed}, where a difference sits near twice its "
                  "standard error")
    else:
        answer = (f"does not change the answer: in {'the' if judged == 1 else 'all'} {settings} the difference "
                  "moves within the seed spread and the verdict stays the same")
    rest = f" ({one_seed} more with one seed on a side are left out)" if one_seed else ""
    lines.append(f"- **In short**: a classifier that has seen mixed pictures {answer}{rest}.")
    return "\n".join(lines)


def _ratio(value: float, reference: float) -> str:
    """``value`` as a multiple of ``reference`` ("0.85×"), or "" where a ratio would not read: it does only
    between positive values, and a generalization error can be negative after few steps."""
    return f"{value / reference:.2f}×" if reference > 0 and value >= 0 else ""


def _against(value: float, reference: float) -> str:
    """The two means side by side, where :func:`_ratio` would not read."""
    return f"{num(value, '.3g')} against {num(reference, '.3g')}"


def _probe_means(per_run, by: Sequence[str]):
    """Mean gradient norm and generalization error of a :func:`run_probes` table per ``by`` and source."""
    return per_run.groupby([*by, "data"], observed=True, sort=False)[["grad_norm", "generalization_error"]].mean()


def probe_ratios(per_run, by: Sequence[str] = ("model", "bits"), mixed: str = "mixup", baseline: str = "single"):
    """Per setting (``by``) of a :func:`run_probes` table, each probe's mean over ``mixed`` runs as a multiple of
    its mean over ``baseline`` runs; NaN where a setting lacks one of the two, or where a ratio would not read
    (see :func:`_ratio`: a generalization error can be negative)."""
    import pandas as pd

    means = _probe_means(per_run, by).sort_index()
    rows = {}
    for key, group in means.groupby(level=list(range(len(by))), observed=True):
        group = group.droplevel(list(range(len(by))))
        if mixed not in group.index or baseline not in group.index:
            continue
        rows[key] = {field: (group.loc[mixed, field] / group.loc[baseline, field]
                             if _ratio(group.loc[mixed, field], group.loc[baseline, field]) else math.nan)
                     for field in group.columns}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["grad_norm", "generalization_error"])
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=list(by)) if len(by) > 1 else frame.index.rename(by[0])
    return frame


STRONG_CORRELATION = 0.5  # |r| from which a conclusion reads a correlation as a link: a screening rule of the book's


def _correlation_reading(r: float) -> str:
    """What a probe's correlation with top-1 says about the paper's argument, which expects smaller probe values
    (gradient norm, generalization error) with higher accuracy: a negative ``r``."""
    if r <= -STRONG_CORRELATION:
        return ": smaller values go with higher accuracy, as the paper argues"
    if r >= STRONG_CORRELATION:
        return ": smaller values go with *lower* accuracy, against the paper's argument"
    return f": weaker than ±{STRONG_CORRELATION}, no clear link either way"


def ratio_reading(ratios, what: str) -> str:
    """One sentence on a column of :func:`probe_ratios` (mixup-class ÷ single-class for one probe, ``what``):
    in how many cells mixup-class sets give the smaller value, as the paper expects, and in how many the larger
    (cells without a ratio left out)."""
    values = ratios.dropna()
    smaller, larger = int((values < 1).sum()), int((values > 1).sum())
    return (f"Mixup-class sets give the smaller {what}, as the paper expects, in {smaller} of {len(values)} "
            f"cells, and the larger in {larger}.")


def probe_conclusion(per_run, field: str, what: str, mixed: str = "mixup", baseline: str = "single",
                     by: Sequence[str] = ("bits",)) -> str:
    """The plain conclusion of a :func:`run_probes` table for one probe (``field``: ``grad_norm`` or
    ``generalization_error``; ``what``: its name in words): per setting (``by``: bits, or model and bits),
    ``mixed`` against ``baseline`` as a ratio of means, and across the setting's runs on images (all sources
    but Gaussian noise), the correlation of the probe with top-1 and what it says about the paper's argument."""
    lines = []
    for key, rows in per_run.groupby(list(by), sort=False):
        setting = " ".join(str(part) for part in (key if isinstance(key, tuple) else (key,)))
        means = rows.groupby("data")[field].mean()
        if mixed not in means or baseline not in means:
            continue
        # Gaussian noise, the lower bound, sits far out on both axes: left in, it alone would set r.
        images = rows[rows["data"] != "noise"]
        correlation = images[field].corr(images["top1"]) if len(images) > 2 else float("nan")
        tie = "" if math.isnan(correlation) else (
            f"; across its {len(images)} runs on images (noise left out) the correlation of {what} with top-1 is "
            f"r = {num(correlation)}{_correlation_reading(correlation)}")
        other = SOURCE_LABELS.get(baseline, baseline)
        ratio = _ratio(means[mixed], means[baseline])
        compared = (f"{ratio} the {what} of {other} sets" if ratio else
                    f"a {what} of {_against(means[mixed], means[baseline])} for {other} sets")
        lines.append(f"- **{setting}**: {SOURCE_LABELS.get(mixed, mixed)} sets give {compared}{tie}.")
    return "\n".join(lines) if lines else f"No setting has runs of both {mixed} and {baseline} yet."


def reading_conclusion(scores: dict, n: int, chance: dict[str, float], twins: dict[str, str]) -> str:
    """The plain reading of :func:`mixq_core.generator_quality.mixed_picture_reading`'s ``scores`` (classifier →
    picture kind → pair scores, ``n`` pictures of each kind): per kind, how often each classifier's top-2 holds
    both prompted classes (± one binomial standard error) against ``chance``
    (:func:`~mixq_core.generator_quality.chance_pair_scores`), then for each mix-trained classifier in
    ``twins`` (mix-trained → plain) whose twin was read too, whether it reads both classes more often than its
    twin by more than two combined standard errors."""

    def error(share: float) -> float:
        return 100 * math.sqrt(share / 100 * (1 - share / 100) / n)

    kinds = list(dict.fromkeys(kind for by_kind in scores.values() for kind in by_kind))
    lines = []
    for kind in kinds:
        read = [f"{name} {by_kind[kind]['both_in_top2']:.1f} ± {error(by_kind[kind]['both_in_top2']):.1f} %"
                for name, by_kind in scores.items() if kind in by_kind]
        lines.append(f"- **{kind}**, both prompted classes in the top-2 ({n} pictures): " + ", ".join(read)
                     + f"; chance {chance['both_in_top2']:.1f} %.")
    for mixed, plain in twins.items():
        if mixed not in scores or plain not in scores:
            continue
        for kind in kinds:
            a, b = scores[mixed][kind]["both_in_top2"], scores[plain][kind]["both_in_top2"]
            beyond = beyond_spread(a - b, math.hypot(error(a), error(b)))
            lines.append(f"- **{mixed} against {plain}, {kind}**: {num(a - b, '+.1f')} pt, "
                         + ("beyond" if beyond else "within") + " two standard errors of the two shares.")
    return "\n".join(lines) if lines else "No classifier has read the two-class pictures."


def ablation_conclusion(results: dict[str, object], columns: dict[str, str]) -> str:
    """The plain conclusion of the ablations (``results``: ``{factor: records_frame}``, ``columns``: the column
    each factor varies): per factor the level with the best mean top-1, and its margin over the runner-up
    beside the larger of the two standard deviations over seeds."""
    lines = []
    for factor, frame in results.items():
        column = columns[factor]
        means = frame.groupby(column)["top1"].agg(["mean", "std", "count"]).sort_values("mean", ascending=False)
        if len(means) < 2:
            continue
        (best, first), (second, runner) = list(means.iterrows())[:2]
        spread = max(first["std"], runner["std"])
        beyond = ("" if math.isnan(spread) else
                  f", {'more' if first['mean'] - runner['mean'] > spread else 'less'} than one standard deviation "
                  f"over seeds ({spread:.2f})")
        lines.append(f"- **{FACTOR_LABELS.get(factor, factor)}**: best at {best} "
                     f"({first['mean']:.2f} %), {first['mean'] - runner['mean']:.2f} points above {second}{beyond}.")
    return "\n".join(lines) if lines else "No ablation has two levels run yet."


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


# Columns of differences besides those named "a − b": their numbers carry a sign either way ("+1.44", "−0.27").
SIGNED_COLUMNS = {"move"}


def readable(frame, digits: int = 2):
    """``frame`` for display: human column and index names (:data:`FIELD_LABELS`), source names as their labels,
    numbers rounded to ``digits`` (columns of values below 1 to three significant digits; a column with negative
    values as text, with a true minus sign; a column of differences, "a − b" or :data:`SIGNED_COLUMNS`, with a
    sign on every number), columns that hold nothing (all NaN) left out, and a dash where a row has no value."""
    import pandas as pd

    shown = frame.dropna(axis=1, how="all").copy()
    index = [name for name in shown.index.names if name is not None]
    if index:
        shown = shown.reset_index()
    for column in ("data", "source"):
        if column in shown.columns:
            shown[column] = shown[column].map(lambda d: SOURCE_LABELS.get(d, d))
    shown = shown.rename(columns=lambda c: FIELD_LABELS.get(c, c) if isinstance(c, str) else c)
    if index:
        shown = shown.set_index([FIELD_LABELS.get(n, n) for n in index])
    for position in range(shown.shape[1]):  # by position: two compared tables side by side repeat column names
        values = shown.iloc[:, position]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            largest = values.abs().max()
            small = largest and largest < 1 and not math.isnan(largest)  # small values keep three significant digits
            decimals = max(digits, 2 - math.floor(math.log10(largest))) if small else digits
            values = values.round(decimals)
            if pd.api.types.is_float_dtype(values):
                values = values + 0.0  # a value rounded to -0.0 becomes 0.0, which prints without a sign
            # A column printed as text (below) gets one count of decimals down the column, the fewest that show
            # every value, as pandas prints a numeric column: 0.10 beside 0.11, not 0.1; -0.20, not -0.200.
            present = values.dropna()
            fewest = next((d for d in range(decimals + 1) if (present.round(d) == present).all()), decimals)
            spec = "d" if pd.api.types.is_integer_dtype(values) else f".{fewest}f"
            label = shown.columns[position]
            signed = isinstance(label, str) and (" − " in label or label in SIGNED_COLUMNS)
            if signed or (values < 0).any():  # as text: a true minus sign, and a plus on a difference (as in prose)
                spec = f"+{spec}" if signed else spec
                values = values.astype(object).map(lambda v, spec=spec: v if pd.isna(v) else num(v, spec))
            elif values.isna().any():  # as text too: the dashes below make the column text
                values = values.map(lambda v, spec=spec: v if pd.isna(v) else format(v, spec))
        if values.isna().any():  # a value a row does not have: a dash, not NaN
            values = values.astype(object).where(values.notna(), "—")
        shown.isetitem(position, values)
    return shown


# ----------------------------------------------------------------------------- figures


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


def stack_comparisons(comparisons: dict[str, object], by=("model", "bits")):
    """``{b: compare_sources(table, a, b)}`` as one long table, one row per group and baseline ``b`` (its label),
    with the columns ``a − baseline``, ``standard error`` and ``verdict``: narrower than the tables side by side."""
    import pandas as pd

    frames = []
    for baseline, table in comparisons.items():
        if table.empty:
            continue
        difference = table.columns[len(by)]  # "a − b"
        frames.append(table.rename(columns={difference: difference.split(" − ")[0] + " − baseline"})
                      .assign(baseline=SOURCE_LABELS.get(baseline, baseline)))
    if not frames:
        return pd.DataFrame()
    # grouped by setting in the book's order (see summary_table), baselines in the order given within each
    stacked = pd.concat(frames, ignore_index=True).sort_values(list(by), key=_book_position, kind="stable")
    return stacked.set_index([*by, "baseline"])


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


# ----------------------------------------------------------------------------- the paper's regime (notebook 11)


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


def regimes_frame(records_by_regime: dict[str, list[dict]]):
    """:func:`records_frame` of each regime's records (``{"short": [...], "long": [...]}``), with a ``regime``
    column in the given order."""
    return labelled_frame(records_by_regime, "regime")


def grid_status(configs: list[ExperimentConfig], results_dir: str | os.PathLike | None = None):
    """One row per experiment of ``configs``: model, bits, steps, data, seed, and whether its record exists."""
    import pandas as pd

    results_dir = RESULTS_DIR if results_dir is None else results_dir
    rows = []
    for config in configs:
        resolved = config.resolved()
        rows.append({"model": resolved.model, "bits": f"W{resolved.w_bits}A{resolved.a_bits}", "steps": resolved.iters,
                     "data": resolved.data, "seed": resolved.seed,
                     "done": stored_record(config, results_dir) is not None})
    return pd.DataFrame(rows, columns=["model", "bits", "steps", "data", "seed", "done"])


def grid_progress(profile: str, sections: Sequence[str] = GRID_SECTIONS,
                  results_dir: str | os.PathLike | None = None):
    """How far the profile's grid has run: :func:`progress_table` of its :func:`grid_status`.
    The long grids run across sessions, so a chapter says what it computes from."""
    return progress_table(grid_status(grid_section_configs(profile, tuple(sections)), results_dir))


def progress_table(status):
    """One row per model, bits and steps, one column per source (headed by its short name, as in
    :func:`pivot_sources`), each cell ``"done/planned"`` (seeds with a record against seeds in the plan; a dash
    where the plan has no such cell), from a :func:`grid_status` or :func:`grid_plan` frame."""
    import pandas as pd

    if status.empty:
        return pd.DataFrame()
    # rows in the book's order (bit settings wide to narrow within a model), whatever order the plan lists
    status = status.sort_values(["model", "bits", "steps"], key=_book_position, kind="stable")
    cells = status.groupby(["model", "bits", "steps", "data"], sort=False)["done"].agg(["sum", "size"])
    cells["seeds run"] = [f"{done}/{planned}" for done, planned in zip(cells["sum"], cells["size"], strict=True)]
    wide = cells["seeds run"].unstack("data", sort=False)
    wide.columns.name = None  # the sources are the columns; the name would head the index column
    wide = wide[[s for s in SOURCE_ORDER if s in wide.columns]]
    return wide.rename(columns=lambda name: SOURCES[name].heading).fillna("—")


def run_seconds(record: dict) -> float:
    """What a run cost, as its record measured it: set-up, reconstruction and evaluation. Synthesis is left out:
    a synthetic set is made once and shared by every cell (bits, steps) that calibrates on it."""
    seconds = record["metrics"]["seconds"]
    return sum(seconds.get(part, 0.0) for part in ("setup_seconds", "quantize_seconds", "eval_seconds",
                                                    "diversity_seconds"))


def run_times(records: list[dict]):
    """What the runs cost, per model and schedule: number of runs, the median of :func:`run_seconds` in minutes
    and their range as text (``"32.7–181.3"``: one column, so that the table fits the book's column), the
    processors and threads that spent them, and how many of the runs state those (``"16 of 25"``: records made
    before they stated it do not)."""
    import pandas as pd

    rows = []
    for record in records:
        config, made = record["metrics"]["config"], record["provenance"]
        rows.append({"model": config["model"], "steps": config["iters"], "minutes": run_seconds(record) / 60,
                     "cpu": _processor_name(made.get("gpu") or made.get("cpu")),
                     "threads": str(made["threads"]) if "threads" in made else None})
    frame = pd.DataFrame(rows, columns=["model", "steps", "minutes", "cpu", "threads"])
    table = frame.groupby(["model", "steps"], sort=False).agg(
        runs=("minutes", "size"), median_minutes=("minutes", "median"),
        range_minutes=("minutes", lambda m: f"{m.min():.1f}\u2013{m.max():.1f}"),
        machines=("cpu", _stated), threads=("threads", _stated), stated_by=("cpu", _stating))
    return table.round(1).reset_index()


def _processor_name(name: str | None) -> str | None:
    """A processor's name as a table shows it: without the trademark signs that vendors' names carry
    ("Intel(R) Xeon(R) Processor" → "Intel Xeon Processor")."""
    if not name:
        return None
    for mark in ("(R)", "(TM)", "(tm)"):
        name = name.replace(mark, "")
    return " ".join(name.split())


def _stated(values) -> str:
    """What a group of records states about one thing (None where a record does not): the distinct values,
    e.g. "AMD EPYC, Intel Xeon", or "not recorded" where no record of the group says."""
    import pandas as pd

    stated = sorted({value for value in values if not pd.isna(value)})
    return ", ".join(stated) if stated else "not recorded"


def _stating(values) -> str:
    """How many records of a group state a thing: "16 of 25", or "all 25"."""
    import pandas as pd

    stating = int(pd.notna(values).sum())
    return f"all {len(values)}" if stating == len(values) else f"{stating} of {len(values)}"


RECENT_RUNS = 5  # grid_plan estimates a run's cost from at most this many of the latest comparable records


def grid_plan(configs: list[ExperimentConfig], results_dir: str | os.PathLike | None = None):
    """Which of ``configs`` have a record, and for the others an estimate of the seconds each will take, from
    the records under ``results_dir`` (so on the machines, and with the threads, that made them): the median
    :func:`run_seconds` of the records of the same model and steps; failing that, of the model's records at its
    longest schedule so far, with their per-unit reconstruction time scaled to this run's steps. Records of the
    run's own profile are preferred, and of those the :data:`RECENT_RUNS` latest (by the time each record
    states): a grid that spans sessions changes code and machines on the way, and its latest runs say best
    what the next ones will cost. NaN where no record of the model exists. One row per experiment: model, bits,
    steps, data, seed, done, seconds, basis (what the estimate came from)."""
    import statistics

    results_dir = Path(RESULTS_DIR if results_dir is None else results_dir)
    known = [(folder.name, record) for folder in sorted((results_dir / PTQ_KIND).glob("*")) if folder.is_dir()
             for record in load_records(f"{PTQ_KIND}/{folder.name}", results_dir)]
    plan = grid_status(configs, results_dir).assign(seconds=float("nan"), basis="")
    for index, row in plan[~plan["done"]].iterrows():
        same_model = [(profile, r) for profile, r in known if r["metrics"]["config"]["model"] == row["model"]]
        if not same_model:
            plan.loc[index, "basis"] = f"no record of {row['model']} yet"
            continue
        steps = row["steps"] if any(r["metrics"]["config"]["iters"] == row["steps"] for _, r in same_model) \
            else max(r["metrics"]["config"]["iters"] for _, r in same_model)
        chosen = [(profile, r) for profile, r in same_model if r["metrics"]["config"]["iters"] == steps]
        chosen = [r for profile, r in chosen if profile == configs[index].profile] or [r for _, r in chosen]
        runs = f"{len(chosen)} runs"
        if len(chosen) > RECENT_RUNS:  # records without a time (the oldest) sort first
            chosen = sorted(chosen, key=lambda r: r["provenance"].get("time_utc", ""))[-RECENT_RUNS:]
            runs = f"the {RECENT_RUNS} latest of {runs}"
        scale = row["steps"] / steps
        plan.loc[index, "seconds"] = statistics.median(
            run_seconds(r) + (scale - 1) * sum(unit["seconds"] for unit in r["metrics"]["units"]) for r in chosen)
        plan.loc[index, "basis"] = (f"median of {runs} at {steps} steps" if scale == 1 else
                                    f"{runs} at {steps} steps, reconstruction scaled ×{scale:g}")
    return plan


def plan_cells(plan) -> list[dict]:
    """A :func:`grid_plan` frame per cell (model, bits, steps, data): the seeds with a record against those
    planned, the hours the others should take (None, not a guess, where a run has no estimate), and what the
    estimate came from."""
    cells = []
    for (model, bits, steps, data), rows in plan.groupby(["model", "bits", "steps", "data"], sort=False):
        waiting = rows[~rows["done"]]
        unknown = waiting["seconds"].isna().any()
        cells.append({"model": model, "bits": bits, "steps": int(steps), "data": data,
                      "seeds_run": f"{int(rows['done'].sum())}/{len(rows)}",
                      "hours_left": None if unknown else round(float(waiting["seconds"].sum()) / 3600, 2),
                      "estimate_from": waiting["basis"].iloc[0] if len(waiting) else ""})
    return cells


# Where more of the rounding variables than this are still soft when AdaRound hardens them, the schedule ended
# before the optimisation decided them (hardening rounds them by their sign): the book calls it "not settled".
# A judgement, stated where it is used; resnet18's 5000 steps leave about 3.5 %, its 200 steps about 97 %.
SETTLED_SOFT_SHARE = 0.05


def rounding_summary(records: list[dict]):
    """One row per record: the engine, schedule, and over its reconstructed units the mean share of rounding
    variables still soft before hardening and of weights rounded away from nearest (NaN for records made
    before these diagnostics existed)."""
    import pandas as pd

    rows = []
    for record in records:
        metrics = record["metrics"]
        config = metrics["config"]
        soft = [u["soft_share"] for u in metrics["units"] if u.get("soft_share") is not None]
        flipped = [u["flipped_share"] for u in metrics["units"] if u.get("flipped_share") is not None]
        rows.append({"profile": metrics["profile"], "model": config["model"],
                     "bits": f"W{config['w_bits']}A{config['a_bits']}", "data": config["data"],
                     "seed": config["seed"], "n_calib": metrics["n_calib"], "iters": config["iters"],
                     "engine": metrics.get("engine", 1), "top1": metrics["top1"],
                     "soft_share": sum(soft) / len(soft) if soft else float("nan"),
                     "flipped_share": sum(flipped) / len(flipped) if flipped else float("nan")})
    return pd.DataFrame(rows)


def unit_rounding(records: list[dict]):
    """One row per record and reconstructed unit (in forward order, ``unit_index``): the share of its rounding
    variables still soft before hardening and of its weights rounded away from nearest. Units without these
    diagnostics (records made before they existed, or units with no AdaRound) are left out."""
    import pandas as pd

    rows = []
    for record in records:
        config = record["metrics"]["config"]
        for index, unit in enumerate(record["metrics"]["units"]):
            if unit.get("soft_share") is None:
                continue
            rows.append({"model": config["model"], "bits": f"W{config['w_bits']}A{config['a_bits']}",
                         "data": config["data"], "seed": config["seed"], "iters": config["iters"],
                         "unit_index": index, "soft_share": unit["soft_share"],
                         "flipped_share": unit["flipped_share"]})
    return pd.DataFrame(rows, columns=["model", "bits", "data", "seed", "iters", "unit_index", "soft_share",
                                       "flipped_share"])


def convergence_runs(records: list[dict], steps: int):
    """The convergence cell beside the main schedule: every run made with ``steps`` reconstruction steps, and
    every run of the same model, bits, source, seed and image count at another step count. One row per run
    (:func:`rounding_summary`'s columns), sorted by setting, source and steps; empty when no run has ``steps``."""
    runs = rounding_summary(records)
    if runs.empty:
        return runs
    keys = ["model", "bits", "data", "seed", "n_calib"]
    longest = runs.loc[runs["iters"] == steps, keys].drop_duplicates()
    matched = runs.merge(longest, on=keys)
    ordered = matched.sort_values(["model", "bits", "data", "iters"], kind="stable",
                                  key=lambda col: col if col.name == "iters" else _book_position(col))
    return ordered.reset_index(drop=True)


def convergence_conclusion(runs, steps: int) -> str:
    """One line per setting of :func:`convergence_runs`: how each source's top-1 and hardened rounding moved
    from the main schedule to ``steps``, and the gap of mixup-class prompts to real images at each length."""
    if runs.empty:
        return f"No run with {steps} steps has a record yet."
    lines = []
    for (model, bits), group in runs.groupby(["model", "bits"], sort=False):
        seeds = sorted(group["seed"].unique())
        by_source = group.groupby(["data", "iters"], sort=False)[["top1", "soft_share"]].mean()
        parts = []
        for data in group["data"].unique():
            rows = by_source.loc[data]
            if len(rows) < 2:
                parts.append(f"{SOURCE_LABELS.get(data, data)} has only its {int(rows.index[0])}-step run so far")
                continue
            short, long = rows.iloc[0], rows.iloc[-1]
            parts.append(f"{SOURCE_LABELS.get(data, data)} {short['top1']:.2f} → {long['top1']:.2f} % "
                         f"({num(long['top1'] - short['top1'])} pt; still soft {100 * short['soft_share']:.1f} → "
                         f"{100 * long['soft_share']:.1f} %)")
        seed_text = "seed " + ", ".join(str(seed) for seed in seeds)
        line = (f"- **{model} {bits}**, {' → '.join(f'{int(i)}' for i in sorted(group['iters'].unique()))} steps, "
                f"{seed_text}: " + "; ".join(parts) + ".")
        top1 = group.pivot_table(index="iters", columns="data", values="top1", aggfunc="mean")
        if {"mixup", "real"} <= set(top1.columns):
            gaps = (top1["mixup"] - top1["real"]).dropna()
            if len(gaps):
                line += " Mixup-class minus real: " + ", ".join(
                    f"{num(gap)} pt at {int(iters)} steps" for iters, gap in gaps.items()) + "."
        lines.append(line)
    return "\n".join(lines)


def ranked_in_both(short_table, long_table, by=("model", "bits")):
    """The groups and sources both regimes have, with each regime's mean, std and rank (1 = highest mean
    top-1) among the sources both have, so a source run in one regime only does not shift the ranks."""
    import pandas as pd

    keys = [*by, "data"]
    columns = [*keys, "top1_mean", "top1_std"]
    both = pd.merge(short_table[columns], long_table[columns], on=keys, suffixes=(" short", " long"))
    for regime in ("short", "long"):
        both[f"rank {regime}"] = both.groupby(list(by), sort=False)[f"top1_mean {regime}"].rank(
            ascending=False, method="min").astype(int)
    return both


def regime_comparison(short_table, long_table, by=("model", "bits")):
    """Short and long schedule side by side, one row per group and source: mean ± std and rank in each
    (:func:`ranked_in_both`)."""
    both = ranked_in_both(short_table, long_table, by)
    if both.empty:
        return both
    for regime in ("short", "long"):
        both[f"top-1 {regime}"] = [mean_std(m, sd) for m, sd in zip(both[f"top1_mean {regime}"],
                                                                     both[f"top1_std {regime}"], strict=True)]
    both["long − short"] = (both["top1_mean long"] - both["top1_mean short"]).round(2)
    return both[[*by, "data", "top-1 short", "rank short", "top-1 long", "rank long", "long − short"]]


def schedule_shift(short_table, long_table, a: str = "mixup", b: str = "single", by=("model", "bits")):
    """How far ``a`` − ``b`` moves from the short to the long schedule, per group both schedules ran: the
    difference in each (:func:`compare_sources`), the move, its standard error (the two schedules' errors
    combined) and whether the move is beyond the seed spread (more than twice its standard error)."""
    column = f"{a} − {b}"
    short, long = compare_sources(short_table, a, b, by), compare_sources(long_table, a, b, by)
    both = short.merge(long, on=list(by), suffixes=(" short", " long"))
    both["move"] = (both[f"{column} long"] - both[f"{column} short"]).round(2)
    both["standard error"] = [round(math.hypot(x, y), 2) for x, y in
                              zip(both["standard error short"], both["standard error long"], strict=True)]
    both["verdict"] = ["one seed: no spread to compare" if math.isnan(se) else
                       BEYOND if beyond_spread(move, se) else "within seed spread"
                       for move, se in zip(both["move"], both["standard error"], strict=True)]
    return both[[*by, f"{column} short", f"{column} long", "move", "standard error", "verdict"]]


def ranking_changes(short_table, long_table, by=("model", "bits")) -> list[str]:
    """Per group that both regimes ran, one sentence: mixup-class's rank in each regime, and every pair of
    sources that trades places, with the pair's gap in each regime (so a swap of two sources 0.04 pt apart
    reads as what it is)."""
    from itertools import combinations

    lines = []
    for key, group in ranked_in_both(short_table, long_table, by).groupby(list(by), sort=False):
        name = " ".join(map(str, key)) if isinstance(key, tuple) else str(key)
        rows = group.set_index("data")
        parts = []
        if "mixup" in rows.index:
            short_rank, long_rank = rows.loc["mixup", "rank short"], rows.loc["mixup", "rank long"]
            where = (f"{_ordinal(short_rank)} of {len(rows)} in both" if short_rank == long_rank else
                     f"{_ordinal(short_rank)} of {len(rows)} short, {_ordinal(long_rank)} long")
            parts.append(f"{SOURCE_LABELS['mixup']} {where}")
        swaps = []
        for a, b in combinations(rows.sort_values("rank short").index, 2):  # a ranks above b in the short regime
            above_short = rows.loc[a, "rank short"] < rows.loc[b, "rank short"]
            if above_short and rows.loc[a, "rank long"] > rows.loc[b, "rank long"]:
                gaps = {regime: rows.loc[a, f"top1_mean {regime}"] - rows.loc[b, f"top1_mean {regime}"]
                        for regime in ("short", "long")}
                first, second = SOURCE_LABELS.get(a, a), SOURCE_LABELS.get(b, b)
                swaps.append(f"{first} and {second} swap places ({first} − {second} {num(gaps['short'])} pt "
                             f"short, {num(gaps['long'])} pt long)")
        parts.append("the same order" if not swaps else "; ".join(swaps))
        lines.append(f"{name}: " + ", ".join(parts))
    return lines


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def regime_conclusion(short_table, long_table, versus: dict[str, object], rounding, convergence=None,
                      probes=None) -> str:
    """The chapter's plain conclusion, computed: for each comparison in ``versus`` (``{"single": table of
    compare_sources(long, "mixup", "single"), ...}``) the verdicts in the long schedule, whether the ranking
    of sources changed from the short schedule (:func:`ranking_changes`), how much rounding the long
    schedule hardened, given :func:`convergence_runs` what the convergence cell's longer runs changed, and given
    :func:`run_probes` of the long schedule the paper's two probes, mixup-class against single-class sets."""
    if long_table.empty:
        return "No long-schedule record exists yet, so there is nothing to conclude."
    lines = []
    for other, table in versus.items():
        if table.empty:
            lines.append(f"- **mixup-class − {SOURCE_LABELS.get(other, other)}**: no long-schedule cell has both "
                         "sources yet.")
            continue
        column = f"mixup − {other}"  # compare_sources(long, "mixup", other) names its difference so
        cells = []
        for _, row in table.iterrows():
            cells.append(f"{row['model']} {row['bits']} {num(row[column])} pt ({row['verdict']})")
        lines.append(f"- **mixup-class − {SOURCE_LABELS.get(other, other)}** in the long schedule: "
                     + "; ".join(cells) + ".")
    shift = schedule_shift(short_table, long_table)
    if not shift.empty:
        moves = []
        for _, row in shift.iterrows():
            error = "" if math.isnan(row["standard error"]) else f", standard error {row['standard error']:.2f}"
            moves.append(f"{row['model']} {row['bits']} {num(row['mixup − single short'])} → "
                         f"{num(row['mixup − single long'])} pt (moves {num(row['move'])} pt{error}; {row['verdict']})")
        lines.append("- **mixup-class − single-class, short schedule → long**: " + "; ".join(moves) + ".")
    changes = ranking_changes(short_table, long_table)
    if changes:
        changed = sum(not line.endswith("the same order") for line in changes)
        lines.append(f"- **Ranking of sources, short against long**: {changed} of {len(changes)} settings change "
                     "order. " + ". ".join(changes) + ".")
    if not rounding.empty:
        # Per model and schedule: whether mobilenetv2_100's and deit_mini's 2000 steps were enough is read here.
        by_schedule = rounding.groupby(["model", "iters"], sort=False)[["soft_share", "flipped_share"]].mean()
        parts = [f"{model}, {int(iters)} steps: {100 * row['soft_share']:.1f} % still soft"
                 f"{'' if row['soft_share'] <= SETTLED_SOFT_SHARE else ' (not settled)'}, "
                 f"{100 * row['flipped_share']:.1f} % away from nearest"
                 for (model, iters), row in by_schedule.sort_index(kind="stable").iterrows()]
        lines.append("- **How much reconstruction happened** (share of rounding variables still soft before "
                     "hardening, and of weights rounded away from nearest; mean over runs and units; a schedule "
                     f"has not settled where more than {100 * SETTLED_SOFT_SHARE:.0f} % are still soft): "
                     + "; ".join(parts) + ".")
    if probes is not None and not probes.empty:
        lines.extend(_probes_line(probes))
    if convergence is not None and not convergence.empty:
        steps = int(convergence["iters"].max())
        settings = convergence_conclusion(convergence, steps).splitlines()
        lines.append(f"- **Convergence at {steps} steps**: " + " ".join(line.removeprefix("- ") for line in settings))
    lines.append(_long_schedule_in_short(long_table, versus))
    return "\n".join(lines)


def _probes_line(probes) -> list[str]:
    """The conclusion's line on the paper's two probes (a :func:`run_probes` table): per model and bits, the
    mean gradient norm and generalization error of mixup-class sets as multiples of single-class sets' (the
    two means where a ratio would not read). Empty when no setting has both."""
    means = _probe_means(probes, ("model", "bits"))
    parts = []
    for model, bits in probes[["model", "bits"]].drop_duplicates().itertuples(index=False):
        if (model, bits, "mixup") in means.index and (model, bits, "single") in means.index:
            mixup, single = means.loc[(model, bits, "mixup")], means.loc[(model, bits, "single")]
            compared = [f"{what} {_ratio(mixup[field], single[field]) or _against(mixup[field], single[field])}"
                        for field, what in (("grad_norm", "gradient norm"),
                                            ("generalization_error", "generalization error"))]
            parts.append(f"{model} {bits}: " + ", ".join(compared))
    if not parts:
        return []
    return ["- **The paper's two probes**, mixup-class sets against single-class sets (mean over units and seeds; "
            "the section on the two analyses gives each probe's correlation with top-1): " + "; ".join(parts) + "."]


def _long_schedule_in_short(long_table, versus: dict[str, object]) -> str:
    """The conclusion's last line: where mixup-class prompts rank among the generated sources (real images
    and noise left out) in each long-schedule setting, and the tally of their verdicts against the baselines."""
    import pandas as pd

    generated = long_table[~long_table["data"].isin(["real", "noise"])]
    settings = last = 0
    for _, group in generated.groupby(["model", "bits"], sort=False):
        if "mixup" in set(group["data"]) and len(group) > 1:
            settings += 1
            last += bool(group.loc[group["data"] == "mixup", "top1_mean"].iloc[0] <= group["top1_mean"].min())
    tables = [t.rename(columns={f"mixup − {other}": "difference"}) for other, t in versus.items() if not t.empty]
    if not settings or not tables:
        return "- **In short**: no long-schedule setting has mixup-class and another generated source yet."
    counts = verdict_counts(pd.concat(tables), "difference", by=None)
    text = (f"- **In short**: in the long schedule, mixup-class prompts are last among the generated sources in "
            f"{last} of {settings} settings. Of their {int(counts.sum())} comparisons with a baseline, "
            f"{counts['behind']} are behind beyond the seed spread, {counts['ahead']} ahead beyond it, "
            f"{counts['within seed spread']} within it")
    if counts["one seed"]:
        rest = "still rests" if counts["one seed"] == 1 else "still rest"
        return text + f", and {counts['one seed']} {rest} on one seed: no verdict there until its seeds have run."
    return text + "."


def provenance_line(records: list[dict]) -> str:
    """Where a table's numbers come from: profile, record count, the models and seeds the records hold, the
    reconstruction engine that made them, when and with which code they were made (the span of their dates,
    the number of commits and the last one) and the torch version."""
    if not records:
        return "no records"
    configs = [r.get("config") or {} for r in records]
    models = list(dict.fromkeys(c["model"] for c in configs if "model" in c))
    seeds = sorted({c["seed"] for c in configs if "seed" in c})
    held = (f" ({', '.join(models)}; seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))})"
            if models and seeds else "")
    engines = sorted({record_engine(r) for r in records if "metrics" in r})
    held += f" by engine {', '.join(map(str, engines))}" if engines else ""
    made = sorted((r["provenance"].get("time_utc") or "", (r["provenance"].get("git_commit") or "unknown")[:10])
                  for r in records)
    commits = {commit for _, commit in made}
    days = sorted({time[:10] for time, _ in made if time})
    when = f" made {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else "") if days else ""
    code = f"commit {made[-1][1]}" if len(commits) == 1 else f"{len(commits)} commits, the last {made[-1][1]}"
    torch_versions = sorted({r["provenance"]["torch"] for r in records})
    profiles = sorted({r["metrics"]["profile"] for r in records})
    count = f"{len(records)} record{'' if len(records) == 1 else 's'}"
    return (f"{count} of profile {', '.join(profiles)}{held}{when} ({code}); "
            f"torch {', '.join(torch_versions)}")


def set_gallery(folder: str | os.PathLike, n: int = 16, columns: int = 8, title: str | None = None):
    """A figure of the first ``n`` images of a synthetic set, titled by their prompted classes."""
    from pathlib import Path

    import matplotlib.pyplot as plt
    from PIL import Image

    from .data import read_manifest

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


# ----------------------------------------------------------------------------- ImageNet reference numbers

# The one copy of the published numbers: each row carries its source, the source's address and whether the
# number was read second-hand (quoted by another page) rather than from the source itself. See its README.md.
REFERENCE_CSV = Path(__file__).resolve().parent / "reference" / "imagenet_ptq_reference.csv"
# The reference table names models as their papers do; these are the timm names of the same architectures.
REFERENCE_MODEL_NAMES = {"resnet18": "resnet18", "resnet50": "resnet50", "mobilenetv2": "mobilenetv2_100",
                         "deit_small": "deit_small_patch16_224", "deit_base": "deit_base_patch16_224",
                         "vit_small": "vit_small_patch16_224", "swin_tiny": "swin_tiny_patch4_window7_224"}
# The columns of the comparison table, in the order it shows them: the numbers before the (long) source, so that
# a page narrower than the table shows them without scrolling.
REFERENCE_COLUMNS = ["method", "model", "bits", "calibration", "data-free", "top1", "fp_top1", "drop", "source"]
# How reference_display heads the numeric columns (the data keeps the record fields' names).
REFERENCE_HEADERS = {"top1": "top-1", "fp_top1": "float", "drop": "drop"}  # % and points: the captions say so
# Longest text a cell may hold: pandas cuts longer cell text to this width with "..." when it shows a frame.
MAX_CELL_TEXT = 50


def imagenet_reference():
    """The published ImageNet numbers shipped with the package, one row each with its ``source``, ``url`` and
    ``second_hand`` flag; ``model`` is the timm architecture name, ``bits`` reads ``W4A4`` (or ``FP32``), and
    ``drop`` is the fall from full precision (empty where the source gives no full-precision top-1).
    A second-hand row's ``source`` ends in ``(second-hand)``, so every table that shows it says so."""
    import pandas as pd

    frame = pd.read_csv(REFERENCE_CSV, keep_default_na=False, na_values={"top1": [""], "fp_top1": [""]})
    frame["model"] = [REFERENCE_MODEL_NAMES.get(name, name.split(".")[0]) for name in frame["model"]]
    frame["bits"] = [f"W{w}A{a}" if w < 32 else "FP32" for w, a in zip(frame["w_bits"], frame["a_bits"], strict=True)]
    frame["drop"] = (frame["fp_top1"] - frame["top1"]).round(2)
    second_hand = frame["second_hand"] == "yes"
    frame.loc[second_hand, "source"] = frame.loc[second_hand, "source"] + " (second-hand)"
    frame["data-free"] = frame["data_free"]
    return frame


def beside_reference(frame, models: list[str] | None = None):
    """This run's records (a :func:`records_frame`) and the quantized reference rows of the same models
    (``models``, default: those in ``frame``, or all when it is empty), one row each, with the columns of
    :data:`REFERENCE_COLUMNS`: the method and its source in columns of their own, so that no cell's text is
    long enough for pandas to cut it. Show it with :func:`reference_display`."""
    import pandas as pd

    reference = imagenet_reference()
    reference = reference[reference["bits"] != "FP32"]
    models = models or (sorted(set(frame["model"])) if len(frame) else sorted(set(reference["model"])))
    theirs = reference[reference["model"].isin(models)]
    if not len(frame):
        return theirs[REFERENCE_COLUMNS].reset_index(drop=True)
    ours = frame.assign(source="MixQ (this run)", method=frame["method"] + " from " + frame["data"],
                        calibration=frame["data"] + " " + frame["n_calib"].astype(str),
                        **{"data-free": ["no" if data == "real" else "yes" for data in frame["data"]]})
    return pd.concat([theirs[REFERENCE_COLUMNS], ours[REFERENCE_COLUMNS]], ignore_index=True)


def reference_display(table):
    """A :func:`beside_reference` table as it should be shown: every cell's full text, two decimals, a dash
    where a source gives no number (as in every table of the book), no index, in a container that scrolls
    sideways when the page is narrow."""
    numbers = [c for c in ("top1", "fp_top1", "drop") if c in table.columns]
    # Names and numbers stay on one line; the two columns of prose wrap, and the text is a size smaller, so that
    # the table fits the book's column at 1280 px and scrolls sideways only on a phone.
    prose = {column: [{"selector": "td", "props": [("white-space", "normal"), ("min-width", "8em")]}]
             for column in ("calibration", "source") if column in table.columns}
    return (table.style.hide(axis="index").format(lambda v: num(v, ".2f"), subset=numbers, na_rep="—")
            .relabel_index([REFERENCE_HEADERS.get(c, c) for c in table.columns], axis="columns")
            .set_table_attributes('class="dataframe mixq-reference"')
            .set_table_styles([{"selector": "", "props": [("display", "block"), ("overflow-x", "auto"),
                                                          ("max-width", "100%")]},
                               {"selector": "td, th", "props": [("white-space", "nowrap"), ("font-size", "0.9em")]}])
            .set_table_styles(prose, overwrite=False))
