"""Engine 2 against the official QDrop code (github.com/wimh966/QDrop): each test fails on engine 1's behaviour."""

import math
import warnings

import pytest
import torch
from test_quant_helpers import noise_loader, tiny_cnn
from torch import nn

from mixq_core.quant import QuantConfig, prepare, quantize, register_block
from mixq_core.quant.modules import (
    QuantLayer,
    activation_quantizers,
    fallback_containers,
    fold_batchnorm,
    set_quant_state,
    warn_fallbacks,
    wrap_model,
)
from mixq_core.quant.quantizers import UniformQuantizer, init_range, scale_and_zero_point
from mixq_core.quant.reconstruct import cache_unit_data, find_units

FAST = {"compile": False, "act_init_images": 64, "batch_size": 16, "check_every": 10}
IMAGES = torch.cat([x for x, _ in noise_loader()])


def _config(**overrides) -> QuantConfig:
    return QuantConfig(**{**FAST, **overrides})


# ----------------------------------------------------------------------------- standalone layers: after the activation


def test_the_stem_is_fitted_after_its_relu():
    qmodel = prepare(tiny_cnn().eval(), _config(w_bits=2), IMAGES)
    stem = qmodel[0]
    assert isinstance(stem.activation, nn.ReLU) and isinstance(qmodel[2], nn.Identity)
    unit = find_units(qmodel, IMAGES[:2], "block")[0]
    assert unit.module is stem
    data = cache_unit_data(qmodel, stem, IMAGES, 64)
    # QDrop's QuantizedLayer applies the ReLU before its output: the target is what the next layer reads.
    assert data.fp_output.min() >= 0 and (data.fp_output == 0).float().mean() > 0.2


def test_under_adaround_every_layer_followed_by_an_activation_is_fitted_after_it():
    qmodel = prepare(tiny_cnn().eval(), _config(method="adaround", w_bits=2), IMAGES)
    units = find_units(qmodel, IMAGES[:2], "layer")
    fused = {u.name for u in units if u.module.activation is not None}
    # conv1 of each BasicBlock feeds its ReLU; conv2's output is summed with the shortcut first (as in QDrop's
    # QuantBasicBlock, whose activation follows the sum), and the head has no activation.
    assert fused == {"0", "3.block.conv1", "4.block.conv1"}
    for unit in units:
        if unit.module.activation is not None:
            assert cache_unit_data(qmodel, unit.module, IMAGES[:32], 32).fp_output.min() >= 0, unit.name


def test_fusing_activations_keeps_the_float_output():
    model = tiny_cnn().eval()
    reference = model(IMAGES[:8])
    qmodel = prepare(model, _config(w_bits=2), IMAGES)
    set_quant_state(qmodel, weights=False, activations=False)
    assert torch.allclose(qmodel(IMAGES[:8]), reference, atol=1e-4)


