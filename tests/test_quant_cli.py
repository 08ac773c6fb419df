"""`mixq quantize`: one JSON line on success, a one-line error (exit 2) on bad input."""

import json

import pytest

from mixq_core.cli import main
from mixq_core.models import ASSETS_DIR

needs_resnet18 = pytest.mark.skipif(not (ASSETS_DIR / "resnet18.safetensors").exists(),
                                    reason="assets/resnet18.safetensors is absent (mixq train-mini resnet18)")


@needs_resnet18
def test_quantize_prints_one_json_line_and_writes_the_trace(capsys, tmp_path):
    trace_file = tmp_path / "trace.json"
    code = main(["quantize", "--profile", "smoke", "--model", "resnet18", "--w-bits", "4", "--a-bits", "8",
                 "--data", "noise", "--method", "qdrop", "--iters", "2", "--n-calib", "32", "--limit", "100",
                 "--no-compile", "--trace", str(trace_file)])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"top1", "fp_top1", "seconds", "drop", "units"} <= set(result)
    assert result["n_eval"] == 100 and result["n_calib"] == 32 and len(result["units"]) == 10
    assert 0 <= result["top1"] <= 100
    trace = json.loads(trace_file.read_text())
    assert trace["config"]["iters"] == 2 and len(trace["units"]) == 10


@pytest.mark.parametrize("argv, message", [
    (["--profile", "nope"], "unknown profile 'nope'; accepted: "),
    (["--w-bits", "1"], "argument --w-bits: must be an integer from 2 to 8"),
    (["--method", "gptq"], "unknown quantization method 'gptq'; accepted: adaround, brecq, qdrop, rtn"),
    (["--data", "/no/such/folder"], "calibration data must be 'real', 'noise' or the folder of a synthetic set"),
])
def test_quantize_bad_input_is_one_line_error(capsys, argv, message):
    code = main(["quantize", "--model", "resnet18", *argv])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err
