"""Model wrapping: BatchNorm folding, quantized layers and attention, block discovery, quantizer placement."""

import pytest
import torch
from test_quant_helpers import tiny_cnn, tiny_vit
from timm.models.resnet import BasicBlock
from torch import nn

from mixq_core.quant import (
    NothingToQuantizeError,
    QuantAttention,
    QuantBlock,
    QuantLayer,
    fold_batchnorm,
    set_quant_state,
    wrap_model,
)
from mixq_core.quant.modules import check_same_output, fallback_containers, quant_layers


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2_100"])
def test_batchnorm_folding_keeps_the_function(name):
    import copy

    from mixq_core.models import create_mini_model

    model = create_mini_model(name).eval()
    _randomise_batchnorm(model)
    folded = copy.deepcopy(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(folded) == n_bn
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(4, 3, 32, 32)
    check_same_output(model, folded, x)  # raises if they differ
    # MobileNetV2's BatchNormAct2d keeps its ReLU6 after folding.
    if name == "mobilenetv2_100":
        assert any(isinstance(m, nn.ReLU6) for m in folded.modules())


def test_wrapped_model_without_quantization_is_the_float_model():
    model = tiny_cnn().eval()
    _randomise_batchnorm(model)
    x = torch.randn(3, 3, 16, 16)
    expected = model(x)
    fold_batchnorm(model)
    wrap_model(model, x, w_bits=4, a_bits=4)
    set_quant_state(model, weights=False, activations=False)
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_quant_attention_matches_timm_attention_in_float():
    model = tiny_vit().eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    wrap_model(model, x, w_bits=4, a_bits=4)
    attentions = [m for m in model.modules() if isinstance(m, QuantAttention)]
    assert len(attentions) == 2
    assert torch.allclose(model(x), expected, atol=1e-5)  # quantizers not initialised: identity
    # q, k, softmax output, v and the inputs of qkv, proj, fc1, fc2 are quantized in each block.
    block = model.blocks[0]
    assert isinstance(block, QuantBlock) and block.input_quantizer is None  # the residual stream stays float
    names = {n.split(".")[-1] for n, m in block.named_modules() if n.endswith("quantizer") and m is not None}
    assert {"q_quantizer", "k_quantizer", "attn_quantizer", "v_quantizer", "input_quantizer"} <= names
    assert all(layer.input_quantizer is not None for layer in quant_layers(block))


def test_cnn_block_quantizes_its_input_once_and_first_last_layers_use_8_bits():
    model = tiny_cnn().eval()
    x = torch.randn(2, 3, 16, 16)
    fold_batchnorm(model)
    wrap_model(model, x, w_bits=2, a_bits=4)
    blocks = [m for m in model.modules() if isinstance(m, QuantBlock)]
    assert len(blocks) == 2 and all(isinstance(b.block, BasicBlock) for b in blocks)
    for block in blocks:
        assert block.input_quantizer is not None
        # conv1 (and the downsample conv) read the block input: no quantizer of their own; conv2 has one.
        assert block.block.conv1.input_quantizer is None
        assert block.block.conv2.input_quantizer is not None
        if block.block.downsample is not None:
            assert block.block.downsample[0].input_quantizer is None
    stem, head = model[0], model[-1]
    assert isinstance(stem, QuantLayer) and isinstance(head, QuantLayer)
    assert stem.input_quantizer is None  # the image
    assert stem.weight_quantizer.bits == 8 and head.weight_quantizer.bits == 8
    assert head.input_quantizer.bits == 8
    assert blocks[0].block.conv2.weight_quantizer.bits == 2


def test_first_last_8bit_can_be_turned_off():
    model = tiny_cnn().eval()
    x = torch.randn(2, 3, 16, 16)
    fold_batchnorm(model)
    wrap_model(model, x, w_bits=3, a_bits=5, first_last_8bit=False)
    assert model[0].weight_quantizer.bits == 3 and model[-1].weight_quantizer.bits == 3
    assert model[-1].input_quantizer.bits == 5


def test_model_with_nothing_to_quantize_is_refused():
    model = nn.Sequential(nn.ReLU(), nn.Flatten())
    with pytest.raises(NothingToQuantizeError, match="no Conv2d or Linear"):
        wrap_model(model, torch.randn(1, 3, 4, 4), w_bits=4, a_bits=4)


class _UnknownBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def test_unknown_block_falls_back_to_layers_with_a_warning_naming_it():
    from mixq_core.quant.modules import warn_fallbacks

    model = nn.Sequential(nn.Conv2d(3, 8, 3), _UnknownBlock(), nn.Flatten(), nn.LazyLinear(4))
    x = torch.randn(2, 3, 8, 8)
    model(x)
    wrap_model(model, x, w_bits=4, a_bits=4)
    assert [name for name, _ in fallback_containers(model)] == ["1"]
    with pytest.warns(UserWarning, match=r"1 \(_UnknownBlock\) is not a known block type"):
        warn_fallbacks(model)


def test_swin_blocks_are_discovered_and_their_attention_quantized():
    import timm

    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32, window_size=4,
                              embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    wrap_model(model, x, w_bits=4, a_bits=4)
    assert fallback_containers(model) == []  # every block is known: no layer-wise fallback
    blocks = [m for m in model.modules() if isinstance(m, QuantBlock)]
    assert len(blocks) == 2
    assert all(any(isinstance(m, QuantAttention) for m in b.modules()) for b in blocks)
    assert torch.allclose(model(x), expected, atol=1e-4)


@pytest.mark.parametrize("channels, size, kernel, stride, padding", [
    (64, 1, 3, 1, 1),   # resnet18's last stage at 32×32 input: a 3×3 convolution of a 1×1 map
    (64, 2, 3, 2, 1),   # its first convolution: stride 2 from 2×2
    (64, 2, 1, 2, 0),   # its downsample shortcut
])
def test_single_position_convolution_is_the_convolution(channels, size, kernel, stride, padding):
    from mixq_core.quant.modules import conv_to_single_position, single_position_output

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, 2 * channels, kernel, stride, padding)
    x = torch.randn(8, channels, size, size, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_(True)
    assert single_position_output(x, conv)
    fast = conv_to_single_position(x, weight, conv)
    reference = torch.nn.functional.conv2d(x, weight, conv.bias, stride, padding)
    assert fast.shape == reference.shape == (8, 2 * channels, 1, 1)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(reference)
    fast_grads = torch.autograd.grad(fast, (x, weight), grad_out)
    reference_grads = torch.autograd.grad(reference, (x, weight), grad_out)
    for a, b in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_larger_outputs_and_grouped_convolutions_keep_the_convolution_kernel():
    from mixq_core.quant.modules import single_position_output

    assert not single_position_output(torch.randn(2, 8, 2, 2), torch.nn.Conv2d(8, 8, 3, 1, 1))  # 2×2 output
    assert not single_position_output(torch.randn(2, 8, 1, 1), torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8))
    assert not single_position_output(torch.randn(2, 8, 1, 1), torch.nn.Conv2d(8, 8, 3, 1, 1, padding_mode="reflect"))
