"""Quantizer arithmetic on hand-computed values, range initialisers, AdaRound and its schedule."""

import pytest
import torch

from mixq_core.errors import ConfigError, UnknownNameError
from mixq_core.quant import AdaRound, BetaSchedule, UniformQuantizer, fake_quantize, scale_and_zero_point
from mixq_core.quant.quantizers import (
    RANGE_INITS,
    alpha_grad,
    init_range,
    integer_range,
    keep_mask,
    keep_where,
    mse_range,
    rectified_sigmoid,
)


def test_integer_ranges():
    assert integer_range(4, symmetric=False) == (0, 15)
    assert integer_range(4, symmetric=True) == (-8, 7)
    assert integer_range(2, symmetric=True) == (-2, 1)


def test_asymmetric_per_tensor_hand_computed():
    # Range [-1, 2] on 2 bits: step 3/3 = 1, zero point round(1/1) = 1, grid {-1, 0, 1, 2}.
    scale, zero_point = scale_and_zero_point(torch.tensor(-1.0), torch.tensor(2.0), bits=2, symmetric=False)
    assert scale.item() == pytest.approx(1.0) and zero_point.item() == 1.0
    x = torch.tensor([-3.0, -0.6, 0.4, 0.5, 1.49, 7.0])
    # round(x/s) = [-3, -1, 0, 0 (half to even), 1, 7]; + z, clamp to 0..3: [0, 0, 1, 1, 2, 3]; - z, times s.
    expected = torch.tensor([-1.0, -1.0, 0.0, 0.0, 1.0, 2.0])
    assert torch.equal(fake_quantize(x, scale, zero_point, 0, 3), expected)


def test_asymmetric_range_is_widened_to_contain_zero():
    # All-positive [0.5, 3.5] on 3 bits becomes [0, 3.5]: step 0.5, zero point 0.
    scale, zero_point = scale_and_zero_point(torch.tensor(0.5), torch.tensor(3.5), bits=3, symmetric=False)
    assert scale.item() == pytest.approx(0.5) and zero_point.item() == 0.0


def test_symmetric_hand_computed():
    # max |x| = 3 on 3 bits: step 3 / 3.5, grid -4..3 steps.
    quantizer = UniformQuantizer(3, symmetric=True, init="minmax")
    x = torch.tensor([-3.0, -1.0, 0.2, 0.5, 3.0])
    quantizer.initialize(x)
    step = 3 / 3.5
    assert quantizer.step.item() == pytest.approx(step)
    assert quantizer.zero_point.item() == 0.0
    expected = torch.tensor([-4, -1, 0, 1, 3]) * step  # -3.5 → -4 (round half even), 0.583 → 1, 3.5 → 3 (clamped)
    assert torch.allclose(quantizer(x), expected.float())


def test_per_channel_asymmetric_hand_computed():
    weight = torch.tensor([[-1.0, 0.0, 2.0], [0.0, 0.5, 1.5]])  # two output channels
    quantizer = UniformQuantizer(2, per_channel=True, init="minmax")
    quantizer.initialize(weight)
    assert quantizer.step.shape == (2, 1)
    assert torch.allclose(quantizer.step.flatten(), torch.tensor([1.0, 0.5]))
    assert torch.equal(quantizer.zero_point.flatten(), torch.tensor([1.0, 0.0]))
    # Channel 1: grid {0, 0.5, 1, 1.5}: exact. Channel 0: grid {-1, 0, 1, 2}: exact.
    assert torch.allclose(quantizer(weight), weight)
    assert torch.allclose(quantizer(torch.tensor([[0.4, 0.6, 9.0], [0.2, 0.3, -1.0]])),
                          torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.5, 0.0]]))


def test_per_channel_conv_weight_broadcasts():
    weight = torch.randn(4, 3, 3, 3)
    quantizer = UniformQuantizer(4, per_channel=True, init="minmax")
    quantizer.initialize(weight)
    assert quantizer.step.shape == (4, 1, 1, 1)
    # Min-max never clips: every error is at most half a step.
    assert ((quantizer(weight) - weight).abs() <= quantizer.step / 2 + 1e-6).all()


