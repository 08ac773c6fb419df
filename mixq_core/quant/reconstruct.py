"""``quantize(model, QuantConfig(...), calib_loader)``: round-to-nearest, AdaRound, BRECQ and QDrop.

The three reconstruction methods are options of one loop (:func:`reconstruct_unit`); a method
name selects a :class:`Recipe` from :data:`METHODS`:

=========  ==============  ======================================================================
method     unit            what the unit sees during reconstruction
=========  ==============  ======================================================================
rtn        none            nothing is trained: observers calibrated, weights rounded to nearest
adaround   each layer      the quantized model's input; loss on the layer's output
brecq      each block      the quantized model's input; loss on the block's output
qdrop      each block      input mixed elementwise: float input with probability ``drop_prob``,
                           quantized input otherwise; every activation quantizer inside the
                           block also keeps each value in float with probability ``drop_prob``
=========  ==============  ======================================================================

Layers outside any known block (the stem, the classifier, a ViT's patch embedding) are units of
their own in every method, as in BRECQ and QDrop. With ``adaround`` (layer-wise) the quantizers that
belong to no layer — a block's input quantizer, the attention-matmul quantizers — keep their
calibrated step. A unit learns, jointly and in one loop as QDrop
does, AdaRound's rounding of all its weights (Adam, lr ``lr_round`` = 1e-3) and the steps of all its
activation quantizers (Adam, lr ``lr_act`` = 4e-5, cosine-annealed to 0). BRECQ's paper learns the
activation steps in a second pass; here ``brecq`` is QDrop's loop without drop (QDrop's own
implementation of BRECQ), so the methods differ in one thing only.

Loss: ``rec = mean over batch and positions of Σ_features (out - target)²`` (BRECQ/QDrop's
``lp_loss`` with p = 2) + ``round_weight · Σ (1 - |2h - 1|^β)``, β annealed 20 → 2 after a 20 %
warm-up without the rounding term. The target is the float model's output for the same image; a
layer's output includes the activation function that follows it (see :mod:`.modules`).

Engine versions (:data:`ENGINE_VERSION`; every result record states the one that made it):

1. the first engine: standalone layers fitted before their activation, activation ranges found on the
   fake-quantized model, the activation step's gradient without LSQ's scale.
2. faithful to the official QDrop code (github.com/wimh966/QDrop, ``qdrop/solver``): the activation joins
   the layer before it (``quantize_model``), ranges are found on the float model
   (``enable_calibration_woquantization``), LSQ's gradient scale (``LSQFakeQuantize``), and a per-model
   rounding weight (its ``exp/w2a4/*/config.yaml``: 0.01 for ResNet, 0.1 for MobileNetV2). The three
   behaviours are :class:`QuantConfig` options; engine 1 is ``fuse_activation=False,
   act_calibration="quantized", lsq_grad_scale=False``.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import ConfigError, MixQError, check_fields, unknown_name
from ..progress import progress
from .calibrate import calibrate_activations, calibrate_weights
from .modules import (
    NothingToQuantizeError,
    QuantBlock,
    QuantLayer,
    activation_quantizers,
    block_kind,
    check_same_output,
    execution_order,
    fold_batchnorm,
    quant_layers,
    set_quant_state,
    warn_fallbacks,
    wrap_model,
)
from .probes import QuantTrace, ReconstructionError, StepRecorder, UnitTrace, grad_norm
from .quantizers import RANGE_INITS, AdaRound, BetaSchedule, check_bits, keep_mask, keep_where
from .resume import ResumeFolder, fingerprint

ENGINE_VERSION = 2  # what the reconstruction computes; bumped whenever a fixed config's result may change

ACT_CALIBRATIONS = ("float", "quantized")
CACHE_DEVICES = ("auto", "device", "cpu")
# QuantConfig fields that change where work happens, not what it computes: a resumed run may change them.
PLACEMENT_FIELDS = ("cache_device",)

# ----------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Recipe:
    """What a method name means. ``unit``: ``none``, ``layer`` or ``block``; ``drop``: QDrop's random drop."""

    unit: str
    drop: bool = False


