"""`mixq quantize`: one experiment, its record written and printed as one JSON line; a one-line error (exit 2)
on bad input."""

import json
from pathlib import Path

import pytest
from test_cli_errors import _manifest, _set

from mixq_core.cli import main
from mixq_core.experiment import ExperimentConfig
from mixq_core.models import ASSETS_DIR
from mixq_core.profiles import load_profile
from mixq_core.results import config_hash

needs_resnet18 = pytest.mark.skipif(not (ASSETS_DIR / "resnet18.safetensors").exists(),
                                    reason="assets/resnet18.safetensors is absent (mixq train-mini resnet18)")


@needs_resnet18
def test_quantize_runs_the_experiment_prints_its_record_and_writes_the_trace(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the record goes to ./results
    trace_file = tmp_path / "trace.json"
    argv = ["quantize", "--profile", "smoke", "--model", "resnet18", "--w-bits", "4", "--a-bits", "8",
            "--data", "noise", "--method", "qdrop", "--n-calib", "32", "--trace", str(trace_file)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"top1", "fp_top1", "seconds", "drop", "units", "record", "config_hash"} <= set(result)
    assert result["iters"] == load_profile("smoke")["iters"]  # the profile's steps, not QDrop's 20000
    assert result["n_eval"] == 500 and result["n_calib"] == 32 and len(result["units"]) == 10
    record = json.loads(Path(result["record"]).read_text())
    assert record["config_hash"] == result["config_hash"] and record["metrics"]["top1"] == result["top1"]
    expected = ExperimentConfig(profile="smoke", w_bits=4, a_bits=8, data="noise", n_calib=32)
    assert Path(result["record"]) == tmp_path / "results" / "ptq" / "smoke" / f"{config_hash(expected.identity())}.json"
    trace = json.loads(trace_file.read_text())
    assert trace["config"]["iters"] == result["iters"] and len(trace["units"]) == 10
    trace_file.unlink()
    assert main(argv) == 0  # the record is reused: nothing runs, so no trace is written
    assert json.loads(capsys.readouterr().out)["top1"] == result["top1"] and not trace_file.exists()


@needs_resnet18
def test_quantize_on_a_set_folder_gives_a_record_apart_from_the_grid(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "hand-made-set"
    _manifest(folder, _set(folder, n=10))
    argv = ["quantize", "--profile", "smoke", "--model", "resnet18", "--method", "rtn", "--data", str(folder)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_calib"] == 10 and result["data"] == str(folder)
    assert Path(result["record"]).parent == tmp_path / "results" / "ptq-sets" / "smoke"
    assert not (tmp_path / "results" / "ptq" / "smoke").exists()  # only the grid's records are there


@pytest.mark.parametrize("argv, message", [
    (["--profile", "nope"], "unknown profile 'nope'; accepted: "),
    (["--w-bits", "1"], "argument --w-bits: must be an integer from 2 to 8"),
    (["--method", "gptq"], "unknown quantization method 'gptq'; accepted: adaround, brecq, qdrop, rtn"),
    (["--data", "/no/such/folder"], "or the folder of a synthetic set (made by `mixq synthesize`); '/no/such"),
])
def test_quantize_bad_input_is_one_line_error(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, and never into the checkout's results/
    code = main(["quantize", "--model", "resnet18", *argv])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err
