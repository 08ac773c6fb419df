"""The short schedule against the long one (notebook 11): how much rounding each run decided, the convergence cell, and
whether the ranking of sources changes.
"""

from __future__ import annotations

import math

from .records import SOURCE_LABELS
from .tables import (
    BEYOND,
    _book_position,
    _ordinal,
    beyond_spread,
    compare_sources,
    difference_error,
    mean_std,
    num,
)

# Where more of the rounding variables than this are still soft when AdaRound hardens them, the schedule ended
# before the optimisation decided them (hardening rounds them by their sign): the book calls it "not settled".
# A judgement, not a derived threshold, and chosen after the first long records were seen; chapter 13 prints
# it beside every use and the shares themselves, so a reader can draw the line elsewhere.
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


def rounding_table(rounding):
    """A :func:`rounding_summary` table per model, bits and steps: the mean over runs of the share (in %) of
    rounding variables still soft before hardening and of weights rounded away from nearest, rows in the book's
    order (models as the records first name them, bit settings from wide to narrow, steps from few to many)."""
    shares = rounding.groupby(["model", "bits", "iters"], sort=False)[["soft_share", "flipped_share"]].mean()
    shares = (100 * shares).reset_index().sort_values(["model", "bits", "iters"], key=_book_position, kind="stable")
    return shares.set_index(["model", "bits", "iters"]).rename(columns={
        "soft_share": "still soft (%)", "flipped_share": "rounded away from nearest (%)"})


def settled(soft_percent: float) -> bool:
    """Whether a schedule whose runs left ``soft_percent`` % of the rounding variables soft at hardening (a
    :func:`rounding_table` row) settled: at most :data:`SETTLED_SOFT_SHARE`."""
    return soft_percent <= 100 * SETTLED_SOFT_SHARE


def settled_settings(rounding) -> dict[tuple[str, str], tuple[int, bool]]:
    """Per model and bits of a :func:`rounding_summary` table: the steps of its main schedule (the fewest its
    records ran; a convergence cell's longer runs are left out) and whether that schedule :func:`settled`, read
    from the :func:`rounding_table` row the chapter shows. Records without the diagnostics are left out."""
    table = rounding_table(rounding.dropna(subset=["soft_share"])).reset_index()
    main = table.loc[table.groupby(["model", "bits"], sort=False)["iters"].idxmin()]
    return {(model, bits): (int(iters), settled(soft))
            for model, bits, iters, soft in zip(main["model"], main["bits"], main["iters"], main["still soft (%)"],
                                                strict=True)}


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
    ordered = matched.sort_values(["model", "bits", "data", "iters"], key=_book_position, kind="stable")
    return ordered.reset_index(drop=True)


def ranked_in_both(short_table, long_table, by=("model", "bits")):
    """The groups and sources both regimes have, with each regime's mean, std, seeds and rank (1 = highest mean
    top-1) among the sources both have, so a source run in one regime only does not shift the ranks."""
    import pandas as pd

    keys = [*by, "data"]
    columns = [*keys, "top1_mean", "top1_std", "seeds"]
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
    both["long − short"] = both["top1_mean long"] - both["top1_mean short"]
    return both[[*by, "data", "top-1 short", "rank short", "top-1 long", "rank long", "long − short"]]


def schedule_shift(short_table, long_table, a: str = "mixup", b: str = "single", by=("model", "bits")):
    """How far ``a`` − ``b`` moves from the short to the long schedule, per group both schedules ran: the
    difference in each (:func:`compare_sources`), the move, its standard error (the two schedules' errors
    combined) and whether the move is beyond the seed spread (more than twice its standard error)."""
    column = f"{a} − {b}"
    short, long = compare_sources(short_table, a, b, by), compare_sources(long_table, a, b, by)
    both = short.merge(long, on=list(by), suffixes=(" short", " long"))
    both["move"] = both[f"{column} long"] - both[f"{column} short"]
    both["standard error"] = [math.hypot(x, y) for x, y in
                              zip(both["standard error short"], both["standard error long"], strict=True)]
    both["verdict"] = ["one seed: no spread to compare" if math.isnan(se) else
                       BEYOND if beyond_spread(move, se) else "within seed spread"
                       for move, se in zip(both["move"], both["standard error"], strict=True)]
    return both[[*by, f"{column} short", f"{column} long", "move", "standard error", "verdict"]]


