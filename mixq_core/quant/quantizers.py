"""Uniform affine fake-quantizers, their range initialisation, and AdaRound weight rounding.

Everything here works on *fake* quantization: a tensor is mapped to its integer grid
and straight back to floats, so the rest of the network runs unchanged in float32 while
seeing exactly the values an integer kernel would see.

Conventions (those of BRECQ and QDrop):

- asymmetric (default): integers ``0 .. 2^b - 1`` and a zero point, ``x̂ = (clamp(round(x/s) + z) - z) · s``;
- symmetric: integers ``-2^(b-1) .. 2^(b-1) - 1``, zero point 0 (PyTorch's observer convention,
  ``s = max|x| / ((2^b - 1) / 2)``);
- weights per output channel (axis 0), activations per tensor;
- the rounding inside a fake-quantizer passes gradients straight through (STE), so
  a learnable activation step ``s`` gets LSQ's gradient, multiplied by LSQ's gradient scale
  ``1 / sqrt(numel(x) · qmax)`` as QDrop's ``LSQFakeQuantize`` does (``use_grad_scaling=True``);
  :attr:`UniformQuantizer.grad_scale` = False leaves the gradient unscaled (engine 1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError, unknown_name

MIN_BITS, MAX_BITS = 2, 8
# AdaRound's rectified sigmoid stretches sigmoid to (GAMMA, ZETA) and clips to [0, 1],
# so the soft rounding can reach exactly 0 or 1 (Nagel et al. 2020, eq. 23).
ZETA, GAMMA = 1.1, -0.1
# The MSE search tries MSE_COARSE shrink factors, then MSE_FINE around the best one.
MSE_COARSE, MSE_FINE = 20, 20
# Above this many values, a per-tensor MSE search works on a histogram of HISTOGRAM_BINS bins.
HISTOGRAM_MIN_VALUES, HISTOGRAM_BINS = 1 << 16, 4096
# The percentile initialiser looks at a random subset of at most this many values.
MAX_QUANTILE_VALUES = 1 << 22
PERCENTILE = 0.9999
_EPS = 1e-8


def check_bits(bits: int, what: str = "bits") -> int:
    """Return ``bits`` if it is an integer in 2..8, else raise :class:`ConfigError`."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Smallest and largest integer of a ``bits``-bit grid."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest in the forward pass, identity in the backward pass."""
    return x + (x.round() - x).detach()


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Quantize ``x`` to the grid ``(q - zero_point) * scale, q in [qmin, qmax]`` and back (STE rounding).

    ``scale`` and ``zero_point`` broadcast against ``x`` (a scalar, or ``(C, 1, ...)`` per channel).
    """
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def scale_and_zero_point(low: torch.Tensor, high: torch.Tensor, bits: int, symmetric: bool):
    """Grid step and zero point that cover ``[low, high]`` (element-wise, so per channel works).

    The range is widened to contain 0, so that zero (padding, ReLU outputs) is exactly representable.
    """
    low = torch.minimum(low, torch.zeros_like(low))
    high = torch.maximum(high, torch.zeros_like(high))
    qmin, qmax = integer_range(bits, symmetric)
    if symmetric:
        scale = torch.maximum(-low, high) / ((qmax - qmin) / 2)
        return scale.clamp_min(_EPS), torch.zeros_like(scale)
    scale = ((high - low) / (qmax - qmin)).clamp_min(_EPS)
    zero_point = torch.clamp(torch.round(-low / scale), qmin, qmax)
    return scale, zero_point


# ----------------------------------------------------------------------------- range initialisation
# Each initialiser takes ``x`` as ``(C, K)`` (one row per channel; C = 1 per tensor) and returns
# the per-row clipping range ``(low, high)``, each of shape ``(C,)``.

RANGE_INITS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {}


def register_range_init(name: str):
    """Decorator adding a range initialiser to :data:`RANGE_INITS` under ``name``."""

    def add(function):
        RANGE_INITS[name] = function
        return function

    return add


