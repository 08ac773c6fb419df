"""The plain sentences that close a chapter, each computed from a table of :mod:`.tables` or :mod:`.regimes`: what is
ahead or behind beyond the seed spread, and what the probes say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..experiment import SYNTHETIC_SOURCES
from .probes import PROBE_NAMES, _ratio, probe_table
from .records import SOURCE_LABELS
from .regimes import (
    SETTLED_SOFT_SHARE,
    ranking_changes,
    ranking_swaps,
    rounding_table,
    schedule_shift,
    settled,
    settled_settings,
)
from .tables import (
    FACTOR_LABELS,
    beyond_spread,
    collapsed_settings,
    compare_sources,
    difference_error,
    num,
    verdict_counts,
    verdict_masks,
)


def _count_change(before: int, after: int) -> str:
    """"go from 3 to 5", or "stay at 3"."""
    return f"stay at {int(before)}" if int(before) == int(after) else f"go from {int(before)} to {int(after)}"


def world_conclusion(summary) -> str:
    """The plain conclusion of a :func:`world_summary` table, in sentences computed from it, its answer ("In
    short") first: per world whether mixup-class prompts beat single-class ones beyond the seed spread, and how
    each world's margin (mean and median over cells, and the cells lost beyond the seed spread) and drop from
    real data compare with the first (plain) world's."""
    if summary.empty or summary["cells"].sum() == 0:
        return "No cell has been run in every world yet, so there is nothing to conclude."
    lines = []
    for world, row in summary.iterrows():
        cells, better, worse = int(row["cells"]), int(row["ahead"]), int(row["behind"])
        lonely = int(row["one seed"])  # cells with one seed: no spread, so neither a win nor a loss
        judged = cells - lonely
        counted = f"{judged} cell{'s' * (judged != 1)}"
        if not judged:
            verdict = (f"{'its one cell has' if cells == 1 else f'all {cells} cells have'} one seed so far: "
                       "no verdict against the seed spread")
        elif better and not worse:
            verdict = f"mixup-class prompts beat single-class prompts beyond the seed spread in {better} of {counted}"
        elif worse and not better:
            verdict = (f"mixup-class prompts fall behind single-class prompts beyond the seed spread in {worse} "
                       f"of {counted}")
        elif better and worse:
            verdict = f"mixup-class prompts win beyond the seed spread in {better} and lose in {worse} of {counted}"
        else:
            verdict = f"no difference exceeds the seed spread in any of {counted}"
        rest = f" with several seeds, {lonely} more on one seed" if lonely and judged else ""
        lines.append(f"- **{world}**: {verdict}{rest} (mean mixup − single {num(row['mixup − single'])} pt).")
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
    moves = "gains most" if shifts[best] > 0 else "loses least"  # every world below plain: the smallest loss
    lonely, total = int(summary["one seed"].sum()), int(summary["cells"].sum())
    answer = (f"**In short**: mixup-class prompts lead single-class prompts on average in "
              f"{', '.join(ahead) if ahead else 'no world'}; their mean margin {moves} against plain in "
              f"{best} ({num(shifts[best])} pt, while the cells they lose beyond the seed spread "
              f"{_count_change(summary.loc[plain, 'behind'], summary.loc[best, 'behind'])}); over all worlds "
              + (f"every one of the {total} cells rests on one seed so far, so none is won or lost beyond the seed "
                 "spread." if lonely == total else
                 f"they win beyond the seed spread in {int(summary['ahead'].sum())} and lose beyond it in "
                 f"{int(summary['behind'].sum())} of {total} cells"
                 + (f" ({lonely} of them on one seed, with no verdict)." if lonely else ".")))
    return "\n".join([answer, "", *lines])  # the answer first, in a paragraph of its own


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


def _against(value: float, reference: float) -> str:
    """The two means side by side, where :func:`_ratio` would not read."""
    return f"{num(value, '.3g')} against {num(reference, '.3g')}"


STRONG_CORRELATION = 0.5  # |r| from which a conclusion reads a correlation as a link: a screening rule of the book's


def _correlation_reading(r: float) -> str:
    """What a probe's correlation with top-1 says about the paper's argument, which expects smaller probe values
    (gradient norm, generalization error) with higher accuracy: a negative ``r``."""
    if r <= -STRONG_CORRELATION:
        return ": smaller values go with higher accuracy, as the paper argues"
    if r >= STRONG_CORRELATION:
        return ": smaller values go with *lower* accuracy, against the paper's argument"
    return f": weaker than ±{STRONG_CORRELATION}, no clear link either way"


def _ratio_counts(ratios) -> tuple[int, int, int]:
    """Of a column of mixup-class ÷ single-class ratios (NaN left out): how many are below 1 (the smaller value,
    as the paper expects), how many above, and how many there are."""
    values = ratios.dropna()
    return int((values < 1).sum()), int((values > 1).sum()), len(values)


def _correlation_counts(correlations) -> tuple[int, int, int]:
    """Of a column of correlations with top-1 (NaN left out): how many say a smaller value goes with higher
    accuracy (r ≤ −:data:`STRONG_CORRELATION`, as the paper argues), how many with lower (r ≥ +), and how many
    there are."""
    values = correlations.dropna()
    return (int((values <= -STRONG_CORRELATION).sum()), int((values >= STRONG_CORRELATION).sum()), len(values))


def ratio_reading(ratios, what: str, rows: str = "cells") -> str:
    """One sentence on a column of :func:`probe_ratios` (mixup-class ÷ single-class for one probe, ``what``):
    in how many of its ``rows`` mixup-class sets give the smaller value, as the paper expects, and in how many
    the larger (rows without a ratio left out)."""
    smaller, larger, count = _ratio_counts(ratios)
    return (f"Mixup-class sets give the smaller {what}, as the paper expects, in {smaller} of {count} "
            f"{rows}, and the larger in {larger}.")


def correlation_reading(correlations, what: str) -> str:
    """One sentence on a column of correlations with top-1 of :func:`probe_table` (one probe, ``what``): in how
    many settings smaller values go with higher accuracy (r ≤ −:data:`STRONG_CORRELATION`), as the paper
    argues, in how many with lower accuracy (r ≥ +:data:`STRONG_CORRELATION`), and in how many the link is
    weaker (settings without a correlation left out)."""
    agree, against, count = _correlation_counts(correlations)
    return (f"Across each setting's runs on images, a smaller {what} goes with higher accuracy, as the paper "
            f"argues (r ≤ {num(-STRONG_CORRELATION)}), in {agree} of {count} settings, with *lower* accuracy "
            f"(r ≥ +{STRONG_CORRELATION:.2f}) in {against}, and neither clearly in {count - agree - against}.")


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
    each factor varies): per factor the level with the best mean top-1, and its margin over the runner-up with
    the book's verdict on it (:func:`beyond_spread` of the margin's standard error over seeds)."""
    lines = []
    for factor, frame in results.items():
        column = columns[factor]
        means = frame.groupby(column)["top1"].agg(["mean", "std", "count"]).sort_values("mean", ascending=False)
        if len(means) < 2:
            continue
        (best, first), (second, runner) = list(means.iterrows())[:2]
        margin = first["mean"] - runner["mean"]
        error = difference_error(first["std"], first["count"], runner["std"], runner["count"])
        verdict = ("one seed on a side, no spread to compare" if math.isnan(error) else
                   f"{'beyond' if beyond_spread(margin, error) else 'within'} the seed spread "
                   f"(standard error {error:.2f})")
        lines.append(f"- **{FACTOR_LABELS.get(factor, factor)}**: best at {best} "
                     f"({first['mean']:.2f} %), {margin:.2f} points above {second}, {verdict}.")
    return "\n".join(lines) if lines else "No ablation has two levels run yet."


def convergence_conclusion(runs, steps: int | None, spread=None) -> str:
    """One line per setting of :func:`convergence_runs`: how each source's top-1 and hardened rounding moved
    from the main schedule to ``steps``, and the gap of mixup-class prompts to real images at each length.

    The convergence cell runs one seed, so a move has no spread of its own. Given ``spread``, the main
    schedule's :func:`summary_table`, each move is set beside the standard deviation of that source's top-1
    over the main schedule's seeds: the scale on which a change of seed alone moves it."""
    if steps is None:
        return "This profile plans no convergence cell."
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
            scale = ""
            if spread is not None:
                main = spread[(spread["model"] == model) & (spread["bits"] == bits) & (spread["data"] == data)]
                if len(main) and main["seeds"].iloc[0] > 1:
                    scale = (f" against a standard deviation of {main['top1_std'].iloc[0]:.2f} pt over the "
                             f"{main['seeds'].iloc[0]} seeds at {int(rows.index[0])} steps")
            parts.append(f"{SOURCE_LABELS.get(data, data)} {short['top1']:.2f} → {long['top1']:.2f} % "
                         f"({num(long['top1'] - short['top1'])} pt{scale}; still soft "
                         f"{100 * short['soft_share']:.1f} → {100 * long['soft_share']:.1f} %)")
        seed_text = f"seed{'s' * (len(seeds) > 1)} " + ", ".join(str(seed) for seed in seeds)
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