METHODS: dict[str, Recipe] = {}


def register_method(name: str, recipe: Recipe) -> Recipe:
    """Make ``recipe`` selectable as ``QuantConfig(method=name)``."""
    METHODS[name] = recipe
    return recipe


register_method("rtn", Recipe(unit="none"))
register_method("adaround", Recipe(unit="layer"))
register_method("brecq", Recipe(unit="block"))
register_method("qdrop", Recipe(unit="block", drop=True))


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class QuantConfig:
    """Every setting of a quantization run. Defaults are QDrop's published ones.

    Attributes:
        w_bits, a_bits: weight and activation bit widths, 2..8.
        method: ``rtn``, ``adaround``, ``brecq`` or ``qdrop`` (see :data:`METHODS`).
        iters: optimisation steps per unit (QDrop: 20 000).
        batch_size: calibration images per step (32).
        lr_act: Adam learning rate of the activation steps (4e-5).
        lr_round: Adam learning rate of AdaRound's α (1e-3, Adam's default as in QDrop).
        round_weight: weight of the rounding regulariser (0.01: QDrop's ResNet value; its MobileNetV2
            config uses 0.1, which profiles set per model).
        drop_prob: QDrop's probability of keeping an activation in float (0.5).
        warmup, beta_start, beta_end: AdaRound's β schedule (0.2, 20, 2).
        first_last_8bit: 8-bit weights for the first layer, 8-bit weights and input for the last.
        w_symmetric, a_symmetric: symmetric grids (default: asymmetric, as QDrop).
        weight_init, act_init: range initialisers (``mse``, ``minmax``, ``percentile``).
        act_init_images: calibration images used to initialise the activation quantizers (256).
        act_calibration: ``float`` (QDrop: ranges found on the float model, all fake quantization off) or
            ``quantized`` (engine 1: on the fake-quantized model, each quantizer quantizing once set).
        lsq_grad_scale: multiply the activation steps' gradient by LSQ's ``1/sqrt(numel · qmax)`` (QDrop).
        fuse_activation: a layer's output includes the activation that follows it, so standalone layers
            are fitted after it (QDrop); False fits them before it (engine 1).
        seed: seeds batch order, drop masks and everything random in the run.
        probe_every: steps between two held-out probes when a probe loader is given (0: never).
        check_every: steps between two NaN/inf checks of the losses (each costs a host sync).
        cache_batch: images per forward pass when caching unit inputs and outputs.
        cache_device: where each unit's cached inputs and outputs are kept: ``device`` (the model's), ``cpu``
            (pinned CPU memory, one batch copied to the GPU per step, as the official QDrop code's
            ``keep_gpu=False``) or ``auto`` (the device while they fit in its free memory, else the CPU; see
            :func:`cache_placement`). It changes where tensors are kept, never a result.
        amp: on a CUDA GPU with native bf16 (compute capability ≥ 8: A100, L4, H100, ...), run the unit's
            convolutions and matmuls in bf16 (quantizers stay in float32); older GPUs (T4, V100) emulate bf16
            slowly, so they run in float32.
        compile: fuse AdaRound's element-wise update with ``torch.compile`` (eager fallback if unavailable).
    """

    w_bits: int = 4
    a_bits: int = 4
    method: str = "qdrop"
    iters: int = 20000
    batch_size: int = 32
    lr_act: float = 4e-5
    lr_round: float = 1e-3
    round_weight: float = 0.01
    drop_prob: float = 0.5
    warmup: float = 0.2
    beta_start: float = 20.0
    beta_end: float = 2.0
    first_last_8bit: bool = True
    w_symmetric: bool = False
    a_symmetric: bool = False
    weight_init: str = "mse"
    act_init: str = "mse"
    act_init_images: int = 256
    act_calibration: str = "float"
    lsq_grad_scale: bool = True
    fuse_activation: bool = True
    seed: int = 0
    probe_every: int = 100
    check_every: int = 100
    cache_batch: int = 256
    cache_device: str = "auto"
    amp: bool = True
    compile: bool = True

    def __post_init__(self):
        check_bits(self.w_bits, "w_bits")
        check_bits(self.a_bits, "a_bits")
        if self.method not in METHODS:
            raise unknown_name("quantization method", self.method, METHODS)
        if self.act_calibration not in ACT_CALIBRATIONS:
            raise unknown_name("act_calibration", self.act_calibration, ACT_CALIBRATIONS)
        if self.cache_device not in CACHE_DEVICES:
            raise unknown_name("cache_device", self.cache_device, CACHE_DEVICES)
        for name in ("weight_init", "act_init"):
            if getattr(self, name) not in RANGE_INITS:
                raise unknown_name(f"{name} range initialisation", getattr(self, name), RANGE_INITS)
        _require(self.iters >= 0, "iters", "an integer >= 0", self.iters)
        for name in ("batch_size", "act_init_images", "check_every", "cache_batch"):
            _require(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _require(self.probe_every >= 0, "probe_every", "an integer >= 0 (0: no probes)", self.probe_every)
        for name in ("lr_act", "lr_round"):
            _require(getattr(self, name) > 0, name, "a number > 0", getattr(self, name))
        _require(self.round_weight >= 0, "round_weight", "a number >= 0", self.round_weight)
        _require(0 <= self.drop_prob < 1, "drop_prob", "a number in [0, 1)", self.drop_prob)
        _require(0 <= self.warmup < 1, "warmup", "a number in [0, 1)", self.warmup)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> QuantConfig:
        check_fields(cls, data, "QuantConfig fields")
        return cls(**data)


def _require(ok: bool, name: str, accepted: str, value) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {accepted}, got {value!r}")


# ----------------------------------------------------------------------------- units and their data


@dataclass
class Unit:
    """One thing reconstructed at a time: a :class:`QuantBlock` or a :class:`QuantLayer`."""

    name: str
    module: nn.Module

    @property
    def kind(self) -> str:
        return block_kind(self.module)

    @property
    def feature_dim(self) -> int:
        """Dimension summed by the loss: channels of NCHW conv outputs (1), else the last (tokens' features)."""
        has_conv = any(isinstance(layer.layer, nn.Conv2d) for layer in quant_layers(self.module))
        return 1 if has_conv else -1


def find_units(model: nn.Module, example: torch.Tensor, unit: str) -> list[Unit]:
    """The units of ``model`` in forward order: blocks and loose layers (``block``) or every layer (``layer``)."""
    names = {module: name for name, module in model.named_modules()}
    if unit == "layer":
        candidates = (QuantLayer,)
    else:
        candidates = (QuantBlock, QuantLayer)
    order = execution_order(model, example, candidates)
    inside_blocks = {id(layer) for block in order if isinstance(block, QuantBlock) for layer in quant_layers(block)}
    chosen = [m for m in order if unit == "layer" or id(m) not in inside_blocks]
    return [Unit(names[m], m) for m in chosen]


@dataclass
class UnitData:
    """A unit's cached tensors, ``(N, ...)`` each, kept on the unit's ``device`` or, when ``host``, in CPU memory
    (pinned when ``device`` is a GPU, so that copies to it run asynchronously)."""

    quant_input: torch.Tensor  # input in the quantized model (earlier units already reconstructed)
    fp_input: torch.Tensor  # input in the float model
    fp_output: torch.Tensor  # output in the float model: the target
    device: torch.device  # where the unit runs
    host: bool = False  # the tensors are kept in CPU memory, not on ``device``

    @property
    def pinned(self) -> bool:
        return self.host and self.device.type == "cuda"

    def gather(self, tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``tensor[rows]`` on the unit's device (``rows``: indices, on the device the tensor is kept on)."""
        if not self.host:
            return tensor[rows]
        out = torch.empty((len(rows), *tensor.shape[1:]), dtype=tensor.dtype, pin_memory=self.pinned)
        return torch.index_select(tensor, 0, rows, out=out).to(self.device, non_blocking=self.pinned)

    def on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A slice of a cached tensor, on the unit's device."""
        return tensor.to(self.device, non_blocking=self.pinned) if self.host else tensor


class _StopForward(Exception):
    """Raised by a hook once the unit's tensors are captured, to skip the rest of the network."""


@torch.no_grad()
def _capture(model: nn.Module, unit: nn.Module, images: torch.Tensor, chunk: int, want_output: bool,
             host: bool = False):
    """Run ``model`` on ``images`` in chunks, up to ``unit``; return its inputs (and outputs), concatenated,
    on the model's device or (``host``) in CPU memory, pinned when the model is on a GPU."""
    inputs, outputs = [], []

    def pre_hook(module, args):
        # A copy: the unit could modify its input in place.
        inputs.append(args[0].detach().to("cpu", copy=True) if host else args[0].detach().clone())
        if not want_output:
            raise _StopForward

    def hook(module, args, output):
        outputs.append(output.detach().to("cpu") if host else output.detach())
        raise _StopForward

    handles = [unit.register_forward_pre_hook(pre_hook)]
    if want_output:
        handles.append(unit.register_forward_hook(hook))
    try:
        for start in range(0, len(images), chunk):
            try:
                model(images[start : start + chunk])
            except _StopForward:
                pass
    finally:
        for handle in handles:
            handle.remove()
    pin = host and images.device.type == "cuda"
    return _joined(inputs, pin), (_joined(outputs, pin) if want_output else None)


def _joined(chunks: list[torch.Tensor], pin: bool) -> torch.Tensor:
    """``torch.cat(chunks)``, written straight into pinned memory when ``pin``."""
    if not pin:
        return torch.cat(chunks)
    out = torch.empty((sum(len(c) for c in chunks), *chunks[0].shape[1:]), dtype=chunks[0].dtype, pin_memory=True)
    return torch.cat(chunks, out=out)


def cache_unit_data(model: nn.Module, unit: nn.Module, images: torch.Tensor, chunk: int,
                    host: bool = False) -> UnitData:
    """The unit's inputs in the float and quantized model and its float output, for all ``images``; kept in CPU
    memory when ``host`` (see :class:`UnitData`)."""
    set_quant_state(model, weights=False, activations=False)
    try:
        fp_input, fp_output = _capture(model, unit, images, chunk, want_output=True, host=host)
    finally:
        set_quant_state(model, weights=True, activations=True)
    quant_input, _ = _capture(model, unit, images, chunk, want_output=False, host=host)
    return UnitData(quant_input, fp_input, fp_output, device=images.device, host=host)


# Where a unit's cache goes (cache_device="auto"). A reconstruction step holds, besides the cache, the activations
# autograd saves inside the unit and their gradients: a ResNet bottleneck or a ViT block saves some 10-30 times its
# input per image, so STEP_MEMORY_FACTOR times the batch's input and output bytes covers it. CACHE_MARGIN is left
# for the allocator's fragmentation and cuDNN's workspaces.
STEP_MEMORY_FACTOR = 16
CACHE_MARGIN = 1 << 30


def cache_placement(setting: str, device: torch.device, cache_bytes: int, step_bytes: int,
                    free_bytes: int | None = None) -> str:
    """Where a unit's cache goes: ``device`` or ``cpu``.

    ``setting`` is :attr:`QuantConfig.cache_device`; ``auto`` keeps the cache (``cache_bytes``) on a CUDA
    ``device`` when it, a step's working memory (``step_bytes``) and a 1 GiB margin fit in the GPU's free memory
    (``free_bytes``; default: what the driver reports free plus what PyTorch holds unused), else in CPU memory.
    On a CPU ``auto`` is ``device``: both are the same memory.
    """
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return "device"
    if free_bytes is None:
        unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # PyTorch's cached blocks
        free_bytes = torch.cuda.mem_get_info(device)[0] + unused
    return "device" if cache_bytes + step_bytes + CACHE_MARGIN <= free_bytes else "cpu"


def unit_cache_placement(model: nn.Module, unit: nn.Module, images: torch.Tensor, n_probe: int,
                         config: QuantConfig) -> str:
    """:func:`cache_placement` for ``unit``, its sizes measured on one image (only where ``auto`` must choose)."""
    if config.cache_device != "auto" or images.device.type != "cuda":
        return cache_placement(config.cache_device, images.device, 0, 0)
    one_input, one_output = _capture(model, unit, images[:1], 1, want_output=True)
    per_image = one_input.numel() * one_input.element_size(), one_output.numel() * one_output.element_size()
    # Two inputs (quantized and float) and one output per calibration and probe image.
    cache_bytes = (len(images) + n_probe) * (2 * per_image[0] + per_image[1])
    step_bytes = STEP_MEMORY_FACTOR * config.batch_size * sum(per_image)
    return cache_placement("auto", images.device, cache_bytes, step_bytes)


# ----------------------------------------------------------------------------- the loop


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, feature_dim: int) -> torch.Tensor:
    """Squared error summed over ``feature_dim`` and averaged over everything else (BRECQ's lp_loss, p=2)."""
    return (output.float() - target.float()).pow(2).sum(feature_dim).mean()


class UnitReconstruction:
    """The state of one unit while it is reconstructed: its parameters, optimisers and forward pass.

    Args:
        unit: the block or layer.
        config: the run's settings.
        drop: apply QDrop's random drop (input mixing and inside the unit).
    """

    def __init__(self, unit: Unit, config: QuantConfig, drop: bool):
        self.unit = unit
        self.config = config
        self.layers = quant_layers(unit.module)
        self.input_quantizer = unit.module.input_quantizer
        self.quantizers = [q for q in activation_quantizers(unit.module) if q.initialized]
        self.drop_prob = config.drop_prob if drop else 0.0
        self.feature_dim = unit.feature_dim
        self.rounding_params: list[torch.Tensor] = []
        self.step_params: list[torch.Tensor] = []

    def start(self) -> None:
        """Attach AdaRound to every layer and make the activation steps learnable."""
        for layer in self.layers:
            layer.rounding = AdaRound(layer.weight, layer.weight_quantizer, compile=self.config.compile)
        self.rounding_params = [layer.rounding.alpha for layer in self.layers]
        self.step_params = [q.step for q in self.quantizers]
        for step in self.step_params:
            step.requires_grad_(True)
        # Compiled activation quantizers pay off in token blocks, where element-wise work on activations is a
        # large share of a step (a deit_mini block: ~1.4x faster); in conv blocks the convolutions dominate and
        # the extra compiled graphs cost more than they save (resnet18 W2A4: 99 s -> 106 s), so those stay eager.
        compile_activations = self.config.compile and self.feature_dim == -1
        for quantizer in self.quantizers:
            quantizer.compile = compile_activations
            if quantizer is not self.input_quantizer:  # the unit input is mixed in unit_input instead
                quantizer.drop_prob = self.drop_prob

    def rounding_backward(self, beta: torch.Tensor | float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Set every α's gradient (see :meth:`AdaRound.backward_`); return (‖∂rec/∂α‖², regulariser value)."""
        results = [layer.rounding.backward_(beta, self.config.round_weight) for layer in self.layers]
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def record_rounding(self, trace: UnitTrace) -> None:
        """Before hardening: the share of free rounding variables still soft, and of weights that hard rounding
        sends the other way than round-to-nearest (see :meth:`AdaRound.rounding_counts`)."""
        counts = [layer.rounding.rounding_counts() for layer in self.layers if layer.rounding is not None]
        if not counts:
            return
        total = {key: sum(c[key] for c in counts) for key in counts[0]}
        trace.soft_share = total["soft"] / total["free"] if total["free"] else 0.0
        trace.flipped_share = total["flipped"] / total["weights"] if total["weights"] else 0.0

    def finish(self) -> None:
        """Hard rounding, frozen weights, fixed steps, no drop."""
        for quantizer in self.quantizers:
            quantizer.drop_prob = 0.0
            quantizer.compile = False  # evaluation passes are one-off: not worth a compiled graph per shape
            quantizer.step.requires_grad_(False)
        for layer in self.layers:
            layer.freeze()

    def unit_input(self, quant_input: torch.Tensor, fp_input: torch.Tensor | None) -> torch.Tensor:
        """The unit's input: quantized by its input quantizer, then (QDrop) mixed with the float input."""
        x = self.input_quantizer(quant_input) if self.input_quantizer is not None else quant_input
        if fp_input is not None and self.drop_prob > 0:
            x = keep_where(keep_mask(x, self.drop_prob), fp_input, x)
        return x

    def forward(self, quant_input: torch.Tensor, fp_input: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.config.amp and native_bf16(quant_input.device)):
            return self.unit.module.body(self.unit_input(quant_input, fp_input))

    @torch.no_grad()
    def evaluate(self, data: UnitData, rows: slice | None = None) -> torch.Tensor:
        """Reconstruction loss without drop on the cached data (all rows, or ``rows``), as a 0-d tensor."""
        saved = [q.drop_prob for q in self.quantizers]
        for quantizer in self.quantizers:
            quantizer.drop_prob = 0.0
        quant_input, target = data.quant_input, data.fp_output
        if rows is not None:
            quant_input, target = quant_input[rows], target[rows]
        total = torch.zeros((), device=data.device)
        chunk = self.config.cache_batch
        for start in range(0, len(quant_input), chunk):
            piece = slice(start, start + chunk)
            out = self.forward(data.on_device(quant_input[piece]))
            total += reconstruction_loss(out, data.on_device(target[piece]), self.feature_dim) * len(out)
        for quantizer, prob in zip(self.quantizers, saved, strict=True):
            quantizer.drop_prob = prob
        return total / len(quant_input)


def native_bf16(device: torch.device) -> bool:
    """A CUDA GPU with bf16 in hardware (compute capability ≥ 8), where ``QuantConfig.amp`` applies."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def reconstruct_unit(unit: Unit, data: UnitData, config: QuantConfig, recipe: Recipe, seed: int,
                     probe: UnitData | None = None, position: str = "") -> UnitTrace:
    """Reconstruct ``unit`` for ``config.iters`` steps on its cached ``data``; return its trace.

    ``probe``, when given, is the unit's data on held-out images, evaluated every ``config.probe_every`` steps.
    ``position`` (``3/21``) goes into the progress bar. Raises :class:`ReconstructionError` (naming the unit)
    if a loss or gradient norm becomes NaN or inf.
    """
    trace = UnitTrace(name=unit.name, kind=unit.kind, iters=config.iters, cache="cpu" if data.host else "device")
    state = UnitReconstruction(unit, config, recipe.drop)
    trace.loss_before = float(state.evaluate(data))
    state.start()
    device = data.device
    n = len(data.quant_input)
    # All batch indices drawn up front, from the run's seed: no host work per step. They stay where the cache is.
    generator = torch.Generator().manual_seed(seed)
    batches = torch.randint(0, n, (config.iters, min(config.batch_size, n)), generator=generator)
    batches = batches.to(data.quant_input.device)
    round_optimizer = _adam(state.rounding_params, config.lr_round) if state.rounding_params else None
    step_optimizer = _adam(state.step_params, config.lr_act) if state.step_params else None
    step_schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(step_optimizer, T_max=max(config.iters, 1))
                     if step_optimizer else None)
    beta_schedule = BetaSchedule(config.iters, config.warmup, config.beta_start, config.beta_end)
    betas = torch.tensor([beta_schedule(step) or 0.0 for step in range(config.iters)], device=device)
    recorder = StepRecorder(trace, config.iters, device, config.check_every)
    probe_rows = slice(0, min(len(probe.quant_input), n)) if probe is not None else None
    start_time = time.perf_counter()
    for step in progress(range(config.iters), desc=f"{position} {unit.name} ({unit.kind})".strip()):
        batch = batches[step]
        fp_input = data.gather(data.fp_input, batch) if state.drop_prob > 0 else None
        output = state.forward(data.gather(data.quant_input, batch), fp_input)
        rec_loss = reconstruction_loss(output, data.gather(data.fp_output, batch), state.feature_dim)
        rec_loss.backward()
        # The activation steps' gradients hold the reconstruction loss alone (nothing else touches them);
        # AdaRound reports the reconstruction share of α's gradient before adding the regulariser's.
        step_norm = grad_norm(state.step_params)
        in_warmup = step < beta_schedule.warmup_steps
        rounding_sq_norm, round_loss = state.rounding_backward(None if in_warmup else betas[step])
        if round_optimizer is not None:
            round_optimizer.step()
            round_optimizer.zero_grad(set_to_none=True)
        if step_optimizer is not None:
            step_optimizer.step()
            step_optimizer.zero_grad(set_to_none=True)
            step_schedule.step()
        recorder.record(step, rec_loss.detach(), round_loss, rounding_sq_norm.sqrt(), step_norm)
        if probe is not None and config.probe_every and step % config.probe_every == 0:
            recorder.record_probe(step, state.evaluate(probe), state.evaluate(data, probe_rows))
    trace.seconds = time.perf_counter() - start_time
    trace.iters_per_second = config.iters / trace.seconds if trace.seconds > 0 else 0.0
    recorder.finish(config.iters)
    state.record_rounding(trace)
    state.finish()
    trace.loss_after = _finite_or_raise(state.evaluate(data), unit, "final loss")
    if probe is not None:
        trace.probe_loss_after = float(state.evaluate(probe))
    return trace


def _adam(parameters: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel (one pass over the parameters instead of several)."""
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def _finite_or_raise(value: torch.Tensor, unit: Unit, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ReconstructionError(f"reconstruction of {unit.name} ({unit.kind}) gave a non-finite {what}; "
                                  "stopped, no quantized model is returned")
    return value


# ----------------------------------------------------------------------------- the public verb


def collect_images(loader: Iterable, device: torch.device) -> torch.Tensor:
    """All images of ``loader`` (batches of images or of ``(image, label)``) as one float tensor on ``device``."""
    batches = [batch[0] if isinstance(batch, (list, tuple)) else batch for batch in loader]
    if not batches:
        raise MixQError("the calibration loader yielded no images; give a loader over at least one image")
    return torch.cat(batches).to(device=device, dtype=torch.float32)


def model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise NothingToQuantizeError(f"{type(model).__name__} has no parameters: nothing to quantize")
    return parameter.device


def prepare(model: nn.Module, config: QuantConfig, images: torch.Tensor) -> nn.Module:
    """A folded, wrapped, calibrated (round-to-nearest) copy of ``model``; ``model`` is left untouched."""
    example = images[:2]
    qmodel = copy.deepcopy(model).eval()
    fold_batchnorm(qmodel)
    check_same_output(model.eval(), qmodel, images[: min(len(images), 64)])
    wrap_model(qmodel, example, config.w_bits, config.a_bits, config.w_symmetric, config.a_symmetric,
               config.weight_init, config.act_init, config.first_last_8bit, config.fuse_activation)
    for parameter in qmodel.parameters():
        parameter.requires_grad_(False)
    for quantizer in activation_quantizers(qmodel):
        quantizer.grad_scale = config.lsq_grad_scale
    calibrate_weights(qmodel)
    calibrate_activations(qmodel, images[: config.act_init_images], on_float=config.act_calibration == "float")
    return qmodel


def quantize(model: nn.Module, config: QuantConfig, calib_loader: Iterable,
             probe_loader: Iterable | None = None,
             resume_dir: str | os.PathLike | None = None) -> tuple[nn.Module, QuantTrace]:
    """Quantize ``model`` with the calibration images of ``calib_loader``; return ``(qmodel, trace)``.

    Args:
        model: a float model (eval mode is used; it is not modified). Its device is where everything runs.
        config: the run's settings (:class:`QuantConfig`).
        calib_loader: yields image batches or ``(images, labels)``; all of its images are used.
        probe_loader: optional held-out *real* images; each unit's loss on them is probed every
            ``config.probe_every`` steps (see :mod:`mixq_core.quant.probes`).
        resume_dir: a folder that keeps the quantized state after each finished unit; a later call with the
            same folder (and the same model, images and settings) goes on after the last finished unit and
            returns what an uninterrupted call returns (see :mod:`mixq_core.quant.resume`).

    Returns the fake-quantized model (weights frozen on their grid, activation quantizers on) and a
    :class:`QuantTrace`. Deterministic for a given ``config.seed`` on a given device. Raises
    :class:`ConfigError`, :class:`NothingToQuantizeError`, :class:`ReconstructionError` or
    :class:`~mixq_core.quant.resume.ResumeError`.
    """
    start_time = time.perf_counter()
    folder = ResumeFolder(resume_dir) if resume_dir is not None else None  # checked before any long work
    device = model_device(model)
    images = collect_images(calib_loader, device)
    probe_images = collect_images(probe_loader, device) if probe_loader is not None else None
    recipe = METHODS[config.method]
    trace = QuantTrace(config=config.to_dict(), engine=ENGINE_VERSION, n_calib=len(images),
                       n_probe=0 if probe_images is None else len(probe_images))
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        qmodel = prepare(model, config, images)
        trace.calibration_seconds = time.perf_counter() - start_time
        units = find_units(qmodel, images[:2], recipe.unit) if recipe.unit != "none" and config.iters > 0 else []
        if recipe.unit == "block" and units:
            warn_fallbacks(qmodel)
        if folder is not None:
            result_settings = {k: v for k, v in config.to_dict().items() if k not in PLACEMENT_FIELDS}
            finished = folder.start(fingerprint(result_settings, ENGINE_VERSION, model, images, probe_images,
                                                [f"{u.name} ({u.kind})" for u in units], device))
            if finished:
                folder.restore(qmodel, len(finished), device)
            trace.units = [UnitTrace(**unit) for unit in finished]
            trace.resumed_units = len(finished)
            start_time -= folder.seconds
        for index in range(len(trace.units), len(units)):
            unit = units[index]
            host = unit_cache_placement(qmodel, unit.module, images, trace.n_probe, config) == "cpu"
            data = cache_unit_data(qmodel, unit.module, images, config.cache_batch, host)
            probe = (cache_unit_data(qmodel, unit.module, probe_images, config.cache_batch, host)
                     if probe_images is not None else None)
            trace.units.append(reconstruct_unit(unit, data, config, recipe, config.seed * 1000 + index, probe,
                                                position=f"{index + 1}/{len(units)}"))
            del data, probe
            if folder is not None:
                folder.save(index, unit.name, unit.module, asdict(trace.units[-1]), time.perf_counter() - start_time,
                            device)
    for layer in quant_layers(qmodel):
        if layer.frozen_weight is None:
            layer.freeze()
    trace.seconds = time.perf_counter() - start_time
    return qmodel.eval(), trace
