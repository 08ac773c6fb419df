"""Resumable reconstruction: the quantized state after each finished unit, kept in a folder.

``quantize(..., resume_dir=DIR)`` claims ``DIR`` for its run and, after every unit it finishes, writes

- ``unit-0007.safetensors``: what reconstruction changed in unit 7 — the frozen (hard-rounded) weight of each
  of its layers and the learned step of each of its activation quantizers — and the random number
  generators' state after it (the CPU's, and the GPU's where the run is on one);
- ``state.json``, replaced atomically after the unit's file: the run the folder belongs to (its
  :func:`fingerprint`), the traces of the finished units and the seconds spent so far.

A rerun with the same folder repeats the deterministic set-up (BatchNorm folding, wrapping, range
calibration), loads the finished units and the random state, and goes on with the next unit. Its result is
the one an uninterrupted run gives: on a CPU bit for bit, because every step after the last finished unit
sees the same weights, steps, cached inputs and random numbers. A folder of another run is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import MixQError
from ..models import atomic_write
from ..validate import check_output_dir, read_json
from .modules import QuantLayer
from .quantizers import UniformQuantizer

STATE_NAME = "state.json"
UNIT_FILE = re.compile(r"unit-\d{4}\.safetensors")
FORMAT = 1  # of state.json and the unit files; a folder of another format is refused


class ResumeError(MixQError, ValueError):
    """A resume folder that belongs to another run, or that is not a resume folder."""


def tensors_sha256(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``(name, tensor)`` pairs: equal exactly when all are."""
    digest = hashlib.sha256()
    for name, tensor in named:
        flat = tensor.detach().contiguous().cpu().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def fingerprint(config: dict, engine: int, model: nn.Module, images: torch.Tensor, probe_images: torch.Tensor | None,
                units: list[str], device: torch.device) -> dict:
    """What makes two runs the same run: the settings that change the result (``config``), the engine, the
    float model's weights, the calibration and probe images, the units (names and kinds) and the device type
    (a run's random numbers come from the generator of its device)."""
    return {"engine": engine, "config": config, "model_sha256": tensors_sha256(model.state_dict().items()),
            "calib_sha256": tensors_sha256([("images", images)]),
            "probe_sha256": None if probe_images is None else tensors_sha256([("images", probe_images)]),
            "units": units, "device": device.type}


def check_resume_dir(path: str | os.PathLike) -> Path:
    """Check, before any long work, that ``path`` can hold a run's state: a new folder, an empty one or a resume
    folder, on a writable disk. Raises :class:`ResumeError` or :class:`~mixq_core.errors.OutputPathError`."""
    path = check_output_dir(path, "resume folder")
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir()
                         if p.name != STATE_NAME and not UNIT_FILE.fullmatch(p.name) and not p.name.startswith("."))
        if foreign:
            raise ResumeError(f"{path} is not a resume folder (it holds {', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder")
    return path


class ResumeFolder:
    """The folder of one run's reconstruction state (see the module docstring).

    Args:
        path: the folder; created when missing. Checked at once with :func:`check_resume_dir`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = check_resume_dir(path)
        self.state: dict | None = None

    def start(self, fingerprint: dict) -> list[dict]:
        """Claim the folder for the run ``fingerprint`` describes; return the traces (dicts) of its finished
        units, none for a new folder. Raises :class:`ResumeError` if the folder holds another run."""
        fingerprint = json.loads(json.dumps(fingerprint))  # as stored: tuples become lists
        state_file = self.path / STATE_NAME
        if not state_file.exists():
            self.state = {"format": FORMAT, "fingerprint": fingerprint, "units": [], "seconds": 0.0}
            self._write_state()
            return []
        state = read_json(state_file, f"delete the folder {self.path} to start the run afresh")
        if state.get("format") != FORMAT:
            raise ResumeError(f"{self.path} holds reconstruction state of format {state.get('format')!r}, this code "
                              f"reads format {FORMAT}; delete the folder to start the run afresh")
        if state.get("fingerprint") != fingerprint:
            raise ResumeError(f"{self.path} holds the reconstruction of another run (it differs in "
                              f"{_differences(state.get('fingerprint') or {}, fingerprint)}); give this run a new or "
                              "empty folder, or delete that one")
        self.state = state
        return state["units"]

    @property
    def seconds(self) -> float:
        """Seconds spent by earlier calls on this run, up to their last finished unit."""
        return self.state["seconds"] if self.state else 0.0

    def unit_file(self, index: int) -> Path:
        return self.path / f"unit-{index:04d}.safetensors"

    @torch.no_grad()
    def restore(self, model: nn.Module, done: int, device: torch.device) -> None:
        """Load units ``0 .. done - 1`` into the prepared ``model`` and the random state saved after the last."""
        tensors: dict[str, torch.Tensor] = {}
        for index in range(done):
            file = self.unit_file(index)
            if not file.exists():
                raise ResumeError(f"{file} is missing, though {self.path / STATE_NAME} counts unit {index} as done; "
                                  "delete the folder to start the run afresh")
            tensors = load_file(str(file))
            for key, value in tensors.items():
                module_name, _, field = key.rpartition(".")
                if module_name == "rng":
                    continue
                module = model.get_submodule(module_name)
                if field == "frozen_weight":
                    module.frozen_weight = value.to(device)
                else:
                    module.step.copy_(value)
        torch.set_rng_state(tensors["rng.cpu"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)

    def save(self, index: int, unit_name: str, unit: nn.Module, trace: dict, seconds: float,
             device: torch.device) -> None:
        """Record finished unit ``index`` (its module ``unit``, named ``unit_name`` in the model, and its trace)
        and the random state now; ``seconds``: all seconds spent on the run so far."""
        tensors = learned_tensors(unit, unit_name)
        tensors["rng.cpu"] = torch.get_rng_state()
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        atomic_write(self.unit_file(index), lambda tmp: save_file(tensors, tmp))
        self.state["units"] = self.state["units"][:index] + [trace]
        self.state["seconds"] = seconds
        self._write_state()

    def _write_state(self) -> None:
        text = json.dumps(self.state)
        atomic_write(self.path / STATE_NAME, lambda tmp: Path(tmp).write_text(text))


def learned_tensors(unit: nn.Module, unit_name: str) -> dict[str, torch.Tensor]:
    """What reconstruction changed in a finished ``unit``, on the CPU, keyed by module name in the model: each
    layer's ``frozen_weight`` and each initialised activation quantizer's ``step``."""
    tensors = {}
    for name, module in unit.named_modules(prefix=unit_name):
        if isinstance(module, QuantLayer):
            tensors[f"{name}.frozen_weight"] = module.frozen_weight.detach().cpu()
        elif isinstance(module, UniformQuantizer) and module.learn_step and module.initialized:
            tensors[f"{name}.step"] = module.step.detach().cpu()
    return tensors


def _differences(stored: dict, current: dict) -> str:
    """The parts of two fingerprints that differ, in words (config fields by name, with both values)."""
    words = {"engine": "reconstruction engine", "model_sha256": "model weights", "calib_sha256": "calibration images",
             "probe_sha256": "probe images", "units": "units of the model", "device": "device type"}
    old, new = stored.get("config") or {}, current["config"]
    parts = [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
             if old.get(key) != new.get(key)]
    parts += [words.get(key, key) for key in words if stored.get(key) != current.get(key)]
    return ", ".join(parts) or "its format"