@register_range_init("minmax")
def minmax_range(rows: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest and largest value of each row: nothing is clipped."""
    return rows.amin(dim=1), rows.amax(dim=1)


@register_range_init("percentile")
def percentile_range(rows: torch.Tensor, bits: int, symmetric: bool,
                     percentile: float = PERCENTILE) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``1 - p`` and ``p`` quantiles of each row (p = 0.9999): clips rare outliers."""
    rows = _subsample_columns(rows, MAX_QUANTILE_VALUES)
    quantiles = torch.tensor([1 - percentile, percentile], device=rows.device, dtype=rows.dtype)
    low, high = torch.quantile(rows, quantiles, dim=1)
    return low, high


@register_range_init("mse")
def mse_range(rows: torch.Tensor, bits: int, symmetric: bool, p: float = 2.4) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipping range with the smallest L_p quantization error per row, by grid search.

    Candidates are ``[min · f, max · f]``: both ends shrunk by the same factor ``f`` (for a one-sided
    tensor, such as a ReLU output, this is exactly QDrop's 1-D search). The error norm is L_2.4, as in
    BRECQ and QDrop. ``f`` is searched coarse to fine, 20 values in (0, 1] then 20 around the best,
    which reaches a 0.005 resolution with 40 evaluations where QDrop's grid reaches 0.01 with 100.
    A single row with many values (an activation tensor) is summarised first by a 4096-bin histogram,
    so the search costs the same whatever the batch size. QDrop's 2-D search over range *and* zero
    point for two-sided tensors is not used: it costs ``2^b`` times more for a gain that
    reconstruction erases.
    """
    if rows.shape[0] == 1 and rows.shape[1] > HISTOGRAM_MIN_VALUES:
        values, counts = _histogram(rows)
    else:
        values, counts = rows, None
    low, high = rows.amin(dim=1), rows.amax(dim=1)
    coarse = torch.arange(1, MSE_COARSE + 1, device=rows.device, dtype=rows.dtype) / MSE_COARSE  # (m,)
    best = _best_fraction(values, counts, low, high, coarse[:, None].expand(-1, len(low)), bits, symmetric, p)
    offsets = torch.linspace(-1, 1, MSE_FINE, device=rows.device, dtype=rows.dtype) / MSE_COARSE
    fine = (best[None] + offsets[:, None]).clamp(1 / (MSE_COARSE * MSE_FINE), 1)  # (m, C)
    fine = torch.cat([best[None], fine])  # keep the coarse optimum among the candidates
    best = _best_fraction(values, counts, low, high, fine, bits, symmetric, p)
    return low * best, high * best


def _histogram(row: torch.Tensor, bins: int = HISTOGRAM_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin centres ``(1, bins)`` and counts ``(1, bins)`` of the values of a single row."""
    low, high = float(row.min()), float(row.max())
    if high <= low:
        high = low + _EPS
    counts = torch.histc(row, bins=bins, min=low, max=high)
    width = (high - low) / bins
    centres = low + width * (torch.arange(bins, device=row.device, dtype=row.dtype) + 0.5)
    return centres[None], counts[None]


@torch.no_grad()
def _best_fraction(values: torch.Tensor, counts: torch.Tensor | None, low: torch.Tensor, high: torch.Tensor,
                   fractions: torch.Tensor, bits: int, symmetric: bool, p: float) -> torch.Tensor:
    """For each row, the fraction among ``fractions`` (m, C) whose range ``[low·f, high·f]`` errs least."""
    qmin, qmax = integer_range(bits, symmetric)
    # Evaluate several candidates at once: (chunk, C, K) stays around 8M values.
    chunk = max(1, (1 << 23) // max(values.numel(), 1))
    errors = []
    for start in range(0, len(fractions), chunk):
        f = fractions[start : start + chunk]  # (m, C)
        scale, zero_point = scale_and_zero_point(low[None] * f, high[None] * f, bits, symmetric)
        scale, zero_point = scale[..., None], zero_point[..., None]  # (m, C, 1)
        # Plain rounding (no STE) and in-place steps: this loop is the cost of calibration.
        error = (values[None] / scale).round_()
        error = torch.maximum(torch.minimum(error, qmax - zero_point), qmin - zero_point).mul_(scale)
        error = error.sub_(values[None]).abs_().pow_(p)  # (m, C, K)
        if counts is not None:
            error = error.mul_(counts[None])
        errors.append(error.sum(dim=2))
    best_index = torch.cat(errors).argmin(dim=0)  # (C,)
    return fractions[best_index, torch.arange(fractions.shape[1], device=fractions.device)]


def _subsample_columns(rows: torch.Tensor, max_values: int) -> torch.Tensor:
    """At most ``max_values`` values in all, as a fixed random choice of the same columns for every row."""
    if rows.numel() <= max_values:
        return rows
    keep = max(1, max_values // rows.shape[0])
    generator = torch.Generator(device="cpu").manual_seed(0)
    columns = torch.randperm(rows.shape[1], generator=generator)[:keep].to(rows.device)
    return rows[:, columns]


def init_range(rows: torch.Tensor, method: str, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch to the range initialiser registered as ``method``."""
    if method not in RANGE_INITS:
        raise unknown_name("range initialisation", method, RANGE_INITS)
    return RANGE_INITS[method](rows.detach().float(), bits, symmetric)


# ----------------------------------------------------------------------------- the quantizer module


class UniformQuantizer(nn.Module):
    """Uniform affine fake-quantizer with its own step and zero point.

    Args:
        bits: grid width, 2..8.
        symmetric: signed grid around 0 (zero point 0) instead of an affine one.
        per_channel: one step per index of axis 0 (weights: output channels); else one per tensor.
        init: range initialiser name from :data:`RANGE_INITS` (``minmax``, ``mse``, ``percentile``).
        learn_step: make the step an ``nn.Parameter`` (LSQ-style activation step); the zero point stays fixed.

    The quantizer is the identity until :meth:`initialize` has been called or, for activations,
    until a forward pass in calibration mode (:attr:`calibrating`) has set the range from its input.
    During QDrop reconstruction :attr:`drop_prob` > 0 keeps each element in full precision with that
    probability, and :attr:`compile` runs the quantize-and-drop chain as one compiled kernel.
    """

    def __init__(self, bits: int, symmetric: bool = False, per_channel: bool = False, init: str = "mse",
                 learn_step: bool = False):
        super().__init__()
        self.bits = check_bits(bits)
        self.symmetric = symmetric
        self.per_channel = per_channel
        self.init = init
        self.learn_step = learn_step
        self.qmin, self.qmax = integer_range(bits, symmetric)
        if learn_step:
            self.step = nn.Parameter(torch.ones(()), requires_grad=False)
        else:
            self.register_buffer("step", torch.ones(()))
        self.register_buffer("zero_point", torch.zeros(()))
        self.initialized = False  # a Python flag: reading a buffer would sync with the GPU on every call
        self.enabled = True
        self.calibrating = False
        self.drop_prob = 0.0
        self.compile = False  # fuse the element-wise work with torch.compile (set during reconstruction)
        self.grad_scale = True  # LSQ's gradient scale on a learnable step (QDrop's LSQFakeQuantize)

    def set_bits(self, bits: int) -> None:
        """Change the grid width (before initialisation: the range is found for the new grid)."""
        self.bits = check_bits(bits)
        self.qmin, self.qmax = integer_range(bits, self.symmetric)

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(C, K)``: one row per channel, or a single row."""
        return x.reshape(x.shape[0], -1) if self.per_channel else x.reshape(1, -1)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set the step and zero point from the values of ``x`` with the configured initialiser."""
        low, high = init_range(self._rows(x), self.init, self.bits, self.symmetric)
        step, zero_point = scale_and_zero_point(low, high, self.bits, self.symmetric)
        if self.per_channel:  # (C,) → (C, 1, ...) to broadcast against x
            shape = (-1,) + (1,) * (x.dim() - 1)
            step, zero_point = step.reshape(shape), zero_point.reshape(shape)
        else:
            step, zero_point = step.reshape(()), zero_point.reshape(())
        self.step.data = step.to(self.step.dtype)
        self.zero_point = zero_point.to(self.zero_point.dtype)
        self.initialized = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.initialize(x)
            self.calibrating = False
        if not self.enabled or not self.initialized:
            return x
        # QDrop's keep-mask is drawn eagerly: compiled random number generation is slower on CPU.
        keep = keep_mask(x, self.drop_prob) if self.drop_prob > 0 else None
        step = self.step
        if self.grad_scale and step.requires_grad and torch.is_grad_enabled():
            step = lsq_scaled_step(step, 1.0 / math.sqrt(x.numel() * self.qmax))
        return activation_quantize(x, step, self.zero_point, self.qmin, self.qmax, keep, compile=self.compile)

    def extra_repr(self) -> str:
        scheme = "symmetric" if self.symmetric else "asymmetric"
        granularity = "per-channel" if self.per_channel else "per-tensor"
        return f"bits={self.bits}, {scheme}, {granularity}, init={self.init}, learn_step={self.learn_step}"


def lsq_scaled_step(step: torch.Tensor, factor: float) -> torch.Tensor:
    """``step`` in the forward pass (exactly), with its gradient multiplied by ``factor`` (LSQ's gradient scale)."""
    detached = step.detach()
    return detached + (step - detached) * factor


# ----------------------------------------------------------------------------- AdaRound


def rectified_sigmoid(alpha: torch.Tensor) -> torch.Tensor:
    """AdaRound's soft rounding h(α) = clamp(σ(α)(ζ - γ) + γ, 0, 1)."""
    return torch.clamp(torch.sigmoid(alpha) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _soft_weight(alpha: torch.Tensor, base: torch.Tensor, free: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``(base + free · h(α)) · step``: AdaRound's weight with all tensors ``(C, K)`` (step ``(C, 1)``)."""
    return (base + free * rectified_sigmoid(alpha)) * step


def _alpha_grad(alpha: torch.Tensor, weight_grad: torch.Tensor, free: torch.Tensor, step: torch.Tensor,
                beta: torch.Tensor, reg_weight: float, with_regularizer: bool):
    """Gradient of the loss with respect to α, from the loss's gradient with respect to the soft weight.

    Returns ``(squared norm of the reconstruction part, regulariser value, total gradient)``. With
    ``u = 2h - 1`` the regulariser ``λ Σ (1 - |u|^β)`` has gradient ``-λ β |u|^(β-1) sign(u) · 2 h'(α)``,
    and ``h'(α) = σ(α)(1 - σ(α))(ζ - γ)`` where the clamp of the rectified sigmoid is inactive, else 0.
    """
    sigma = torch.sigmoid(alpha)
    stretched = sigma * (ZETA - GAMMA) + GAMMA
    dh = torch.where((stretched > 0) & (stretched < 1), sigma * (1 - sigma) * (ZETA - GAMMA), 0.0)
    grad = weight_grad * step * free * dh
    rec_sq_norm = (grad * grad).sum()
    if not with_regularizer:
        return rec_sq_norm, torch.zeros_like(rec_sq_norm), grad
    u = 2 * stretched.clamp(0, 1) - 1
    abs_u = u.abs()
    # |u|^(β-1) as exp((β-1) log|u|): compiled, twice as fast as pow with a tensor exponent.
    power = torch.exp((beta - 1) * torch.log(abs_u.clamp_min(1e-30)))
    value = reg_weight * (1 - power * abs_u).sum()
    grad = grad - (reg_weight * beta * 2) * power * torch.sign(u) * dh
    return rec_sq_norm, value, grad


class _MaybeCompiled:
    """A function run through ``torch.compile`` when asked and possible, else eagerly (with one warning).

    The AdaRound update and an activation's quantize-and-drop are chains of element-wise operations
    over whole tensors; compiled, each is one fused loop forward and one backward (AdaRound about 4×
    faster on CPU; a deit_mini block's reconstruction step about 1.4×). Compilation needs a C++
    compiler (CPU) or Triton (CUDA); without them the eager version runs, with the same arithmetic.
    QDrop's keep-mask is an input (drawn eagerly by :func:`keep_mask`), so it is the same either way.
    """

    def __init__(self, function):
        self.function = function
        self.compiled = None
        self.failed = False

    def __call__(self, *args, compile: bool = False):
        if compile and not self.failed:
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(self.function, dynamic=True)
                return self.compiled(*args)
            except Exception as exc:  # no compiler, unsupported backend: fall back, once
                self.failed = True
                warnings.warn(f"torch.compile of {self.function.__name__} failed ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); it runs eagerly (slower, same arithmetic)", stacklevel=2)
        return self.function(*args)


def keep_mask(like: torch.Tensor, prob: float) -> torch.Tensor:
    """QDrop's keep-mask for ``like``: 1 where an element stays float (probability ``prob``), else 0, as a
    tensor of ``like``'s dtype, for :func:`keep_where`.

    Drawn as random bytes compared with ``round(256 · prob)``, so ``prob`` is taken to a multiple of
    1/256 (QDrop's 0.5 exactly): eight elements per 64-bit draw, a few times cheaper than one float
    per element, and random draws are a large share of a reconstruction step on CPU. On a CPU the
    comparison writes 0/1 straight into a float tensor, five times faster than making a bool mask and
    converting it.
    """
    n = like.numel()
    words = torch.randint(torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max, ((n + 7) // 8,),
                          dtype=torch.int64, device=like.device)
    drawn = words.view(torch.uint8)[:n].view(like.shape)
    threshold = round(256 * prob)
    if like.device.type != "cpu":
        return (drawn < threshold).to(like.dtype)
    return torch.lt(drawn, threshold, out=torch.empty(like.shape, dtype=like.dtype))


def keep_where(keep: torch.Tensor, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``x`` where ``keep`` (a :func:`keep_mask`) is 1, ``other`` where it is 0: ``torch.where(keep, x, other)``
    with the same values and gradients.

    It is ``torch.lerp(other, x, keep)``, which is exact at weights 0 and 1 (PyTorch computes
    ``other + w·(x - other)`` for w < 0.5 and ``x - (x - other)·(1 - w)`` above), and its gradients are the
    incoming gradient times ``1 - keep`` and ``keep``. On a CPU it is about ten times faster than
    ``torch.where`` with a bool mask, whose kernel is not vectorised: in a resnet18 block's reconstruction
    step the QDrop selections had taken about a third of the time. Mixed dtypes fall back to ``torch.where``.
    """
    if x.dtype == other.dtype == keep.dtype:
        return torch.lerp(other, x, keep)
    return torch.where(keep.bool(), x, other)


def _activation_quantize(x: torch.Tensor, step: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int,
                         keep: torch.Tensor | None) -> torch.Tensor:
    """Fake-quantize ``x`` (in float32, back to its dtype); QDrop: where ``keep`` is 1, ``x`` stays float."""
    quantized = fake_quantize(x.float(), step, zero_point, qmin, qmax).to(x.dtype)
    return quantized if keep is None else keep_where(keep, x, quantized)


soft_weight = _MaybeCompiled(_soft_weight)
alpha_grad = _MaybeCompiled(_alpha_grad)
activation_quantize = _MaybeCompiled(_activation_quantize)


class AdaRound(nn.Module):
    """Learnable rounding of one weight tensor on a fixed grid (Nagel et al., 2020).

    The weight becomes ``clamp(floor(w/s) + h(α), qmin - z, qmax - z) · s`` where ``h`` is the
    rectified sigmoid of a free parameter ``α`` per weight, initialised so that the soft value
    equals the original one. After :meth:`harden` the rounding is binary: up where ``α ≥ 0``.

    The gradient of α is computed by hand (:meth:`backward_`) from the gradient that autograd leaves
    on the soft weight: that keeps α out of the autograd graph, lets the reconstruction loss's share
    of the gradient be measured before the regulariser's is added, and fuses into one loop.

    Args:
        weight: the float weight (not modified).
        quantizer: an initialised per-channel :class:`UniformQuantizer` giving step and zero point.
        compile: fuse the element-wise work with ``torch.compile`` (falls back to eager).
    """

    def __init__(self, weight: torch.Tensor, quantizer: UniformQuantizer, compile: bool = False):
        super().__init__()
        self.shape = weight.shape
        self.compile = compile
        rows = weight.detach().reshape(weight.shape[0], -1)  # (C, K)
        step = quantizer.step.detach().reshape(-1, 1).expand(len(rows), 1)  # (C, 1)
        zero_point = quantizer.zero_point.detach().reshape(-1, 1).expand(len(rows), 1)
        low, high = quantizer.qmin - zero_point, quantizer.qmax - zero_point  # integer offsets on the grid
        scaled = rows / step
        floor = torch.floor(scaled)
        # A weight whose floor lies outside [low, high - 1] is clipped whatever its rounding:
        # its value is a constant (``free`` = 0) and its α gets no gradient.
        free = (floor >= low) & (floor <= high - 1)
        self.register_buffer("step", step.clone())
        self.register_buffer("base", torch.where(free, floor, torch.maximum(torch.minimum(floor, high), low)))
        self.register_buffer("free", free.to(rows.dtype))
        self.register_buffer("nearest_up", free & (scaled - floor >= 0.5))  # round-to-nearest's choice
        remainder = (scaled - floor).clamp(1e-4, 1 - 1e-4)
        # Inverse of the rectified sigmoid at the remainder: h(α) = w/s - floor(w/s).
        self.alpha = nn.Parameter(-torch.log((ZETA - GAMMA) / (remainder - GAMMA) - 1))
        self.hard = False
        self._soft = None  # the last soft weight handed to autograd, whose .grad backward_ reads

    def forward(self) -> torch.Tensor:
        """The fake-quantized weight, in the original weight's shape."""
        if self.hard:
            return ((self.base + self.free * (self.alpha >= 0)) * self.step).reshape(self.shape)
        with torch.no_grad():
            # alpha.detach(): torch.compile keeps a Parameter's shape static, which would recompile per layer.
            weight = soft_weight(self.alpha.detach(), self.base, self.free, self.step, compile=self.compile)
        if torch.is_grad_enabled() and self.alpha.requires_grad:
            weight.requires_grad_(True)
            self._soft = weight
        return weight.reshape(self.shape)

    @torch.no_grad()
    def backward_(self, beta: torch.Tensor | float | None, reg_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Set ``alpha.grad`` after ``loss.backward()``; return (‖∂rec/∂α‖², regulariser value).

        ``beta`` is the regulariser's exponent (a 0-d tensor on the device avoids a host-to-device copy
        per step); None means the warm-up, without regulariser.
        """
        soft, self._soft = self._soft, None
        if soft is None or soft.grad is None:
            zero = torch.zeros((), device=self.alpha.device)
            return zero, zero
        with_regularizer = beta is not None and reg_weight > 0
        beta = torch.as_tensor(0.0 if beta is None else beta, device=self.alpha.device)
        rec_sq_norm, value, grad = alpha_grad(self.alpha.detach(), soft.grad, self.free, self.step, beta,
                                              float(reg_weight), with_regularizer, compile=self.compile)
        self.alpha.grad = grad
        return rec_sq_norm, value

    @torch.no_grad()
    def rounding_counts(self) -> dict[str, int]:
        """How far rounding got: ``free`` rounding variables, how many are still ``soft`` (0 < h(α) < 1),
        how many weights hard rounding sends the other way than round-to-nearest (``flipped``), of ``weights``."""
        free = self.free.bool()
        h = rectified_sigmoid(self.alpha)
        return {"weights": self.free.numel(), "free": int(free.sum()),
                "soft": int((free & (h > 0) & (h < 1)).sum()),
                "flipped": int((free & ((self.alpha >= 0) != self.nearest_up)).sum())}

    def harden(self) -> None:
        """Switch to hard rounding: each weight rounds up where ``α ≥ 0``, down elsewhere."""
        self.hard = True
        self.alpha.requires_grad_(False)

    def regularizer(self, beta: float) -> torch.Tensor:
        """``Σ (1 - |2h - 1|^β)`` with autograd (the reference that tests compare :meth:`backward_` with)."""
        return (1 - (2 * rectified_sigmoid(self.alpha) - 1).abs().pow(beta)).sum()


class BetaSchedule:
    """AdaRound's annealing of the regulariser's exponent β.

    No regularisation during the first ``warmup`` fraction of ``iters`` (returns None); then β
    decays linearly from ``start`` to ``end`` (BRECQ / QDrop: 20 → 2 after 20 % warm-up).
    """

    def __init__(self, iters: int, warmup: float = 0.2, start: float = 20.0, end: float = 2.0):
        self.iters, self.start, self.end = iters, start, end
        self.warmup_steps = int(math.floor(warmup * iters))

    def __call__(self, step: int) -> float | None:
        if step < self.warmup_steps:
            return None
        progress = (step - self.warmup_steps) / max(self.iters - self.warmup_steps, 1)
        return self.end + (self.start - self.end) * max(0.0, 1.0 - progress)
