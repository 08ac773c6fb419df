"""What a grid has run and what is left: per cell, the seeds with a record against the seeds planned; what each run
cost; and an estimate, from the records, of the hours the rest will take.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..experiment import GRID_SECTIONS, PTQ_KIND, ExperimentConfig, grid_section_configs, stored_record
from ..models import MIX_TRAINED_TWINS
from ..results import RESULTS_DIR, load_records
from ..sources import SOURCES
from .records import SOURCE_ORDER, provenance_line
from .tables import _book_position


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
    """What a run cost, as its record measured it: set-up, the calibration set's diversity measures,
    reconstruction and evaluation. Synthesis is left out:
    a synthetic set is made once and shared by every cell (bits, steps) that calibrates on it."""
    seconds = record["metrics"]["seconds"]
    return sum(seconds.get(part, 0.0) for part in ("setup_seconds", "quantize_seconds", "eval_seconds",
                                                    "diversity_seconds"))


def run_times(records: list[dict]):
    """What the runs cost, per model and schedule (models in the records' order, steps rising): number of runs,
    the median of :func:`run_seconds` in minutes and their range as text (``"32.7–181.3"``: one column, so that
    the table fits the book's column), the processors and threads that spent them, and how many of the runs state
    those (``"16 of 25"``: records made before they stated it do not)."""
    import pandas as pd

    rows = []
    for record in records:
        config, made = record["metrics"]["config"], record["provenance"]
        rows.append({"model": config["model"], "steps": config["iters"], "minutes": run_seconds(record) / 60,
                     "processor": _processor_name(made.get("gpu") or made.get("cpu")),  # the GPU where one ran
                     "threads": str(made["threads"]) if "threads" in made else None})
    frame = pd.DataFrame(rows, columns=["model", "steps", "minutes", "processor", "threads"])
    # a grid's convergence section comes after its other models, but its rows belong beside its model's
    frame = frame.sort_values(["model", "steps"], key=_book_position, kind="stable")
    table = frame.groupby(["model", "steps"], sort=False).agg(
        runs=("minutes", "size"), median_minutes=("minutes", "median"),
        range_minutes=("minutes", lambda m: f"{m.min():.1f}\u2013{m.max():.1f}"),
        machines=("processor", _stated), threads=("threads", _stated), stated_by=("processor", _stating))
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


def _network(model: str) -> str:
    """The network a model runs: a mix-trained twin's is its plain model's (same layers, same cost per step)."""
    return MIX_TRAINED_TWINS.get(model, model)


def grid_plan(configs: list[ExperimentConfig], results_dir: str | os.PathLike | None = None):
    """Which of ``configs`` have a record, and for the others an estimate of the seconds each will take, from
    the records under ``results_dir`` (so on the machines, and with the threads, that made them): the median
    :func:`run_seconds` of the records of the same network and steps (a mix-trained twin, such as resnet18_mix,
    is its plain model's network and costs the same); failing that, of the network's records at its longest
    schedule so far, with their per-unit reconstruction time scaled to this run's steps. Records of the
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
        same_model = [(profile, r) for profile, r in known
                      if _network(r["metrics"]["config"]["model"]) == _network(row["model"])]
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


def plan_line(label: str, profile: str, plan, records: list[dict]) -> str:
    """One Markdown bullet on a profile's grid (``plan``: its :func:`grid_plan`; ``records``: its records): the
    runs done of those planned, the schedules the records ran, what is left with the single-thread hours the
    records so far put on it (none where a run has no estimate), and the records' provenance."""
    left = plan[~plan["done"]]
    schedules = dict.fromkeys((r["metrics"]["config"]["n_calib"], r["metrics"]["config"]["iters"]) for r in records)
    schedule = ", ".join(f"{n} images × {i} steps" for n, i in schedules) or "none yet"
    estimate = (f", about {left['seconds'].sum() / 3600:.1f} single-thread hours by the records so far"
                if len(left) and left["seconds"].notna().all() else "")
    status = "complete" if left.empty else f"{len(left)} still to run{estimate}"
    made = f" {provenance_line(records)}." if records else ""
    done = len(plan) - len(left)
    return f"- **{label}** (profile `{profile}`): {done} of {len(plan)} runs ({schedule}), {status}.{made}"