def regime_conclusion(short_table, long_table, versus: dict[str, object], rounding, convergence=None,
                      probes=None) -> str:
    """The chapter's plain conclusion, computed: first, in a paragraph of its own, the answer (where mixup-class
    prompts rank among the generated sources, and the tally of their verdicts); then, for each comparison in
    ``versus`` (``{"single": table of compare_sources(long, "mixup", "single"), ...}``) the verdicts in the long
    schedule, grouped (:func:`_verdict_groups`), whether the ranking
    of sources changed from the short schedule (:func:`ranking_changes`), how much rounding the long
    schedule hardened, given :func:`convergence_runs` what the convergence cell's longer runs changed, and given
    :func:`run_probes` of the long schedule the paper's two probes, mixup-class against single-class sets."""
    if long_table.empty:
        return "No long-schedule record exists yet, so there is nothing to conclude."
    lines = [_long_schedule_answer(long_table, versus) + _where_settled(versus, rounding), ""]
    for other, table in versus.items():
        name = f"mixup-class − {SOURCE_LABELS.get(other, other)}"
        if table.empty:
            lines.append(f"- **{name}**: no long-schedule cell has both sources yet.")
            continue
        # the difference column as compare_sources(long, "mixup", other) names it
        lines.append(f"- **{name}** in the long schedule: {_verdict_groups(table, f'mixup − {other}')}.")
    shift = schedule_shift(short_table, long_table)
    if not shift.empty:
        moves = []
        for _, row in shift.iterrows():
            error = "" if math.isnan(row["standard error"]) else f", standard error {row['standard error']:.2f}"
            moves.append(f"{row['model']} {row['bits']} {num(row['mixup − single short'])} → "
                         f"{num(row['mixup − single long'])} pt (moves {num(row['move'])} pt{error}; {row['verdict']})")
        lines.append("- **mixup-class − single-class, short schedule → long**: " + "; ".join(moves) + ".")
    swaps = ranking_swaps(short_table, long_table)
    changes = ranking_changes(short_table, long_table, swaps=swaps)
    if changes:
        changed = len(swaps[["model", "bits"]].drop_duplicates())  # a setting changes order where a pair swaps
        # the schedules in which a swap's gap is beyond the seed spread (None, one seed, counts as not)
        firm = swaps["beyond short"].eq(True).astype(int) + swaps["beyond long"].eq(True).astype(int)
        spread = (f" Of the {len(swaps)} swaps: {(firm == 2).sum()} beyond the seed spread in both schedules "
                  f"(a real reversal), {(firm == 1).sum()} in one schedule only, {(firm == 0).sum()} in neither."
                  if len(swaps) else "")
        lines.append(f"- **Ranking of sources, short against long**: {changed} of {len(changes)} settings change "
                     f"order.{spread} " + ". ".join(changes) + ".")
    if not rounding.empty:
        # The chapter's rounding table, read aloud: per model, bits and schedule, steps rising; whether
        # mobilenetv2_100's and deit_mini's 2000 steps were enough is read here.
        parts = [f"{model} {bits}, {int(iters)} steps: {row['still soft (%)']:.1f} % still soft"
                 f"{'' if settled(row['still soft (%)']) else ' (not settled)'}, "
                 f"{row['rounded away from nearest (%)']:.1f} % away from nearest"
                 for (model, bits, iters), row in rounding_table(rounding).iterrows()]
        lines.append("- **How much reconstruction happened** (share of rounding variables still soft before "
                     "hardening, and of weights rounded away from nearest; mean over runs and units; a schedule "
                     f"has not settled where more than {100 * SETTLED_SOFT_SHARE:.0f} % are still soft): "
                     + "; ".join(parts) + ".")
    if probes is not None and not probes.empty:
        lines.extend(_probes_line(probes))
    if convergence is not None and not convergence.empty:
        steps = int(convergence["iters"].max())
        settings = convergence_conclusion(convergence, steps, long_table).splitlines()
        lines.append(f"- **Convergence at {steps} steps**: " + " ".join(line.removeprefix("- ") for line in settings))
    return "\n".join(lines)


