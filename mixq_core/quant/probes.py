"""What reconstruction records: per-step losses and gradient norms, held-out losses, as a JSON-able trace.

The paper's question is *why* synthetic calibration data helps, so for every reconstructed unit
(block or layer) the trace holds, per step:

- ``rec_loss``: the reconstruction loss on the calibration batch,
- ``round_loss``: AdaRound's rounding regulariser (already multiplied by its weight; 0 in warm-up),
- ``grad_norm_rounding`` / ``grad_norm_act_step``: the L2 norm of the gradient of the
  *reconstruction loss alone* with respect to the rounding parameters (AdaRound's α) and the
  activation steps, separately;

and, when a held-out batch of real images is given, every ``probe_every`` steps:

- ``probe_loss``: the unit's reconstruction loss on the held-out images,
- ``probe_calib_loss``: the same loss, computed the same way (no drop, current soft rounding) on a
  fixed calibration subset of the same size, so ``probe_loss - probe_calib_loss`` is the
  generalization error of the unit at that step.

Values are kept as tensors on the model's device during the loop (no host synchronisation) and
turned into lists once the unit is done.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch

from ..errors import MixQError

STEP_FIELDS = ("rec_loss", "round_loss", "grad_norm_rounding", "grad_norm_act_step")


class ReconstructionError(MixQError, FloatingPointError):
    """A reconstruction step produced a NaN or infinite value; the unit is named in the message."""


@dataclass
class UnitTrace:
    """The record of one reconstructed unit (see the module docstring for the per-step fields)."""

    name: str
    kind: str
    iters: int = 0
    seconds: float = 0.0
    iters_per_second: float = 0.0
    loss_before: float | None = None  # reconstruction loss with rounding to nearest, before training
    loss_after: float | None = None  # the same after hard rounding, on the same calibration inputs
    probe_loss_after: float | None = None
    soft_share: float | None = None  # free rounding variables still soft (0 < h(α) < 1) before hardening
    flipped_share: float | None = None  # weights hard-rounded the other way than round-to-nearest
    cache: str | None = None  # where its cached inputs and outputs were kept: "device" or "cpu" (pinned memory)
    rec_loss: list[float] = field(default_factory=list)
    round_loss: list[float] = field(default_factory=list)
    grad_norm_rounding: list[float] = field(default_factory=list)
    grad_norm_act_step: list[float] = field(default_factory=list)
    probe_steps: list[int] = field(default_factory=list)
    probe_loss: list[float] = field(default_factory=list)
    probe_calib_loss: list[float] = field(default_factory=list)

    def generalization_error(self) -> list[float]:
        """``probe_loss - probe_calib_loss`` at each probed step."""
        return [p - c for p, c in zip(self.probe_loss, self.probe_calib_loss, strict=True)]


@dataclass
class QuantTrace:
    """Everything :func:`mixq_core.quant.quantize` records: the config, timings and one trace per unit."""

    config: dict
    engine: int | None = None  # the reconstruction engine (mixq_core.quant.ENGINE_VERSION) that ran
    units: list[UnitTrace] = field(default_factory=list)
    seconds: float = 0.0
    calibration_seconds: float = 0.0
    n_calib: int = 0
    n_probe: int = 0
    resumed_units: int = 0  # units loaded from a resume folder instead of reconstructed by this call

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> QuantTrace:
        units = [UnitTrace(**unit) for unit in data.get("units", [])]
        return cls(**{**data, "units": units})


def grad_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of the gradients of ``parameters`` taken together (0 when none has a gradient)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=parameters[0].device if parameters else "cpu")
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class StepRecorder:
    """Collects per-step values of one unit on the device and checks them for NaN/inf every few steps.

    Args:
        unit: the unit's trace to fill.
        iters: number of steps.
        device: where the values are kept.
        check_every: steps between two finiteness checks (each costs one host synchronisation).
    """

    def __init__(self, unit: UnitTrace, iters: int, device: torch.device, check_every: int = 100):
        self.unit = unit
        self.values = torch.zeros(iters, len(STEP_FIELDS), device=device)
        self.check_every = max(1, check_every)
        self.checked = 0
        self.probes: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def record(self, step: int, rec_loss, round_loss, grad_norm_rounding, grad_norm_act_step) -> None:
        """Store the step's values (tensors) and, every ``check_every`` steps, check them."""
        self.values[step] = torch.stack([torch.as_tensor(v, device=self.values.device, dtype=self.values.dtype)
                                         for v in (rec_loss, round_loss, grad_norm_rounding, grad_norm_act_step)])
        if step + 1 - self.checked >= self.check_every:
            self.check(step + 1)

    def record_probe(self, step: int, probe_loss: torch.Tensor, calib_loss: torch.Tensor) -> None:
        self.probes.append((step, probe_loss.detach(), calib_loss.detach()))

    def check(self, upto: int) -> None:
        """Raise :class:`ReconstructionError` if a value of steps ``checked .. upto`` is not finite."""
        window = self.values[self.checked : upto]
        if window.numel() and not bool(torch.isfinite(window).all()):
            bad_row = int((~torch.isfinite(window)).any(dim=1).nonzero()[0]) + self.checked
            row = self.values[bad_row].tolist()
            bad_fields = [name for name, v in zip(STEP_FIELDS, row, strict=True) if not math.isfinite(v)]
            raise ReconstructionError(
                f"reconstruction of {self.unit.name} ({self.unit.kind}) gave a non-finite {', '.join(bad_fields)} "
                f"at step {bad_row}; stopped, no quantized model is returned. Lower lr_act or check the "
                "calibration images for NaN/inf")
        self.checked = upto

    def finish(self, steps_done: int) -> None:
        """Check the remaining steps and copy the values into the unit's trace as lists."""
        self.check(steps_done)
        columns = self.values[:steps_done].T.tolist()
        for name, column in zip(STEP_FIELDS, columns, strict=True):
            setattr(self.unit, name, column)
        self.unit.probe_steps = [step for step, _, _ in self.probes]
        self.unit.probe_loss = [float(p) for _, p, _ in self.probes]
        self.unit.probe_calib_loss = [float(c) for _, _, c in self.probes]
