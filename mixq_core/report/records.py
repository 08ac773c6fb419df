"""Which records a chapter reads, as lists and as frames: a profile's grid, the worlds, the two schedules, and where
their numbers come from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import ConfigError
from ..experiment import (
    GRID_SECTIONS,
    REAL_SOURCES,
    SYNTHETIC_SOURCES,
    ExperimentConfig,
    grid_section_configs,
    ptq_kind,
    record_engine,
    stored_record,
)
from ..profiles import load_profile
from ..results import RESULTS_DIR, load_records
from ..sources import SOURCES, source_names

SOURCE_ORDER = source_names()  # the registry's order (mixq_core.sources): the order of every table


MIXED_SOURCES = tuple(name for name, s in SOURCES.items() if s.mixes_classes)  # prompts name k ≥ 2 classes


SOURCE_LABELS = {name: source.label for name, source in SOURCES.items()}


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

    columns = ["model", "w_bits", "a_bits", "data", "n_calib", "method", "iters", "seed", "steps", "guidance",
               "partners", "k", "bits", "top1", "fp_top1", "drop", "n_eval", "quantize_seconds", "record"]
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
    return pd.DataFrame(rows, columns=columns)  # the columns even with no record, so tables come out empty


def regimes_frame(records_by_regime: dict[str, list[dict]]):
    """:func:`records_frame` of each regime's records (``{"short": [...], "long": [...]}``), with a ``regime``
    column in the given order."""
    return labelled_frame(records_by_regime, "regime")


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