@pytest.mark.parametrize("bits", [1, 9, 0, 2.5, "4", True])
def test_bits_outside_2_to_8_are_refused(bits):
    with pytest.raises(ConfigError, match="from 2 to 8"):
        UniformQuantizer(bits)


def test_unknown_range_init_lists_accepted():
    with pytest.raises(UnknownNameError, match="minmax, mse, percentile"):
        init_range(torch.randn(1, 10), "kl", 4, False)


def test_straight_through_gradient_and_learnable_step():
    quantizer = UniformQuantizer(4, init="minmax", learn_step=True)
    quantizer.initialize(torch.linspace(-1, 1, 11))  # step 2/15
    x = torch.tensor([-0.43, 0.05, 0.31, 0.47], requires_grad=True)
    quantizer.step.requires_grad_(True)
    quantizer(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # inside the range: identity
    assert quantizer.step.grad is not None and quantizer.step.grad.abs() > 0


def test_compiled_activation_quantizer_matches_eager_values_and_gradients():
    results = []
    for compile_ in (False, True):
        torch.manual_seed(1)
        x = (torch.randn(4, 9, 16) * 2).requires_grad_(True)
        quantizer = UniformQuantizer(3, learn_step=True)
        quantizer.initialize(x.detach())
        quantizer.step.requires_grad_(True)
        quantizer.compile = compile_
        out = quantizer(x)
        (out * torch.linspace(-1, 1, 16)).sum().backward()
        results.append((out.detach(), x.grad, quantizer.step.grad))
    for eager, compiled in zip(*results, strict=True):
        torch.testing.assert_close(compiled, eager)


def test_keep_mask_keeps_the_asked_share_and_drop_mixes_float_and_quantized():
    like = torch.empty(200, 500)
    assert keep_mask(like, 0.5).shape == like.shape and keep_mask(like, 0.5).dtype == like.dtype
    assert set(keep_mask(like, 0.5).unique().tolist()) == {0.0, 1.0}
    assert keep_mask(like, 0.5).mean().item() == pytest.approx(0.5, abs=0.01)
    assert keep_mask(like, 0.25).mean().item() == pytest.approx(0.25, abs=0.01)
    assert not keep_mask(like, 0.0).any()
    x = torch.randn(64, 64)
    quantizer = UniformQuantizer(2)
    quantizer.initialize(x)
    quantizer.drop_prob = 0.5
    out, quantized = quantizer(x), fake_quantize(x, quantizer.step, quantizer.zero_point, 0, 3)
    kept = out == x
    assert torch.equal(out[~kept], quantized[~kept])  # every element is either float or quantized
    assert 0.4 < kept.float().mean().item() < 0.6


def test_mse_beats_minmax_on_heavy_tails():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 20000, generator=generator)
    x[0, 0] = 30.0  # one outlier ruins the min-max grid
    errors = {}
    for method in ("minmax", "mse", "percentile"):
        quantizer = UniformQuantizer(4, init=method)
        quantizer.initialize(x)
        errors[method] = (quantizer(x) - x).pow(2).mean().item()
    assert errors["mse"] < errors["minmax"] / 4
    assert errors["percentile"] < errors["minmax"]


def test_mse_range_per_channel_histogram_and_exact_agree():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1 << 17, generator=generator)  # large single row → histogram path
    low_h, high_h = mse_range(x, 4, False)
    low_e, high_e = mse_range(x[:, ::2].contiguous()[:, : (1 << 16)], 4, False)  # exact path
    assert low_h.item() == pytest.approx(low_e.item(), rel=0.1)
    assert high_h.item() == pytest.approx(high_e.item(), rel=0.1)
    assert set(RANGE_INITS) == {"minmax", "mse", "percentile"}


def _rounding(weight, bits=2):
    quantizer = UniformQuantizer(bits, per_channel=True, init="mse")
    quantizer.initialize(weight)
    return AdaRound(weight, quantizer), quantizer