GROUPED_NAMING = 2  # a verdict group of up to this many settings names them; a larger one gives its range


def _verdict_groups(table, column: str) -> str:
    """The verdicts of a :func:`compare_sources` table (difference ``column``) over its settings, grouped:
    behind or ahead beyond the seed spread, within it, and on one seed so far. A group names its settings with
    their differences when it has up to :data:`GROUPED_NAMING`, else gives their count and the range of the
    differences (nearest zero first where all have one sign): the settings themselves are in the chapter's
    tables."""
    masks = verdict_masks(table, column)
    groups = (("behind, beyond the seed spread", masks["behind"]), ("ahead, beyond the seed spread", masks["ahead"]),
              ("within the seed spread", masks["within seed spread"]),
              ("one seed so far, no verdict", masks["one seed"]))
    parts = []
    for words, chosen in groups:
        rows = table[chosen]
        if rows.empty:
            continue
        if len(rows) <= GROUPED_NAMING:
            named = ", ".join(f"{row['model']} {row['bits']} {num(row[column])} pt" for _, row in rows.iterrows())
            parts.append(f"{words} in {len(rows)} setting{'s' * (len(rows) != 1)} ({named})")
        else:
            values = rows[column]
            # from the one nearest zero outward where all lie on one side of it; else, signs mixed, lowest first
            nearest, farthest = ((values.max(), values.min()) if (values < 0).all() else
                                 (values.min(), values.max()))
            parts.append(f"{words} in {len(rows)} settings ({num(nearest)} to {num(farthest)} pt)")
    return "; ".join(parts)


