"""Result records: one JSON file per run under ``results/``, append-only, keyed by a config hash.

A record holds the config that produced it, its hash, the metrics, and the run's
provenance (package versions, git commit, time), so every number in the book can be
traced to the run that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from .models import atomic_write
from .shipped import check_published, default_results_dir

RESULTS_DIR = Path(os.environ.get("MIXQ_RESULTS") or default_results_dir())


def config_hash(config: dict) -> str:
    """Short, stable hash of a JSON-serialisable config (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit() -> str | None:
    """The commit of the working tree the package runs from, if it is a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_name() -> str | None:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def provenance() -> dict:
    """Versions and machine facts that a reader needs to judge a result: a run's seconds mean little
    without the processor and the threads that spent them."""
    import timm
    import torch

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu": cpu_name(), "threads": torch.get_num_threads(), "cuda": cuda,
            "gpu": torch.cuda.get_device_name() if cuda else None, "git_commit": git_commit(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def record_path(kind: str, config: dict, results_dir: str | os.PathLike = RESULTS_DIR) -> Path:
    """Where the record of ``config`` for experiment ``kind`` lives."""
    return Path(results_dir) / kind / f"{config_hash(config)}.json"


def save_record(kind: str, config: dict, metrics: dict, results_dir: str | os.PathLike = RESULTS_DIR) -> Path:
    """Write ``{kind, config, config_hash, metrics, provenance}`` atomically; return its path."""
    record = {"kind": kind, "config": config, "config_hash": config_hash(config), "metrics": metrics,
              "provenance": provenance()}
    return write_record(record, results_dir)


def write_record(record: dict, results_dir: str | os.PathLike = RESULTS_DIR) -> Path:
    """Write a whole record (as :func:`save_record` builds it) to its place, atomically."""
    path = record_path(record["kind"], record["config"], results_dir)
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def load_record(kind: str, config: dict, results_dir: str | os.PathLike = RESULTS_DIR) -> dict | None:
    """The stored record of ``config``, or None when it has not been run."""
    path = record_path(kind, config, results_dir)
    if not path.exists():
        check_published(results_dir, kind)
        return None
    return json.loads(path.read_text())


def load_records(kind: str, results_dir: str | os.PathLike = RESULTS_DIR) -> list[dict]:
    """Every record of experiment ``kind``, sorted by file name (i.e. by config hash)."""
    folder = Path(results_dir) / kind
    check_published(results_dir, kind)
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
