"""Tables read from ``assets/manifest.json``: the generator benchmarks, the judges' ceiling on two-item
pictures, and how each shipped classifier was trained."""

from __future__ import annotations

from collections.abc import Sequence

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


def shipped_files_table():
    """Every file ``assets/manifest.json`` lists: the command that made it, the start of its sha256 (loading a
    model checks the whole hash first) and its size in MB."""
    import pandas as pd

    from ..models import read_assets_manifest

    files = read_assets_manifest()["files"]
    return pd.DataFrame([{"file": name, "command": entry["command"], "sha256": entry["sha256"][:16] + "…",
                          "size (MB)": round(entry["bytes"] / 2**20, 1)} for name, entry in files.items()],
                        columns=["file", "command", "sha256", "size (MB)"])
