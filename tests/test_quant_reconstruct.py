"""quantize(): configs, methods, reconstruction quality, gradients, probes, errors, determinism."""

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from test_quant_helpers import noise_loader, tiny_cnn, tiny_vit

from mixq_core.errors import ConfigError, UnknownNameError
from mixq_core.quant import METHODS, QuantConfig, QuantTrace, ReconstructionError, quantize
from mixq_core.quant.modules import QuantLayer, quant_layers
from mixq_core.quant.reconstruct import UnitReconstruction, cache_unit_data, find_units, prepare

# Small and eager (no torch.compile start-up) so that the whole file runs in seconds.
FAST = {"compile": False, "act_init_images": 64, "batch_size": 16, "check_every": 10}


def _config(**overrides) -> QuantConfig:
    return QuantConfig(**{**FAST, **overrides})


# ----------------------------------------------------------------------------- config


def test_config_defaults_are_qdrops():
    config = QuantConfig()
    assert (config.method, config.iters, config.batch_size) == ("qdrop", 20000, 32)
    assert (config.lr_act, config.lr_round, config.round_weight, config.drop_prob) == (4e-5, 1e-3, 0.01, 0.5)
    assert config.first_last_8bit and not config.w_symmetric and config.weight_init == "mse"


def test_config_round_trips_and_is_frozen():
    config = _config(w_bits=2, method="brecq")
    assert QuantConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.w_bits = 3


@pytest.mark.parametrize("field, value, match", [
    ("w_bits", 1, "w_bits must be an integer from 2 to 8"),
    ("a_bits", 9, "a_bits must be an integer from 2 to 8"),
    ("drop_prob", 1.0, r"drop_prob must be a number in \[0, 1\)"),
    ("iters", -1, "iters must be an integer >= 0"),
    ("lr_act", 0.0, "lr_act must be a number > 0"),
])
def test_config_out_of_range_values_are_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        QuantConfig(**{field: value})


def test_unknown_method_lists_the_accepted_ones():
    with pytest.raises(UnknownNameError, match="adaround, brecq, qdrop, rtn"):
        QuantConfig(method="gptq")
    assert set(METHODS) == {"rtn", "adaround", "brecq", "qdrop"}


def test_unknown_config_field_is_refused():
    with pytest.raises(ConfigError, match="unknown QuantConfig fields"):
        QuantConfig.from_dict({"w_bits": 4, "wbits": 4})


# ----------------------------------------------------------------------------- results


def _on_grid(layer: QuantLayer) -> bool:
    quantizer = layer.weight_quantizer
    integers = layer.frozen_weight / quantizer.step + quantizer.zero_point
    return bool(torch.allclose(integers, integers.round(), atol=1e-3)
                and integers.min() >= quantizer.qmin - 1e-3 and integers.max() <= quantizer.qmax + 1e-3)


def test_rtn_rounds_every_weight_onto_its_grid_and_leaves_the_model_alone():
    model = tiny_cnn().eval()
    before = copy.deepcopy(model.state_dict())
    qmodel, trace = quantize(model, _config(method="rtn", w_bits=3), noise_loader())
    assert trace.units == [] and trace.n_calib == 64
    assert all(_on_grid(layer) for layer in quant_layers(qmodel))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in qmodel.parameters())


@pytest.mark.parametrize("method", ["brecq", "qdrop"])
def test_block_reconstruction_beats_nearest_rounding_on_a_cnn(method):
    qmodel, trace = quantize(tiny_cnn().eval(), _config(method=method, w_bits=2, a_bits=4, iters=200), noise_loader())
    assert [u.kind for u in trace.units] == ["Conv2d", "BasicBlock", "BasicBlock", "Linear"]
    for unit in trace.units[1:3]:
        assert unit.loss_after < 0.9 * unit.loss_before, unit.name
    assert all(_on_grid(layer) for layer in quant_layers(qmodel))


def test_block_reconstruction_beats_nearest_rounding_on_a_vit():
    _, trace = quantize(tiny_vit().eval(), _config(method="brecq", w_bits=2, a_bits=8, iters=200), noise_loader())
    blocks = [u for u in trace.units if u.kind == "Block"]
    assert len(blocks) == 2
    for unit in blocks:
        assert unit.loss_after < 0.9 * unit.loss_before, unit.name


def test_adaround_reconstructs_layer_by_layer():
    _, trace = quantize(tiny_cnn().eval(), _config(method="adaround", w_bits=2, iters=300), noise_loader())
    assert len(trace.units) == 7 and {u.kind for u in trace.units} == {"Conv2d", "Linear"}
    two_bit = trace.units[1:-1]  # the first and last layers keep 8-bit weights: little to gain there
    assert sum(u.loss_after for u in two_bit) < 0.9 * sum(u.loss_before for u in two_bit)
    assert sum(u.loss_after < u.loss_before for u in two_bit) >= 4


