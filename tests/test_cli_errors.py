"""Bad input to the `mixq` command: exit status 2 and one line on stderr (130 and one line for Ctrl-C), no
traceback, nothing written. One row per kind of bad input of issue 21; each runs the real entry point,
`mixq_core.cli.main`, in-process (two that need a fresh process run `python -m mixq_core.cli`)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image

from mixq_core import results, validate
from mixq_core.cli import main


class Case(NamedTuple):
    argv: list[str]  # "{inputs}" stands for the folder of prepared inputs
    message: str  # a part of the one error line
    env: dict = {}  # environment variables ("{inputs}" too)
    full_disk: bool = False  # the disk of every output reports 0 bytes free


def _set(folder: Path, n: int = 10) -> list[dict]:
    """A valid 10-image set (grey 32×32 PNGs, one class each); returns its manifest lines, not yet written."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        Image.fromarray(np.full((32, 32), 20 * i, dtype=np.uint8)).save(folder / "images" / f"{i:04d}.png")
        lines.append({"file": f"images/{i:04d}.png", "classes": [i % 10]})
    return lines


def _manifest(folder: Path, lines: list) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (folder / "manifest.jsonl").write_text(text)
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    _manifest(root / "good-set", _set(root / "good-set"))
    _manifest(root / "truncated-set", _set(root / "truncated-set"))
    png = root / "truncated-set" / "images" / "0003.png"
    png.write_bytes(png.read_bytes()[:60])
    lines = _set(root / "broken-line-set")
    _manifest(root / "broken-line-set", [lines[0], json.dumps(lines[1])[:-1], *lines[2:]])
    lines = _set(root / "class-42-set")
    lines[4]["classes"] = [42]
    _manifest(root / "class-42-set", lines)
    lines = _set(root / "duplicate-set")
    _manifest(root / "duplicate-set", [*lines, lines[1]])
    lines = _set(root / "rgba-set")
    Image.new("RGBA", (64, 48)).save(root / "rgba-set" / "images" / "0005.png")
    _manifest(root / "rgba-set", lines)
    lines = _set(root / "escaping-set")
    lines[2]["file"] = "../good-set/images/0002.png"
    _manifest(root / "escaping-set", lines)
    (root / "stranger").mkdir()
    (root / "stranger" / "notes.txt").write_text("mine")
    (root / "a-file").write_text("not a folder")
    (root / "a-folder").mkdir()
    (root / "broken-generator").mkdir()
    (root / "broken-generator" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline",')
    (root / "broken-assets").mkdir()
    (root / "broken-assets" / "manifest.json").write_text('{"files": {"resnet18.safetensors": ')
    profiles = root / "profiles"
    profiles.mkdir()
    for name, text in {
        "syntax": "extends: smoke\nsteps: [4\n",
        "wrong-type": "extends: smoke\nsteps: many\n",
        "listed": "- extends: smoke\n- steps: 4\n",
        "loop-a": "extends: loop-b\n",
        "loop-b": "extends: loop-a\n",
        "typo": "extends: smoke\nn_calb: 20\n",
        "negative-size": "extends: smoke\nimage_size: -3\n",
        "cifar": "extends: smoke\ndataset: cifar10\n",
        "grid-typo": "extends: smoke\ngrid_cnn: {models: [resnet18], bits: [[4, 4]], data: [real], seed: [0]}\n",
    }.items():
        (profiles / f"{name}.yaml").write_text(text)
    (root / "shadow").mkdir()
    (root / "shadow" / "mini.yaml").write_text("extends: smoke\n")
    return root


SET = "{inputs}/good-set"
QUANTIZE = ["quantize", "--profile", "smoke", "--model", "resnet18"]
SYNTHESIZE = ["synthesize", "--profile", "smoke", "--strategy", "mixup", "--out", "{inputs}/new-set"]
EVALUATE = ["evaluate", "--profile", "smoke", "--model", "resnet18"]
GRID = ["grid", "--profile", "smoke", "--section", "grid_cnn"]
PROFILES = {"MIXQ_PROFILES": "{inputs}/profiles"}
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")

CASES = {
    # 1. zero is a value, never "use the default"
    "synthesize --n 0": Case([*SYNTHESIZE, "--n", "0"], "argument --n: must be an integer from 1 to 100000, got '0'"),
    "synthesize --steps 0": Case([*SYNTHESIZE, "--steps", "0"], "argument --steps: must be an integer from 1 to 1000"),
    "synthesize --resolution 0": Case([*SYNTHESIZE, "--resolution", "0"], "must be a multiple of 8 from 8 to 4096"),
    "quantize --n-calib 0": Case([*QUANTIZE, "--n-calib", "0"], "argument --n-calib: must be an integer from 1"),
    "evaluate --limit 0": Case([*EVALUATE, "--limit", "0"], "argument --limit: must be an integer ≥ 1, got '0'"),
    "train-mini --epochs 0": Case(["train-mini", "resnet18", "--epochs", "0"], "argument --epochs: must be"),
    # 2. what used to end in a traceback
    "--out under /proc": Case([*SYNTHESIZE[:-1], "/proc/mixq-set"], "set folder /proc/mixq-set: /proc is not writable"),
    "--out an existing file": Case([*SYNTHESIZE[:-1], "{inputs}/a-file"], "a-file is an existing file; give a folder"),
    "--out a foreign folder": Case([*SYNTHESIZE[:-1], "{inputs}/stranger"], "is not empty and has no config.json"),
    "--trace under /proc": Case([*QUANTIZE, "--trace", "/proc/mixq/trace.json"], "/proc is not writable"),
    "--trace a folder": Case([*QUANTIZE, "--trace", "{inputs}/a-folder"], "a-folder is a folder; give a file path"),
    "--trace on a full disk": Case([*QUANTIZE, "--trace", "{inputs}/trace.json"], "is full (0 bytes free)",
                                  full_disk=True),
    "evaluate: truncated PNG": Case([*EVALUATE, "--data", "{inputs}/truncated-set"],
                                    "line 4: {inputs}/truncated-set/images/0003.png is truncated or not an image"),
    "quantize: truncated PNG": Case([*QUANTIZE, "--data", "{inputs}/truncated-set"], "0003.png is truncated"),
    "evaluate: broken manifest line": Case([*EVALUATE, "--data", "{inputs}/broken-line-set"],
                                           "broken-line-set/manifest.jsonl line 2 is not a JSON object"),
    "quantize: broken manifest line": Case([*QUANTIZE, "--data", "{inputs}/broken-line-set"],
                                           "manifest.jsonl line 2 is not a JSON object"),
    "evaluate --limit -1": Case([*EVALUATE, "--limit", "-1"], "argument --limit: must be an integer ≥ 1, got '-1'"),
    "evaluate --limit 99999999": Case([*EVALUATE, "--limit", "99999999"],
                                      "limit 99999999 is outside 1..10000, the test images of profile 'smoke'"),
    "quantize --n-calib -5": Case([*QUANTIZE, "--n-calib", "-5"], "argument --n-calib: must be an integer from 1"),
    "evaluate --topk 0": Case([*EVALUATE, "--data", SET, "--topk", "0"], "argument --topk: must be an integer ≥ 1"),
    "--device cuda without a GPU": pytest.param(Case([*EVALUATE, "--device", "cuda"], "no CUDA GPU is visible"),
                                                marks=no_gpu),
    "--device cuda:99": Case([*QUANTIZE, "--device", "cuda:99"], "device 'cuda:99'"),
    "--device tpu": Case([*EVALUATE, "--device", "tpu"], "unknown device 'tpu'; accepted: cpu, cuda, cuda:N"),
    "synthesize --resolution 7": Case([*SYNTHESIZE, "--resolution", "7"], "argument --resolution: must be a multiple"),
    "broken model_index.json": Case([*SYNTHESIZE, "--n", "10", "--generator", "{inputs}/broken-generator"],
                                    "broken-generator/model_index.json is not valid JSON (line 1, column 43"),
    "MIXQ_RESULTS is a file": Case([*GRID], "results folder ($MIXQ_RESULTS) {inputs}/a-file is an existing file",
                                   {"MIXQ_RESULTS": "{inputs}/a-file"}),
    "profile: YAML syntax": Case(["evaluate", "--profile", "syntax", "--model", "resnet18"],
                                 "syntax.yaml is not valid YAML (line 3, column 1", PROFILES),
    "profile: wrong type": Case(["evaluate", "--profile", "wrong-type", "--model", "resnet18"],
                                "steps must be an integer from 1 to 1000, got 'many'", PROFILES),
    "profile: a list": Case(["evaluate", "--profile", "listed", "--model", "resnet18"],
                            "must be a mapping (key: value lines), got a list", PROFILES),
    "profile: extends loop": Case(["grid", "--profile", "loop-a"],
                                  "profiles extend each other in a loop: loop-a → loop-b → loop-a", PROFILES),
    # 3. what used to be accepted without a word
    "--guidance nan": Case([*SYNTHESIZE, "--guidance", "nan"], "must be a finite number from 0 to 100, got 'nan'"),
    "--guidance -1": Case([*SYNTHESIZE, "--guidance", "-1"], "argument --guidance: must be a finite number"),
    "--n 1000000000": Case([*SYNTHESIZE, "--n", "1000000000"], "from 1 to 100000, got '1000000000'"),
    "set: class id 42": Case([*EVALUATE, "--data", "{inputs}/class-42-set"],
                             "line 5: class id 42 is outside 0..9 (the 10 classes in use)"),
    "quantize set: class id 42": Case([*QUANTIZE, "--data", "{inputs}/class-42-set"], "class id 42 is outside 0..9"),
    "set: duplicated line": Case([*EVALUATE, "--data", "{inputs}/duplicate-set"],
                                 "line 11 repeats images/0001.png of line 2"),
    "set: 64×48 RGBA image": Case([*QUANTIZE, "--data", "{inputs}/rgba-set"],
                                  "0005.png is a 64×48 RGBA image; a set's images are square greyscale (L) or RGB"),
    "set: file outside the set": Case([*EVALUATE, "--data", "{inputs}/escaping-set"],
                                      "file must be a path inside the set folder"),
    "--n-calib 1000 on a 10-image set": Case([*QUANTIZE, "--data", SET, "--n-calib", "1000"],
                                             "--n-calib 1000 asks for more images than the 10 of set"),
    "profile: unknown key": Case(["evaluate", "--profile", "typo", "--model", "resnet18"],
                                 "unknown key 'n_calb'; accepted: ", PROFILES),
    "profile: key suggestion": Case(["evaluate", "--profile", "typo", "--model", "resnet18"],
                                    "did you mean 'n_calib'?", PROFILES),
    "profile: image_size -3": Case(["evaluate", "--profile", "negative-size", "--model", "resnet18"],
                                   "image_size must be an integer from 1 to 4096, got -3", PROFILES),
    "profile: dataset cifar10": Case(["evaluate", "--profile", "cifar", "--model", "resnet18"],
                                     "dataset must be one of fashion-mnist, imagenet-folder, got 'cifar10'", PROFILES),
    "profile: unknown grid key": Case(["grid", "--profile", "grid-typo"],
                                      "grid_cnn: unknown key 'seed'", PROFILES),
    "profile: shadows a built-in": Case(["evaluate", "--profile", "mini", "--model", "resnet18"],
                                        "profile 'mini' is defined twice", {"MIXQ_PROFILES": "{inputs}/shadow"}),
    "--profile ../../x": Case(["evaluate", "--profile", "../../x", "--model", "resnet18"],
                              "profile name '../../x' is not a plain name"),
    "grid --models resnet99": Case([*GRID, "--models", "resnet99"],
                                   "section 'grid_cnn' of profile 'smoke' has no experiment with model 'resnet99'"),
    "grid --data mixpu": Case([*GRID, "--data", "mixpu"],
                              "has no experiment with source 'mixpu'; its sources: genq, mixup, noise, real, single; "
                              "did you mean 'mixup'?"),
    "grid --seeds 42": Case([*GRID, "--seeds", "42"], "has no experiment with seed 42; its seeds: 0"),
    "grid --section grid_vi": Case(["grid", "--profile", "smoke", "--section", "grid_vi"],
                                   "profile 'smoke' has no 'grid_vi' section; its sections: grid_cnn, grid_vit"),
    "grid --models (none)": Case([*GRID, "--models"], "argument --models: expected at least one argument"),
    "evaluate --topk 99": Case([*EVALUATE, "--data", SET, "--topk", "99"],
                               "topk must be an integer from 1 to 10 (the model's classes), got 99"),
    "quantize --w-bits 9": Case([*QUANTIZE, "--w-bits", "9"], "argument --w-bits: must be an integer from 2 to 8"),
    # 5. reproduce outside the checkout
    "reproduce outside the checkout": Case(["reproduce", "--profile", "smoke", "--skip-book"],
                                           "run it in the root of the MixQ repository checkout"),
    "reproduce --notebooks outside": Case(["reproduce", "--profile", "smoke", "--notebooks", "00_models"],
                                          "has no notebooks/*.ipynb, _toc.yml, _config.yml"),
}


def _tree(*folders: Path) -> dict:
    """Every file (with its size and modification time) and folder under ``folders``. A folder's own time is
    left out: the check that an output folder is writable makes and deletes an empty file in it."""
    return {str(p): "folder" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in folders for p in [folder, *folder.rglob("*")]}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, inputs, tmp_path, monkeypatch, capsys):
    fill = lambda text: text.replace("{inputs}", str(inputs))  # noqa: E731
    monkeypatch.chdir(tmp_path)  # relative outputs (results/, executed/, _build/) would land here
    for name, value in case.env.items():
        monkeypatch.setenv(name, fill(value))
    if "MIXQ_RESULTS" in case.env:  # read at import: set the module's value as a fresh process would
        monkeypatch.setattr(results, "RESULTS_DIR", Path(fill(case.env["MIXQ_RESULTS"])))
    if case.full_disk:
        monkeypatch.setattr(validate.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 0})())
    before = _tree(inputs, tmp_path)
    code = main([fill(a) for a in case.argv])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.out == ""
    assert captured.err.endswith("\n") and len(captured.err.splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err and captured.err.startswith(f"mixq {case.argv[0]}: error: ")
    assert fill(case.message) in captured.err
    assert _tree(inputs, tmp_path) == before


def _run(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "MIXQ_QUIET": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env})