def test_adaround_starts_at_the_float_weight_and_hardens_on_the_grid():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 4, 3, 3, generator=generator)
    rounding, quantizer = _rounding(weight)
    soft = rounding()
    inside = rounding.free.reshape(weight.shape).bool()
    # Before training, the soft weight is the float weight wherever it is not clipped.
    assert torch.allclose(soft[inside], weight[inside], atol=1e-3)
    rounding.alpha.data = torch.randn(rounding.alpha.shape, generator=generator) * 3
    rounding.harden()
    hard = rounding()
    integers = hard / quantizer.step + quantizer.zero_point
    assert torch.allclose(integers, integers.round(), atol=1e-4)
    assert integers.min() >= -1e-4 and integers.max() <= 3 + 1e-4
    # Hard rounding is floor or ceil of w/s, nothing else (where not clipped).
    scaled = (weight / quantizer.step)[inside]
    offsets = (hard / quantizer.step)[inside] - scaled.floor()
    assert torch.all((offsets.round() == 0) | (offsets.round() == 1))


def test_adaround_manual_gradient_matches_autograd():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 10, generator=generator)
    rounding, _ = _rounding(weight, bits=3)
    rounding.alpha.data = torch.randn(rounding.alpha.shape, generator=generator) * 2
    target = torch.randn(6, 10, generator=generator)
    beta, reg_weight = 7.0, 0.3

    # Manual: autograd to the soft weight, then backward_.
    loss = (rounding() - target).pow(2).sum()
    loss.backward()
    rec_sq_norm, value = rounding.backward_(beta, reg_weight)
    manual = rounding.alpha.grad.clone()

    # Reference: autograd through the rectified sigmoid.
    alpha = rounding.alpha.detach().clone().requires_grad_(True)
    soft = (rounding.base + rounding.free * rectified_sigmoid(alpha)) * rounding.step
    rec = (soft - target).pow(2).sum()
    (rec_grad,) = torch.autograd.grad(rec, alpha, retain_graph=True)
    reg = reg_weight * (1 - (2 * rectified_sigmoid(alpha) - 1).abs().pow(beta)).sum()
    (total_grad,) = torch.autograd.grad(rec + reg, alpha)
    assert torch.allclose(manual, total_grad, atol=1e-5)
    assert rec_sq_norm.sqrt().item() == pytest.approx(rec_grad.norm().item(), rel=1e-5)
    assert value.item() == pytest.approx(reg.item(), rel=1e-5)


def test_alpha_grad_without_regularizer_is_the_reconstruction_gradient():
    alpha = torch.randn(3, 5)
    ones = torch.ones(3, 5)
    rec_sq, value, grad = alpha_grad(alpha, ones, ones, torch.ones(3, 1), torch.tensor(2.0), 0.5, False)
    assert value.item() == 0.0
    assert rec_sq.item() == pytest.approx(grad.pow(2).sum().item())


def test_beta_schedule_warmup_then_linear_decay():
    schedule = BetaSchedule(100, warmup=0.2, start=20, end=2)
    assert schedule(0) is None and schedule(19) is None
    assert schedule(20) == pytest.approx(20)
    assert schedule(60) == pytest.approx(11)
    assert schedule(100) == pytest.approx(2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_keep_where_selects_and_passes_gradients_exactly_as_torch_where(dtype):
    torch.manual_seed(0)
    x = (torch.randn(8, 16, 5, 5) * 1e3).to(dtype).requires_grad_(True)
    other = torch.randn(8, 16, 5, 5).to(dtype).requires_grad_(True)
    keep = keep_mask(x, 0.5)
    upstream = torch.randn(8, 16, 5, 5).to(dtype)
    results = []
    for select in (lambda: keep_where(keep, x, other), lambda: torch.where(keep.bool(), x, other)):
        x.grad = other.grad = None
        out = select()
        out.backward(upstream)
        results.append((out.detach(), x.grad, other.grad))
    for ours, theirs in zip(*results, strict=True):
        assert torch.equal(ours, theirs)  # bit for bit, not merely close


def test_keep_where_falls_back_to_where_for_mixed_dtypes():
    keep = keep_mask(torch.empty(4, 4), 0.5)
    x, other = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4)
    assert torch.equal(keep_where(keep, x, other), torch.where(keep.bool(), x, other))
