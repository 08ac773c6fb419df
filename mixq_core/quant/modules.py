"""Turning a float model into a fake-quantized one: BatchNorm folding, quantized layers, attention, blocks.

Where activations are quantized (QDrop's placement, expressed on inputs). The rule is: *every
tensor that feeds a matrix product is quantized, once*:

- a :class:`QuantLayer` (Conv2d / Linear) quantizes its input — except the network's first layer,
  whose input is the image, already 8-bit by nature (QDrop does not quantize it either);
- a :class:`QuantBlock` (a known residual block) quantizes its own input when layers of the block read
  that input directly (ResNet, MobileNetV2 blocks); those layers then skip their own input quantizer,
  and the shortcut carries the same quantized tensor. This is where QDrop quantizes the previous
  block's output, so the quantized tensors are the same ones; only the reconstruction that learns
  the step differs (the block that reads it here, the block that writes it in QDrop);
- a ViT block's input (the residual stream) feeds LayerNorm, not a matrix product, so it stays in
  float, as do LayerNorm, Softmax and GELU; their outputs are quantized where they feed a matmul
  (the input of ``qkv``, ``fc1``, ``fc2``, ``proj``, and q, k, softmax(q·kᵀ) and v in
  :class:`QuantAttention`).

With ``first_last_8bit`` (default, as in BRECQ and QDrop) the first layer's weights and the last
layer's weights *and input* use 8 bits.

Activation functions join the layer they follow (:func:`fuse_activations`): a Conv2d or Linear whose
output goes straight into a ReLU (or ReLU6, GELU, SiLU, ...) computes ``act(layer(x))`` itself, and the
activation's old place holds an ``nn.Identity``. QDrop's ``QuantizedLayer`` does the same (its
``quantize_model`` moves a ReLU/ReLU6 that follows a layer into the layer), so a layer reconstructed on
its own (the stem, a head such as MobileNetV2's ``conv_head``, every layer under ``adaround``, every
layer of an unknown block) is fitted on what the next layer reads: its output *after* the activation.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MixQError
from .quantizers import UniformQuantizer

# ----------------------------------------------------------------------------- BatchNorm folding


class FoldingError(MixQError, RuntimeError):
    """Folding BatchNorm into the preceding convolution changed what the model computes."""


@torch.no_grad()
def fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Rewrite ``conv``'s weight and bias so that ``conv`` alone computes ``bn(conv(x))`` (eval mode)."""
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    factor = gamma / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    conv.weight.mul_(factor.reshape(-1, *([1] * (conv.weight.dim() - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * factor + beta
    conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))


def _after_batchnorm(bn: nn.BatchNorm2d) -> nn.Module:
    """What stays in place of a folded BatchNorm: timm's BatchNormAct2d also holds a dropout and an activation."""
    act = getattr(bn, "act", None)
    drop = getattr(bn, "drop", None)
    parts = [m for m in (drop, act) if m is not None and not isinstance(m, nn.Identity)]
    if not parts:
        return nn.Identity()
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d into the Conv2d registered just before it in the same parent, in place.

    This is how BRECQ and QDrop find conv–BN pairs (registration order, which is forward order in
    timm's CNNs); :func:`check_same_output` verifies it on real input. Returns the number folded.
    """
    folded = 0
    for parent in list(model.modules()):
        previous = None
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d)
                    and previous.out_channels == child.num_features and child.running_var is not None):
                fold_into_conv(previous, child)
                setattr(parent, name, _after_batchnorm(child))
                folded += 1
            previous = child
    return folded


@torch.no_grad()
def check_same_output(reference: nn.Module, folded: nn.Module, example: torch.Tensor, tolerance: float = 1e-3) -> None:
    """Raise :class:`FoldingError` if ``folded`` and ``reference`` disagree on ``example``."""
    expected, actual = reference(example), folded(example)
    error = (expected - actual).abs().max() / expected.abs().max().clamp_min(1e-12)
    if not error <= tolerance:
        raise FoldingError(f"folding BatchNorm changed the model's output by {error:.2e} (relative, max); "
                           "a BatchNorm2d is registered right after a Conv2d it does not follow in forward. "
                           "Fold it by hand or give the model without that BatchNorm")


# ----------------------------------------------------------------------------- quantized layers


def activation_quantizer(bits: int, symmetric: bool, init: str) -> UniformQuantizer:
    """Per-tensor quantizer with a learnable (LSQ-style) step, for activations."""
    return UniformQuantizer(bits, symmetric=symmetric, per_channel=False, init=init, learn_step=True)


def single_position_output(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether ``conv`` maps CPU input ``x`` to a 1×1 output (a mini model's last stage), where
    :func:`conv_to_single_position` is faster than the convolution kernel."""
    if x.device.type != "cpu" or x.dim() != 4 or conv.groups != 1 or conv.padding_mode != "zeros" or \
            isinstance(conv.padding, str):
        return False
    return all((size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1 == 1 for size, pad, dilation, kernel, stride
               in zip(x.shape[2:], conv.padding, conv.dilation, conv.kernel_size, conv.stride, strict=True))


def conv_to_single_position(x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` with ``weight`` on ``x`` where the output is 1×1: the one patch it sees (zero padding included),
    flattened, times the flattened weight. The same sum as the convolution in another order (results agree to
    float rounding). On a 2-core AVX2 CPU, oneDNN's kernels take about 3x longer for these shapes (resnet18's
    last stage at 32×32 input: 512 channels at 1×1, forward and backward), and that stage dominated a
    reconstruction's time."""
    patch = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)  # (N, C·kh·kw, 1)
    out = F.linear(patch[:, :, 0], weight.reshape(len(weight), -1), conv.bias)
    return out[:, :, None, None]


class QuantLayer(nn.Module):
    """A Conv2d or Linear whose weight (per output channel) and input (per tensor) are fake-quantized.

    Args:
        layer: the float layer, kept as ``self.layer``; its weight stays the float weight.
        w_bits: weight bits; a_bits: input bits (None: the input is not quantized).
        w_symmetric / a_symmetric: symmetric grids; w_init / a_init: range initialisers.

    The weight used in forward is, in order of precedence: the frozen result of reconstruction,
    AdaRound's soft or hard rounding while reconstructing, or rounding to nearest.
    """

    def __init__(self, layer: nn.Module, w_bits: int, a_bits: int | None, w_symmetric: bool = False,
                 a_symmetric: bool = False, w_init: str = "mse", a_init: str = "mse"):
        super().__init__()
        self.layer = layer
        layer.weight.requires_grad_(False)
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        self.weight_quantizer = UniformQuantizer(w_bits, symmetric=w_symmetric, per_channel=True, init=w_init)
        self.input_quantizer = activation_quantizer(a_bits, a_symmetric, a_init) if a_bits else None
        self.rounding = None  # an AdaRound while this layer is being reconstructed
        self.activation: nn.Module | None = None  # the activation function that follows, when fused
        self.register_buffer("frozen_weight", None)
        self.quantize_weight = True

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight

    def quantized_weight(self) -> torch.Tensor:
        """The weight as forward uses it."""
        if not self.quantize_weight:
            return self.layer.weight
        if self.frozen_weight is not None:
            return self.frozen_weight
        if self.rounding is not None:
            return self.rounding()
        return self.weight_quantizer(self.layer.weight)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's operation (and its fused activation) on an input that is already quantized."""
        weight = self.quantized_weight()
        layer = self.layer
        if type(layer) is nn.Linear:
            out = F.linear(x, weight, layer.bias)
        elif type(layer) is nn.Conv2d:
            out = (conv_to_single_position(x, weight, layer) if single_position_output(x, layer) else
                   layer._conv_forward(x, weight, layer.bias))
        else:  # subclasses (e.g. timm's Conv2dSame) keep their own forward, run with the quantized weight
            out = torch.func.functional_call(layer, {"weight": weight}, (x,))
        return out if self.activation is None else self.activation(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return self.body(x)

    @torch.no_grad()
    def freeze(self) -> None:
        """Store the final quantized weight (hard rounding) and drop the rounding parameters."""
        if self.rounding is not None:
            self.rounding.harden()
        self.frozen_weight = self.quantized_weight().detach().clone()
        self.rounding = None

    def extra_repr(self) -> str:
        name = type(self.layer).__name__
        return name if self.activation is None else f"{name} + {type(self.activation).__name__}"


class QuantAttention(nn.Module):
    """timm's multi-head self-attention computed explicitly, with the inputs of both matmuls quantized.

    Built from a ``timm.layers.Attention`` (it takes over its submodules). timm may run attention
    as one fused ``scaled_dot_product_attention`` call, which hides q·kᵀ and the softmax; here they
    are separate so that ``q · scale`` and ``k`` (inputs of q·kᵀ) and ``softmax(q·kᵀ)`` and ``v``
    (inputs of attention·v) each pass a per-tensor activation quantizer. Softmax stays in float.
    """

    def __init__(self, attention: nn.Module, a_bits: int, a_symmetric: bool = False, a_init: str = "mse"):
        super().__init__()
        self.num_heads = attention.num_heads
        self.scale = attention.scale
        self.qkv = attention.qkv
        self.proj = attention.proj
        self.attn_drop = attention.attn_drop
        self.proj_drop = attention.proj_drop
        self.q_norm = getattr(attention, "q_norm", nn.Identity())
        self.k_norm = getattr(attention, "k_norm", nn.Identity())
        self.norm = getattr(attention, "norm", nn.Identity())
        self.gate = getattr(attention, "gate", None)
        self.q_quantizer = activation_quantizer(a_bits, a_symmetric, a_init)
        self.k_quantizer = activation_quantizer(a_bits, a_symmetric, a_init)
        self.attn_quantizer = activation_quantizer(a_bits, a_symmetric, a_init)
        self.v_quantizer = activation_quantizer(a_bits, a_symmetric, a_init)

    @staticmethod
    def attention_bias(x: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool):
        """Additive bias for the (N, N) scores of tokens ``x`` (B, N, C), with SDPA's mask semantics; None if none."""
        n = x.shape[1]
        if is_causal:
            return torch.full((n, n), float("-inf"), dtype=x.dtype, device=x.device).triu_(1)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            return torch.zeros_like(attn_mask, dtype=x.dtype).masked_fill_(~attn_mask, float("-inf"))
        return attn_mask

    def attend(self, x: torch.Tensor, bias=None) -> torch.Tensor:
        """``x`` (B, N, C) → attention output (B, N, heads · head_dim) before the output projection."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, hd)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        q = self.q_quantizer(q * self.scale)
        k = self.k_quantizer(k)
        attn = q @ k.transpose(-2, -1)  # (B, heads, N, N)
        if bias is not None:
            attn = attn + bias
        attn = self.attn_quantizer(attn.softmax(dim=-1))
        attn = self.attn_drop(attn)
        out = attn @ self.v_quantizer(v)  # (B, heads, N, hd)
        return out.transpose(1, 2).reshape(b, n, -1)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False):
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        out = self.norm(self.attend(x, self.attention_bias(x, attn_mask, is_causal)))
        if gate is not None:
            out = out * gate
        return self.proj_drop(self.proj(out))


class QuantWindowAttention(QuantAttention):
    """Swin's window attention (relative position bias, shifted-window mask) with quantized matmul inputs."""

    def __init__(self, attention: nn.Module, a_bits: int, a_symmetric: bool = False, a_init: str = "mse"):
        super().__init__(attention, a_bits, a_symmetric, a_init)
        self.window_area = attention.window_area
        self.relative_position_bias_table = attention.relative_position_bias_table
        self.register_buffer("relative_position_index", attention.relative_position_index)

    def relative_position_bias(self) -> torch.Tensor:
        """(1, heads, window_area, window_area), as timm builds it."""
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        table = table.view(self.window_area, self.window_area, -1)  # (Wa, Wa, heads)
        return table.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        bias = self.relative_position_bias()  # (1, heads, N, N)
        if mask is not None:  # (windows, N, N), 0 / -inf, repeated over the images of the batch
            windows = mask.shape[0]
            bias = (bias.unsqueeze(1) + mask.unsqueeze(1).unsqueeze(0)).expand(b // windows, -1, -1, -1, -1)
            bias = bias.reshape(b, self.num_heads, n, n)
        return self.proj_drop(self.proj(self.attend(x, bias)))


# ----------------------------------------------------------------------------- blocks

_BLOCK_TYPES: list[type] = []


def register_block(block_type: type) -> type:
    """Declare ``block_type`` a residual block to reconstruct as a whole (usable as a decorator)."""
    if block_type not in _BLOCK_TYPES:
        _BLOCK_TYPES.append(block_type)
    return block_type


def block_types() -> tuple[type, ...]:
    """The known block classes: timm's ResNet, RegNet, MobileNetV2/EfficientNet, ConvNeXt, ViT/DeiT and Swin
    blocks, plus registered ones. Each has a residual shortcut that a layer-wise fallback would leave in float."""
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
    from timm.models.convnext import ConvNeXtBlock
    from timm.models.regnet import Bottleneck as RegNetBottleneck
    from timm.models.resnet import BasicBlock, Bottleneck
    from timm.models.swin_transformer import SwinTransformerBlock
    from timm.models.vision_transformer import Block

    # DepthwiseSeparableConv is MobileNetV2's first inverted residual (expansion 1, no 1×1 expansion).
    return (BasicBlock, Bottleneck, RegNetBottleneck, InvertedResidual, DepthwiseSeparableConv, ConvNeXtBlock,
            Block, SwinTransformerBlock, *_BLOCK_TYPES)


class QuantBlock(nn.Module):
    """A known residual block, reconstructed as one unit; may quantize its input (see the module doc)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block
        self.input_quantizer = None

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The block on an input that is already quantized."""
        return self.block(x)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return self.block(x, *args, **kwargs)

    def extra_repr(self) -> str:
        return type(self.block).__name__


def block_kind(module: nn.Module) -> str:
    """Class name of the module a unit wraps (``BasicBlock``, ``Linear``, ...), for traces and tables."""
    if isinstance(module, QuantBlock):
        return type(module.block).__name__
    if isinstance(module, QuantLayer):
        return type(module.layer).__name__
    return type(module).__name__


# ----------------------------------------------------------------------------- wrapping a model


def quant_layers(model: nn.Module) -> list[QuantLayer]:
    """Every :class:`QuantLayer` of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, QuantLayer)]


def activation_quantizers(model: nn.Module) -> list[UniformQuantizer]:
    """Every activation (learnable-step) quantizer of ``model``."""
    return [m for m in model.modules() if isinstance(m, UniformQuantizer) and m.learn_step]


def set_quant_state(model: nn.Module, weights: bool, activations: bool) -> None:
    """Switch weight and activation fake-quantization on or off everywhere in ``model``."""
    for layer in quant_layers(model):
        layer.quantize_weight = weights
    for quantizer in activation_quantizers(model):
        quantizer.enabled = activations


def _replace_children(module: nn.Module, replace) -> None:
    """Depth-first: ``replace(child)`` returns a new module or None (then recurse into the child)."""
    for name, child in list(module.named_children()):
        new = replace(child)
        if new is None:
            _replace_children(child, replace)
        else:
            setattr(module, name, new)


def _attention_types() -> dict[type, type]:
    from timm.layers.attention import Attention
    from timm.models.swin_transformer import WindowAttention

    return {Attention: QuantAttention, WindowAttention: QuantWindowAttention}


def activation_types() -> tuple[type, ...]:
    """Element-wise activation modules that :func:`fuse_activations` moves into the layer before them."""
    from timm.layers import activations as timm_activations

    timm_types = [getattr(timm_activations, name) for name in ("GELU", "GELUTanh", "QuickGELU", "Swish", "Mish",
                                                                "HardSwish", "HardSigmoid", "Sigmoid", "Tanh")
                  if hasattr(timm_activations, name)]
    return (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.Hardtanh, nn.Mish,
            nn.ELU, nn.Sigmoid, nn.Tanh, *timm_types)


@torch.no_grad()
def fuse_activations(model: nn.Module, example: torch.Tensor) -> int:
    """Move each activation module that directly consumes a :class:`QuantLayer`'s output into that layer.

    Found on a forward pass over ``example`` (before any quantizer is initialised, so in float): an
    activation is fused when its input is the very tensor a QuantLayer returned, unchanged, and both are
    called once per forward. That excludes, e.g., a ResNet block's last ReLU, which reads the sum with the
    shortcut, and an activation module that a model calls twice. Its old place gets an ``nn.Identity``.
    If the model's output then differs at all, every fusion is undone with a warning. Returns the count.
    """
    types = activation_types()
    parents = {id(child): (parent, name) for parent in model.modules() for name, child in parent.named_children()}
    outputs: dict[int, tuple[QuantLayer, torch.Tensor, torch.Tensor]] = {}
    calls: dict[int, int] = {}
    consumers: dict[nn.Module, list[QuantLayer]] = {}

    def count(module) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1

    def after_layer(module, args, output):
        count(module)
        outputs[id(output)] = (module, output, output.detach().clone())  # the tensor is kept alive: ids stay unique

    def before_activation(module, args):
        count(module)
        found = outputs.get(id(args[0]))
        if found is not None and found[1] is args[0] and torch.equal(found[2], args[0]):
            consumers.setdefault(module, []).append(found[0])

    layers = quant_layers(model)
    handles = [layer.register_forward_hook(after_layer) for layer in layers]
    handles += [m.register_forward_pre_hook(before_activation) for m in model.modules() if isinstance(m, types)]
    try:
        reference = model(example)
    finally:
        for handle in handles:
            handle.remove()
    outputs.clear()
    fused = []
    for activation, producers in consumers.items():
        layer = producers[0]
        if (len(producers) == 1 and calls[id(activation)] == 1 and calls[id(layer)] == 1
                and layer.activation is None and id(activation) in parents):
            parent, name = parents[id(activation)]
            layer.activation = activation
            setattr(parent, name, nn.Identity())
            fused.append((layer, parent, name))
    if fused and not torch.equal(model(example), reference):
        for layer, parent, name in fused:
            setattr(parent, name, layer.activation)
            layer.activation = None
        warnings.warn(f"{type(model).__name__}: moving activations into the layers before them changed the output; "
                      "they stay where they were (standalone layers are then fitted before their activation)",
                      stacklevel=2)
        return 0
    return len(fused)


@torch.no_grad()
def execution_order(model: nn.Module, example: torch.Tensor, types: tuple[type, ...]) -> list[nn.Module]:
    """Modules of ``types`` in the order a forward pass on ``example`` first calls them."""
    order: list[nn.Module] = []
    seen: set[int] = set()

    def record(module, inputs):
        if id(module) not in seen:
            seen.add(id(module))
            order.append(module)

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, types)]
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return order


@torch.no_grad()
def _layers_reading_block_input(block: QuantBlock, model: nn.Module, example: torch.Tensor) -> list[QuantLayer]:
    """The QuantLayers inside ``block`` that receive the block's input tensor itself."""
    block_input: list[torch.Tensor] = []
    readers: list[QuantLayer] = []
    handles = [block.block.register_forward_pre_hook(lambda m, inputs: block_input.append(inputs[0]))]
    for layer in quant_layers(block):
        handles.append(layer.register_forward_pre_hook(
            lambda m, inputs: readers.append(m) if block_input and inputs[0] is block_input[0] else None))
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(readers))


def wrap_model(model: nn.Module, example: torch.Tensor, w_bits: int, a_bits: int, w_symmetric: bool = False,
               a_symmetric: bool = False, w_init: str = "mse", a_init: str = "mse",
               first_last_8bit: bool = True, fuse_activation: bool = True) -> nn.Module:
    """Replace, in place, the float model's layers by quantized ones (BatchNorm must be folded first).

    Args:
        model: a float model in eval mode, BatchNorm already folded (:func:`fold_batchnorm`).
        example: a small input batch, used to find the forward order (first and last layer) and
            which layers of each block read the block input.
        w_bits, a_bits: bit widths of weights and activations.
        first_last_8bit: 8-bit weights for the first layer, 8-bit weights and input for the last.
        fuse_activation: move activation functions into the layer before them (:func:`fuse_activations`),
            so that standalone layers are reconstructed after their activation, as in QDrop.

    Returns the same ``model``. Raises :class:`NothingToQuantizeError` if it holds no Conv2d/Linear.
    """
    attention_types = _attention_types()

    def replace_attention(child):
        new_type = attention_types.get(type(child))
        return new_type(child, a_bits, a_symmetric, a_init) if new_type else None

    def replace_layer(child):
        if type(child) in (nn.Conv2d, nn.Linear) or isinstance(child, nn.Conv2d):
            return QuantLayer(child, w_bits, a_bits, w_symmetric, a_symmetric, w_init, a_init)
        return None

    known_blocks = block_types()

    def replace_block(child):
        return QuantBlock(child) if isinstance(child, known_blocks) else None

    _replace_children(model, replace_attention)
    _replace_children(model, replace_layer)
    if fuse_activation:
        fuse_activations(model, example)
    _replace_children(model, replace_block)
    order = execution_order(model, example, (QuantLayer,))
    if not order:
        raise NothingToQuantizeError(
            f"{type(model).__name__} has no Conv2d or Linear layer that its forward pass uses; "
            "quantize() needs at least one (Conv2d, Linear, or timm Attention)")
    for block in [m for m in model.modules() if isinstance(m, QuantBlock)]:
        readers = _layers_reading_block_input(block, model, example)
        if readers:
            block.input_quantizer = activation_quantizer(a_bits, a_symmetric, a_init)
            for layer in readers:
                layer.input_quantizer = None
    first, last = order[0], order[-1]
    first.input_quantizer = None  # the image: 8-bit already
    if first_last_8bit:
        first.weight_quantizer.set_bits(8)
        last.weight_quantizer.set_bits(8)
        if last.input_quantizer is not None:
            last.input_quantizer.set_bits(8)
    return model


class NothingToQuantizeError(MixQError, ValueError):
    """The model holds no layer that quantization applies to."""


def fallback_containers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that hold several quantized layers but are no known block: reconstructed layer by layer.

    Plain containers (Sequential, ModuleList, ModuleDict) and the model itself are not reported. The
    innermost such module is the one reported (a RegNet ``Bottleneck``, not the ``RegStage`` holding it):
    it is the class to register.
    """
    plain = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    found: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> bool:
        """Report inside ``module``; return whether anything inside it was reported."""
        reported = False
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, (QuantBlock, QuantLayer)):
                continue
            inside = visit(path, child)
            if not inside and not isinstance(child, plain) and len(loose_layers(child)) >= 2:
                found.append((path, child))
                inside = True
            reported = reported or inside
        return reported

    visit("", model)
    return found


def loose_layers(module: nn.Module) -> list[QuantLayer]:
    """The QuantLayers of ``module`` that no QuantBlock holds."""
    if isinstance(module, QuantLayer):
        return [module]
    if isinstance(module, QuantBlock):
        return []
    return [layer for child in module.children() for layer in loose_layers(child)]


def warn_fallbacks(model: nn.Module) -> None:
    """Warn, once per class and naming it, about the modules that fall back to layer-wise reconstruction."""
    by_class: dict[type, list[tuple[str, nn.Module]]] = {}
    for name, module in fallback_containers(model):
        by_class.setdefault(type(module), []).append((name, module))
    for kind, modules in by_class.items():
        names = ", ".join(name for name, _ in modules[:3]) + (", ..." if len(modules) > 3 else "")
        layers = sum(len(loose_layers(module)) for _, module in modules)
        warnings.warn(f"{names} ({kind.__name__}) is not a known block type; the {layers} quantized layers of "
                      f"{len(modules)} such module{'s' if len(modules) > 1 else ''} are reconstructed one by one. "
                      f"Register the class with mixq_core.quant.register_block({kind.__name__}) to reconstruct it "
                      "as a block", stacklevel=3)