def test_a_broken_assets_manifest_is_one_line(inputs, tmp_path):
    done = _run(["-m", "mixq_core.cli", *EVALUATE], tmp_path, MIXQ_ASSETS=str(inputs / "broken-assets"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"mixq evaluate: error: {inputs}/broken-assets/manifest.json is not valid JSON (line 1, column 36: Expecting "
        f"value); restore it with `git checkout -- {inputs}/broken-assets/manifest.json`"]
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_exit_130_and_one_line(tmp_path):
    """A real SIGINT in the middle of `mixq grid` (the grid itself is replaced by a wait for it)."""
    script = ("import os, signal, sys, time\n"
              "signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts ignoring it\n"
              "from mixq_core import cli, experiment\n"
              "def interrupted_grid(*args, **kwargs):\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    time.sleep(60)\n"
              "experiment.run_grid = interrupted_grid\n"
              "sys.exit(cli.main(['grid', '--profile', 'smoke', '--section', 'grid_cnn']))\n")
    done = _run(["-c", script], tmp_path)
    assert done.returncode == 130 and done.stdout == ""
    assert done.stderr == "mixq grid: interrupted (Ctrl-C)\n"
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_honour_the_umask(tmp_path):
    from mixq_core.models import atomic_write

    saved = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.json", lambda tmp: Path(tmp).write_text("{}"))
        os.chmod(tmp_path / "a.json", 0o604)
        atomic_write(tmp_path / "a.json", lambda tmp: Path(tmp).write_text("[]"))  # a rewrite keeps the mode
        atomic_write(tmp_path / "b.json", lambda tmp: Path(tmp).write_text("{}"))
    finally:
        os.umask(saved)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o604
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o640


def test_every_option_has_help_and_numbers_show_their_range():
    import argparse

    from mixq_core.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"mixq {name} {action.dest} has no help"
            if getattr(action.type, "__self__", None) is not None:  # a Bounds.parse: the range is in the help
                assert action.type.__self__.span() in action.help, f"mixq {name} {action.dest}"
    assert "``" not in parser.format_help()


def test_a_disk_that_fills_up_mid_run_is_one_line(monkeypatch, tmp_path, capsys):
    import errno

    from mixq_core import experiment

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results" / "ptq" / "x.json"))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiment, "run_grid", full)
    assert main([*GRID]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"mixq grid: error: No space left on device: {tmp_path}/results/ptq/x.json\n")


def test_quiet_mode_silences_the_no_cuda_runtime_warning():
    import logging

    from mixq_core.progress import CHATTY_LOGGERS, quiet

    assert quiet()  # tests run with MIXQ_QUIET=1 (conftest.py)
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.ERROR for name in CHATTY_LOGGERS)
