"""The paper's two probes read from the records: per unit and step (:func:`unit_traces`), per run
(:func:`run_probes`), and per setting (:func:`probe_means`, :func:`probe_ratios`, :func:`probe_table`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .tables import _book_position


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
    """One row per record and unit: generalization error at the last probe and mean gradient norms. ``run`` is
    the record's position in ``records``: two records of one model, bits, source and seed (a convergence run
    beside its main-schedule twin) stay two runs."""
    import pandas as pd

    rows = []
    for run, record in enumerate(records):
        metrics = record["metrics"]
        config = metrics["config"]
        for index, unit in enumerate(metrics["units"]):
            gen = unit["generalization_error"]
            grad = unit["grad_norm_rounding"]
            rows.append({"run": run, "model": config["model"], "bits": f"W{config['w_bits']}A{config['a_bits']}",
                         "data": config["data"], "seed": config["seed"], "iters": config.get("iters"),
                         "unit": unit["name"], "unit_index": index,
                         "generalization_error": gen[-1] if gen else float("nan"),
                         "probe_loss_after": unit["probe_loss_after"], "loss_after": unit["loss_after"],
                         "grad_norm_mean": sum(grad) / len(grad) if grad else float("nan"),
                         "top1": metrics["top1"]})
    return pd.DataFrame(rows, columns=["run", "model", "bits", "data", "seed", "iters", "unit", "unit_index",
                                       "generalization_error", "probe_loss_after", "loss_after", "grad_norm_mean",
                                       "top1"])


def run_probes(records: list[dict]):
    """One row per record: its top-1 and its probes averaged over blocks (mean gradient norm of the
    reconstruction loss w.r.t. the rounding parameters; generalization error at the last probe)."""
    summary = unit_summary(records)  # its columns even with no record: the groupby below comes out empty
    return summary.groupby("run", sort=False).agg(
        model=("model", "first"), bits=("bits", "first"), data=("data", "first"), seed=("seed", "first"),
        iters=("iters", "first"), grad_norm=("grad_norm_mean", "mean"),
        generalization_error=("generalization_error", "mean"), top1=("top1", "first")).reset_index(drop=True)


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
