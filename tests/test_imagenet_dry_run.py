"""The ImageNet track at real size on the CPU (benchmarks/dry_run.py): SD v1.5's architecture at 512 px, resnet50 and
deit_small at 224 px, QDrop, evaluation and records on a fake ImageNet tree. The fast, tiny version of the same
path is tests/test_imagenet_track.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_real_size_dry_run_of_the_imagenet_track(tmp_path):
    out = tmp_path / "dry_run.json"
    command = [sys.executable, "benchmarks/dry_run.py", "--json", str(out), "--keep", str(tmp_path / "work")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    images = sorted((Path(report["set"]) / "images").glob("*.png"))
    assert len(images) == 2
    from PIL import Image

    assert all(Image.open(path).size == (512, 512) for path in images)
    resnet50, deit = report["runs"]
    # resnet50: the stem, 16 bottlenecks, the classifier; deit_small: the patch embedding, 12 blocks, the head.
    assert (resnet50["model"], resnet50["units"]) == ("resnet50", 18)
    assert (deit["model"], deit["units"]) == ("deit_small_patch16_224", 14)
    for run in report["runs"]:
        assert run["n_calib"] == 8 and run["n_eval"] == 16 and 0 <= run["top1"] <= 100 and run["cache"] == ["device"]
    assert report["peak_rss_gib"] > 0 and "wall time" in done.stdout
