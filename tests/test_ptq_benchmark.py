"""The CPU PTQ benchmark (benchmarks/ptq_mini.py) runs end to end on a tiny setting and writes whole rows."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_ptq_benchmark_runs_a_tiny_setting_and_states_what_made_its_figures(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, "benchmarks/ptq_mini.py", "--models", "resnet18", "--bits", "W4A4",
                           "--iters", "2", "--n-calib", "64", "--limit", "200", "--threads", "1", "--no-compile",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert (row["model"], row["bits"], row["threads"], row["target"]) == ("resnet18", "W4A4", 1, 1.5)
    assert 0 <= row["top1"] <= 100 and row["seconds"] > 0
    assert row["drop"] == pytest.approx(row["fp_top1"] - row["top1"])
    assert set(row["iters_per_second"]) == {"Conv2d", "BasicBlock", "Linear"}  # resnet18's units, by kind
    assert row["made"]["threads"] == 1 and row["made"]["time_utc"] and "git_commit" in row["made"]
    assert "reconstruction iterations per second" in done.stdout
    assert not list(tmp_path.glob(".*"))  # the JSON was written whole, through a temporary file that is gone