def ranking_swaps(short_table, long_table, by=("model", "bits")):
    """Every pair of sources that trades places from the short schedule to the long one, per group both ran
    (:func:`ranked_in_both`): ``first`` ranked above ``second`` in the short schedule and below it in the long one.
    Per schedule, the pair's gap (``first`` − ``second``) and whether it is beyond the seed spread (twice its
    standard error; None where a source has one seed), so a swap of two sources 0.04 pt apart reads as what it
    is."""
    from itertools import combinations

    import pandas as pd

    rows = []
    for key, group in ranked_in_both(short_table, long_table, by).groupby(list(by), sort=False):
        ranked = group.set_index("data").sort_values("rank short")
        for a, b in combinations(ranked.index, 2):  # a ranks at or above b in the short schedule
            first, second = ranked.loc[a], ranked.loc[b]
            if not (first["rank short"] < second["rank short"] and first["rank long"] > second["rank long"]):
                continue
            row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
            row.update(first=a, second=b)
            for regime in ("short", "long"):
                gap = first[f"top1_mean {regime}"] - second[f"top1_mean {regime}"]
                error = difference_error(first[f"top1_std {regime}"], first[f"seeds {regime}"],
                                         second[f"top1_std {regime}"], second[f"seeds {regime}"])
                row[f"gap {regime}"] = gap
                row[f"beyond {regime}"] = None if math.isnan(error) else beyond_spread(gap, error)
            rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "first", "second", "gap short", "beyond short", "gap long",
                                       "beyond long"])


def _swap_spread(beyond_short: bool | None, beyond_long: bool | None) -> str:
    """Where a swapped pair's gap is beyond the seed spread: in both schedules, one, or neither (None: that
    schedule has one seed of a source, no spread to judge by)."""
    judged = {regime: beyond for regime, beyond in (("short", beyond_short), ("long", beyond_long))
              if beyond is not None}
    beyond = [regime for regime, flag in judged.items() if flag]
    if len(beyond) == 2:
        return "beyond the seed spread in both"
    if beyond:
        return f"beyond the seed spread {beyond[0]} only" + ("" if len(judged) == 2 else ", one seed in the other")
    if len(judged) == 2:
        return "within the seed spread in both"
    return f"within the seed spread {next(iter(judged))}, one seed in the other" if judged else "one seed: no spread"


def ranking_changes(short_table, long_table, by=("model", "bits"), swaps=None) -> list[str]:
    """Per group that both regimes ran, one sentence: mixup-class's rank in each regime, and every pair of
    sources that trades places (:func:`ranking_swaps`, computed here unless a caller that also counts them
    passes ``swaps``), with the pair's gap in each regime and where that gap is beyond the seed spread."""
    if swaps is None:
        swaps = ranking_swaps(short_table, long_table, by)
    swaps = dict(iter(swaps.groupby(list(by), sort=False)))
    lines = []
    for key, group in ranked_in_both(short_table, long_table, by).groupby(list(by), sort=False):
        name = " ".join(map(str, key))
        rows = group.set_index("data")
        parts = []
        if "mixup" in rows.index:
            short_rank, long_rank = rows.loc["mixup", "rank short"], rows.loc["mixup", "rank long"]
            where = (f"{_ordinal(short_rank)} of {len(rows)} in both" if short_rank == long_rank else
                     f"{_ordinal(short_rank)} of {len(rows)} short, {_ordinal(long_rank)} long")
            parts.append(f"{SOURCE_LABELS['mixup']} {where}")
        texts = []
        for _, swap in swaps[key].iterrows() if key in swaps else ():
            first, second = SOURCE_LABELS.get(swap["first"], swap["first"]), SOURCE_LABELS.get(swap["second"],
                                                                                              swap["second"])
            texts.append(f"{first} and {second} swap places ({first} − {second} {num(swap['gap short'])} pt "
                         f"short, {num(swap['gap long'])} pt long; "
                         f"{_swap_spread(swap['beyond short'], swap['beyond long'])})")
        parts.append("the same order" if not texts else "; ".join(texts))
        lines.append(f"{name}: " + ", ".join(parts))
    return lines