def _probes_line(probes) -> list[str]:
    """The conclusion's line on the paper's two probes (a :func:`run_probes` table), counted over the settings
    of :func:`probe_table`: in how many mixup-class sets give a smaller value than single-class sets, and in
    how many a smaller value goes with higher or with lower accuracy across the setting's runs. A count over no
    setting (no ratio reads, or too few runs for a correlation) is left out; the line is empty when nothing is
    left."""
    table = probe_table(probes)
    smaller, links = [], []
    for name in PROBE_NAMES.values():
        if table.empty:
            break
        fewer, _, ratios = _ratio_counts(table[(name, "mixup ÷ single")])
        agree, against, correlations = _correlation_counts(table[(name, "r with top-1")])
        if ratios:
            smaller.append(f"a smaller {name} in {fewer} of {ratios}")
        if correlations:
            links.append(f"a smaller {name} goes with higher accuracy in {agree} of {correlations} and with lower "
                         f"accuracy in {against}")
    if not smaller and not links:
        return []
    text = "- **The paper's two probes** (their table is in the section on the two analyses):"
    if smaller:
        text += f" against single-class sets, mixup-class sets give {' and '.join(smaller)} settings."
    if links:
        text += f" Across each setting's runs on images (|r| ≥ {STRONG_CORRELATION:.2f}), {'; '.join(links)}."
    return [text]


def _where_settled(versus: dict[str, object], rounding) -> str:
    """The opening paragraph's last sentences: in which settings the long schedule settled
    (:func:`settled_settings`), mixup-class − single-class's verdicts there, and which settings did not settle,
    so that the answer is read in the regime the chapter is about. Empty without rounding records or a
    single-class comparison."""
    single = versus.get("single")
    if rounding.empty or single is None or single.empty:
        return ""
    schedules = settled_settings(rounding)
    setting = list(zip(single["model"], single["bits"], strict=True))
    settled_keys = [key for key in setting if schedules.get(key, (0, False))[1]]
    unsettled = [f"{model} {bits} at {schedules[(model, bits)][0]} steps" for model, bits in setting
                 if (model, bits) in schedules and not schedules[(model, bits)][1]]
    rule = f"at most {100 * SETTLED_SOFT_SHARE:.0f} % of rounding variables still soft at hardening"
    between = (f"({', '.join(unsettled)}), which {'sits' if len(unsettled) == 1 else 'sit'} between the short "
               "regime and the paper's.")
    others = f"{len(unsettled)} setting{'s' * (len(unsettled) != 1)}"
    if not settled_keys:
        return f" The long schedule settled ({rule}) in no setting {between}" if unsettled else ""
    chosen = single[[key in settled_keys for key in setting]]
    text = (f" Where the long schedule settled ({rule}; {len(settled_keys)} of {len(setting)} settings), "
            f"mixup-class − single-class is {_verdict_groups(chosen, 'mixup − single')}.")
    return text + (f" It did not settle in the other {others} {between}" if unsettled else "")


def _long_schedule_answer(long_table, versus: dict[str, object]) -> str:
    """The conclusion's opening paragraph: where mixup-class prompts rank among the generated sources (real images
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
        return "**In short**: no long-schedule setting has mixup-class and another generated source yet."
    counts = verdict_counts(pd.concat(tables), "difference", by=None)
    text = (f"**In short**: in the long schedule, mixup-class prompts are last among the generated sources in "
            f"{last} of {settings} settings. Of their {int(counts.sum())} comparisons with a baseline, "
            f"{counts['behind']} are behind beyond the seed spread, {counts['ahead']} ahead beyond it, "
            f"{counts['within seed spread']} within it")
    if counts["one seed"]:
        rest = "still rests" if counts["one seed"] == 1 else "still rest"
        return text + f", and {counts['one seed']} {rest} on one seed: no verdict there until its seeds have run."
    return text + "."