class _SharedReLU(nn.Module):
    """torchvision's BasicBlock style: one ReLU module called twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.relu(self.conv(x))
        return self.head(self.relu(x - 0.5).mean((2, 3)))


def test_an_activation_module_called_twice_is_not_fused():
    model = _SharedReLU().eval()
    wrap_model(model, IMAGES[:2], w_bits=4, a_bits=4)
    assert isinstance(model.relu, nn.ReLU) and model.conv.activation is None


def test_engine_one_fits_standalone_layers_before_the_activation():
    qmodel = prepare(tiny_cnn().eval(), _config(w_bits=2, fuse_activation=False), IMAGES)
    assert qmodel[0].activation is None and isinstance(qmodel[2], nn.ReLU)
    assert cache_unit_data(qmodel, qmodel[0], IMAGES, 64).fp_output.min() < 0


# ----------------------------------------------------------------------------- activation ranges: on the float model


def _second_block_input(model: nn.Module) -> torch.Tensor:
    """The float input of the second block (index 4) of a wrapped tiny_cnn, on IMAGES[:64]."""
    seen = []
    handle = model[4].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(IMAGES[:64])
    finally:
        handle.remove()
    return seen[0]


def test_activation_ranges_are_found_on_the_float_model():
    qmodel = prepare(tiny_cnn().eval(), _config(w_bits=2, a_bits=4), IMAGES)
    quantizer = qmodel[4].input_quantizer
    set_quant_state(qmodel, weights=False, activations=False)
    float_input = _second_block_input(qmodel)
    low, high = init_range(float_input.reshape(1, -1), "mse", 4, False)
    step, _ = scale_and_zero_point(low, high, 4, False)
    assert torch.allclose(quantizer.step, step.reshape(()))


def test_engine_one_found_them_on_the_fake_quantized_model():
    float_qmodel = prepare(tiny_cnn().eval(), _config(w_bits=2, a_bits=4), IMAGES)
    quant_qmodel = prepare(tiny_cnn().eval(), _config(w_bits=2, a_bits=4, act_calibration="quantized"), IMAGES)
    assert not torch.allclose(float_qmodel[4].input_quantizer.step, quant_qmodel[4].input_quantizer.step)


# ---------------------------------------------------------------- the activation step: LSQ gradient scale


def _step_gradient(grad_scale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    quantizer = UniformQuantizer(4, learn_step=True)
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    quantizer.initialize(x)
    quantizer.grad_scale = grad_scale
    quantizer.step.requires_grad_(True)
    out = quantizer(x)
    out.pow(2).sum().backward()
    return out.detach(), quantizer.step.grad


def test_the_step_gradient_carries_lsqs_scale_as_in_qdrops_lsq_fake_quantize():
    scaled_out, scaled = _step_gradient(True)
    plain_out, plain = _step_gradient(False)
    assert torch.equal(scaled_out, plain_out)  # the forward value is the same, bit for bit
    factor = 1 / math.sqrt(8 * 16 * (2**4 - 1))  # QDrop: 1 / sqrt(X.numel() * quant_max)
    assert torch.allclose(scaled, plain * factor, rtol=1e-5)


# ----------------------------------------------------------------------------- per-model rounding weight


def test_profiles_set_qdrops_rounding_weight_per_model():
    from mixq_core.experiment import ExperimentConfig, profile_round_weight, quant_config
    from mixq_core.profiles import load_profile

    for name in ("mini", "mini-short", "mini-long", "smoke"):
        profile = load_profile(name)
        assert profile_round_weight(profile, "resnet18") == 0.01  # exp/w2a4/r18/config.yaml
        assert profile_round_weight(profile, "mobilenetv2_100") == 0.1  # exp/w2a4/mbv2/config.yaml
    assert profile_round_weight(load_profile("imagenet"), "mobilenetv2_100") == 0.1
    assert profile_round_weight(load_profile("imagenet"), "resnet50") == 0.01
    config = ExperimentConfig(profile="mini-long", model="mobilenetv2_100", w_bits=2, a_bits=4).resolved()
    assert quant_config(config).round_weight == 0.1
    # mini-full's records were made with 0.01 for every model (engine 1), and its profile says so.
    assert profile_round_weight(load_profile("mini-full"), "mobilenetv2_100") is None
    assert quant_config(ExperimentConfig(profile="mini-full", model="mobilenetv2_100").resolved()).round_weight == 0.01


# ----------------------------------------------------------------------------- residual blocks of any timm CNN


@pytest.mark.parametrize("name, block", [("regnetx_002", "Bottleneck"), ("convnext_atto", "ConvNeXtBlock")])
def test_regnet_and_convnext_reconstruct_block_by_block(name, block):
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a layer-wise fallback would warn
        qmodel, trace = quantize(model, _config(w_bits=4, a_bits=8, iters=2, batch_size=4), [images])
    kinds = [u.kind for u in trace.units]
    assert kinds.count(block) >= 4 and fallback_containers(qmodel) == []
    assert not any(u.kind in ("Conv2d", "Linear") and "stages" in u.name and ".blocks." in u.name
                   for u in trace.units)  # no layer of a block reconstructed alone


class _Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return x + self.b(self.a(x))


class _Stage(nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.second = _Inner(), _Inner()

    def forward(self, x):
        return self.second(self.first(x))


def test_the_fallback_warning_names_the_block_class_not_its_stage():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), _Stage(), nn.Flatten(), nn.LazyLinear(4))
    x = torch.randn(2, 3, 8, 8)
    model(x)
    wrap_model(model, x, w_bits=4, a_bits=4)
    assert [name for name, _ in fallback_containers(model)] == ["1.first", "1.second"]
    with pytest.warns(UserWarning, match=r"1.first, 1.second \(_Inner\) is not a known block type") as caught:
        warn_fallbacks(model)
    assert len(caught) == 1 and "_Stage" not in str(caught[0].message)


def test_a_registered_block_is_reconstructed_as_one_unit():
    register_block(_Inner)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), _Stage(), nn.Flatten(), nn.LazyLinear(4))
    model(IMAGES[:2])
    _, trace = quantize(model.eval(), _config(iters=2), noise_loader())
    assert [u.kind for u in trace.units] == ["Conv2d", "_Inner", "_Inner", "Linear"]


# ----------------------------------------------------------------------------- rounding diagnostics


def test_rounding_diagnostics_count_soft_variables_and_weights_rounded_away_from_nearest():
    model = tiny_cnn().eval()
    qmodel, trace = quantize(model, _config(w_bits=2, a_bits=4, iters=60, lr_round=5e-2), noise_loader())
    nearest = prepare(model, _config(w_bits=2, a_bits=4), IMAGES)
    for unit in trace.units:
        assert 0 <= unit.soft_share <= 1 and 0 <= unit.flipped_share <= 1
    # flipped_share is checked against the weights themselves: hard-rounded vs rounded to nearest.
    block = trace.units[1]
    layers = [m for m in qmodel[3].modules() if isinstance(m, QuantLayer)]
    reference = [m for m in nearest[3].modules() if isinstance(m, QuantLayer)]
    differ = sum(int((a.frozen_weight != b.weight_quantizer(b.weight)).sum())
                 for a, b in zip(layers, reference, strict=True))
    total = sum(a.frozen_weight.numel() for a in layers)
    assert differ > 0 and block.flipped_share == pytest.approx(differ / total)
    # With QDrop's learning rate, 60 steps barely move α: nearly every variable is still soft, few weights flip.
    _, slow = quantize(model, _config(w_bits=2, a_bits=4, iters=60), noise_loader())
    assert slow.units[1].soft_share > 0.95 > block.soft_share
    assert slow.units[1].flipped_share < block.flipped_share


def test_activation_quantizers_inherit_the_configs_gradient_scale():
    qmodel = prepare(tiny_cnn().eval(), _config(lsq_grad_scale=False), IMAGES)
    assert not any(q.grad_scale for q in activation_quantizers(qmodel))
    qmodel = prepare(tiny_cnn().eval(), _config(), IMAGES)
    assert all(q.grad_scale for q in activation_quantizers(qmodel))


def test_the_stem_keeps_its_batchnorm_folded_before_the_activation_joins_it():
    model = tiny_cnn().eval()
    fold_batchnorm(model)
    assert isinstance(model[1], nn.Identity) and isinstance(model[2], nn.ReLU)
