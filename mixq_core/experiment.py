"""Experiments that produce result records. For now: the full-precision accuracy of a profile's models."""

from __future__ import annotations

import os
import time

from .data import eval_dataset, make_loader, subset
from .models import evaluate, load_model
from .profiles import load_profile
from .results import RESULTS_DIR, load_record, save_record


def fp_top1(profile_name: str, model_name: str, limit: int | None = None, seed: int = 0,
            data_root: str | os.PathLike | None = None) -> dict:
    """Top-1 of the full-precision model on the profile's real test data.

    ``limit`` evaluates a deterministic subset of that many images (the same for the same
    ``seed``); ``data_root`` is the data folder where the profile needs one (ImageNet val).
    """
    profile = load_profile(profile_name)
    model = load_model(profile, model_name)
    dataset = subset(eval_dataset(profile, model, data_root), limit or profile.get("eval_limit"), seed)
    start = time.time()
    metrics = evaluate(model, make_loader(dataset, batch_size=profile["eval_batch_size"]), desc=f"eval {model_name}")
    return {"model": model_name, "profile": profile_name, **metrics, "seconds": round(time.time() - start, 2)}


def run_fp_evaluation(profile_name: str, model_name: str, limit: int | None = None, seed: int = 0,
                      force: bool = False, results_dir: str | os.PathLike = RESULTS_DIR) -> dict:
    """:func:`fp_top1` stored as a ``fp`` result record; an existing record is reused unless ``force``."""
    config = {"profile": profile_name, "model": model_name, "limit": limit, "seed": seed}
    if not force and (record := load_record("fp", config, results_dir)) is not None:
        return record
    save_record("fp", config, fp_top1(profile_name, model_name, limit, seed), results_dir)
    return load_record("fp", config, results_dir)