def test_gradients_reach_exactly_the_rounding_and_the_activation_steps():
    config = _config(method="qdrop", w_bits=2, a_bits=4, iters=1)
    images = torch.cat([x for x, _ in noise_loader()])
    qmodel = prepare(tiny_cnn().eval(), config, images)
    unit = [u for u in find_units(qmodel, images[:2], "block") if u.kind == "BasicBlock"][1]
    data = cache_unit_data(qmodel, unit.module, images, 64)
    state = UnitReconstruction(unit, config, drop=True)
    state.start()
    output = state.forward(data.quant_input[:16], data.fp_input[:16])
    (output - data.fp_output[:16]).pow(2).sum().backward()
    rec_sq_norm, _ = state.rounding_backward(beta=10.0)
    learnable = {id(p) for p in state.rounding_params + state.step_params}
    # 3 layers (conv1, conv2, downsample) and 2 activation quantizers (block input, conv2 input).
    assert len(state.rounding_params) == 3 and len(state.step_params) == 2
    for parameter in state.rounding_params + state.step_params:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    for name, parameter in qmodel.named_parameters():
        if id(parameter) not in learnable:
            assert parameter.grad is None and not parameter.requires_grad, name
    assert rec_sq_norm > 0


def test_trace_probes_serialise_to_json():
    probe = noise_loader(n=32, seed=1)
    _, trace = quantize(tiny_cnn().eval(), _config(iters=30, probe_every=10), noise_loader(), probe_loader=probe)
    data = json.loads(trace.to_json())
    assert data["n_probe"] == 32 and len(data["units"]) == 4
    unit = trace.units[1]
    assert len(unit.rec_loss) == len(unit.round_loss) == len(unit.grad_norm_rounding) == 30
    assert len(unit.grad_norm_act_step) == 30 and all(g > 0 for g in unit.grad_norm_act_step)
    assert unit.probe_steps == [0, 10, 20] and len(unit.generalization_error()) == 3
    assert all(math.isfinite(v) for v in unit.probe_loss + unit.probe_calib_loss)
    assert unit.round_loss[0] == 0.0 and unit.round_loss[-1] > 0  # warm-up, then the regulariser
    assert QuantTrace.from_dict(data) == trace


def test_same_seed_same_result():
    runs = [quantize(tiny_cnn().eval(), _config(iters=20, seed=3), noise_loader()) for _ in range(2)]
    (q1, t1), (q2, t2) = runs
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(q1(x), q2(x))
    assert t1.units[1].rec_loss == t2.units[1].rec_loss


def test_nan_in_a_step_stops_with_the_block_name():
    model = tiny_cnn().eval()

    def poison(module, inputs, output):  # NaN only in training steps (autograd on), not while caching
        return output * float("nan") if torch.is_grad_enabled() else output

    model[4].register_forward_hook(poison)
    with pytest.raises(ReconstructionError, match=r"4 \(BasicBlock\).*non-finite rec_loss"):
        quantize(model, _config(iters=20), noise_loader())


def test_empty_loader_is_refused():
    from mixq_core.errors import MixQError

    with pytest.raises(MixQError, match="no images"):
        quantize(tiny_cnn().eval(), _config(method="rtn"), [])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_reconstruction_stays_on_the_gpu():
    model = tiny_cnn().eval().cuda()
    loader = [(x.cuda(), y) for x, y in noise_loader()]
    qmodel, trace = quantize(model, _config(iters=20, amp=True), loader)
    assert all(p.is_cuda for p in qmodel.parameters())
    assert all(math.isfinite(v) for u in trace.units for v in u.rec_loss)
    assert qmodel(torch.randn(2, 3, 16, 16, device="cuda")).is_cuda


# ----------------------------------------------------------------------------- the shipped resnet18


def test_w8a8_minmax_resnet18_is_within_half_a_point_of_float():
    from mixq_core.models import ASSETS_DIR, evaluate, load_mini_model

    if not (ASSETS_DIR / "resnet18.safetensors").exists():
        pytest.skip("assets/resnet18.safetensors is absent: train it with `mixq train-mini resnet18`")
    from mixq_core.data import fashion_mnist, make_loader, subset

    model = load_mini_model("resnet18")
    calib = make_loader(subset(fashion_mnist("train"), 256, seed=0), batch_size=128)
    config = QuantConfig(w_bits=8, a_bits=8, method="rtn", weight_init="minmax", act_init="minmax")
    qmodel, _ = quantize(model, config, calib)
    test = make_loader(subset(fashion_mnist("test"), 1000, seed=0), batch_size=500)
    fp, quantized = evaluate(model, test)["top1"], evaluate(qmodel, test)["top1"]
    assert abs(fp - quantized) <= 0.5, (fp, quantized)


@pytest.mark.slow
def test_the_unit_step_benchmark_times_every_unit_of_a_mini_model():
    import importlib.util

    script = Path(__file__).parents[1] / "benchmarks" / "unit_steps.py"
    spec = importlib.util.spec_from_file_location("unit_steps", script)
    unit_steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unit_steps)
    times = unit_steps.unit_step_times("resnet18", 2, 4, iters=2)
    assert list(times)[0] == "conv1" and list(times)[-1] == "fc" and len(times) == 10
    assert all(ms > 0 for ms in times.values())
