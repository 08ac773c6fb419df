"""Experiments: one config in, one result record out.

:class:`ExperimentConfig` names everything that decides a quantization result (model, bits,
calibration data source, set size, method, iterations, seed, generator settings);
:func:`run` makes the calibration set (synthesizing it if needed), quantizes, evaluates,
and writes one JSON record under ``results/ptq/`` keyed by the hash of the config. A config
whose record exists is not run again unless ``force=True``. Every experiment goes through
:func:`run`: ``mixq quantize`` (one config, or a set folder given by hand: ``calibration_set``),
``mixq grid`` and the notebooks (:func:`run_grid`), and both executors of a profile's plan
(:mod:`mixq_core.executor`). Here the calibration images are chosen and loaded; :mod:`mixq_core.quant`
only ever sees their tensors.

Data sources are the names of :mod:`mixq_core.sources`: ``real`` (real training images: the
upper bound), ``noise`` (Gaussian images: the lower bound), the four prompt strategies of
:mod:`mixq_core.prompts` (``single``, ``genq``, ``mixup``, ``mixup-embed``), whose images the
profile's generator makes, and the image-level baselines (``single-mixup``, ``single-cutmix``).
Synthetic sets are cached under ``results/sets/`` and shared by every experiment that needs the
same set.

A profile states the reconstruction engine its records come from (``engine``, default 1: the
profiles published before engine 2). Records keep the engine that made them; a profile of another
engine than this code's is read, never added to.

The two tracks run the same code. The ``mini`` track ships everything it needs; the
``imagenet`` track needs the ImageNet folders, given to :func:`run` (``imagenet_val``,
``imagenet_train``) or in the environment (``$MIXQ_IMAGENET_VAL``, ``$MIXQ_IMAGENET_TRAIN``).
They are not part of a record's identity: the same data in another place is the same
experiment. Everything runs on ``device`` (default: CUDA when available).

The record holds the config and its hash, full-precision and quantized top-1, per-unit
reconstruction traces (losses, gradient norms, held-out generalization error; per-step
values averaged over windows so a record stays small), diversity metrics of the
calibration set as the float model sees it, seconds per stage, and the provenance
(package versions, git commit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .analysis import diversity_metrics
from .data import (
    MANIFEST_NAME,
    calibration_dataset,
    eval_dataset,
    load_source,
    make_loader,
    mix_images,
    model_transform,
    subset,
    subset_indices,
)
from .errors import ConfigError, check_fields, unknown_name
from .models import atomic_write, evaluate, load_model, manifest_sha256, read_assets_manifest, sha256_of, shipped_sha256
from .profiles import load_profile
from .progress import progress
from .prompts import PromptConfig, load_vocabulary, selected_classes
from .quant import ENGINE_VERSION, QuantConfig, check_resume_dir, quantize
from .results import RESULTS_DIR, config_hash, load_record, save_record
from .sources import get_source, source_names
from .synthesis import SHIPPED_GENERATORS, load_pipeline, synthesize_set
from .validate import resolve_device

REAL_SOURCES = source_names(generated=False)
SYNTHETIC_SOURCES = source_names(generated=True)
DATA_SOURCES = source_names()
LEGACY_ENGINE = 1  # the engine of a profile or record that names none
PROBE_IMAGES = 256  # held-out real images whose loss gives the generalization error
TRACE_WINDOW = 25  # per-step values are stored as means over windows of this many steps
PTQ_KIND = "ptq"
SET_KIND = "ptq-sets"  # records of runs calibrated on a set folder given by hand, apart from the profiles' grids
SET_DATA = "set"  # the ``data`` of such a record
ROOT_ENV = {"eval": "MIXQ_IMAGENET_VAL", "train": "MIXQ_IMAGENET_TRAIN"}


def real_data_root(which: str, given: str | os.PathLike | None = None) -> str | None:
    """The folder of real ``eval`` or ``train`` images: ``given``, else its environment variable."""
    return str(given) if given is not None else os.environ.get(ROOT_ENV[which]) or None


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` checked (see :func:`mixq_core.validate.resolve_device`); None: CUDA when available, else the CPU."""
    return resolve_device(device)


def ptq_kind(profile: str) -> str:
    """Record folder of a profile's quantization runs: ``results/ptq/<profile>/``."""
    return f"{PTQ_KIND}/{profile}"


def eval_loader(profile: dict, model: torch.nn.Module, limit: int | None = None, seed: int = 0,
                root: str | os.PathLike | None = None):
    """The profile's real test images for ``model`` (a deterministic subset of ``limit`` if given, else of
    the profile's ``eval_limit`` if it sets one)."""
    dataset = eval_dataset(profile, model, real_data_root("eval", root))
    n = profile.get("eval_limit") if limit is None else limit
    if n is not None and not 1 <= n <= len(dataset):
        raise ConfigError(f"limit {n} is outside 1..{len(dataset)}, the test images of profile {profile['name']!r}")
    dataset = subset(dataset, n, seed)
    return make_loader(dataset, batch_size=profile["eval_batch_size"], num_workers=profile.get("loader_workers", 0))


def fp_top1(profile_name: str, model_name: str, limit: int | None = None, seed: int = 0,
            data_root: str | os.PathLike | None = None, device: str | torch.device | None = None) -> dict:
    """Top-1 of the full-precision model on the profile's real test data.

    ``limit`` evaluates a deterministic subset of that many images (the same for the same
    ``seed``); ``data_root`` is the data folder where the profile needs one (ImageNet val).
    """
    profile = load_profile(profile_name)
    model = load_model(profile, model_name).to(default_device(device))
    loader = eval_loader(profile, model, limit, seed, data_root)
    start = time.time()
    metrics = evaluate(model, loader, desc=f"eval {model_name}")
    return {"model": model_name, "profile": profile_name, **metrics, "seconds": round(time.time() - start, 2)}


def run_fp_evaluation(profile_name: str, model_name: str, limit: int | None = None, seed: int = 0,
                      force: bool = False, results_dir: str | os.PathLike = RESULTS_DIR,
                      data_root: str | os.PathLike | None = None, device: str | torch.device | None = None) -> dict:
    """:func:`fp_top1` stored as a ``fp`` result record; an existing record is reused unless ``force``."""
    config = {"profile": profile_name, "model": model_name, "limit": limit, "seed": seed,
              "weights_sha256": shipped_sha256(load_profile(profile_name), model_name)}
    if not force and (record := load_record("fp", config, results_dir)) is not None:
        return record
    save_record("fp", config, fp_top1(profile_name, model_name, limit, seed, data_root, device), results_dir)
    return load_record("fp", config, results_dir)


# ----------------------------------------------------------------------------- the experiment config


@dataclass(frozen=True)
class ExperimentConfig:
    """One quantization experiment. ``None`` fields take the profile's value.

    Attributes:
        profile: where models, data, generator and defaults come from (``smoke``, ``mini``, ...).
        model: a model of the profile.
        w_bits, a_bits: bit widths (2..8).
        data: calibration source, one of :data:`DATA_SOURCES`.
        k: classes per prompt for ``mixup`` / ``mixup-embed`` (ignored by the others).
        n_calib: calibration images (synthetic sets: rounded down to a multiple of the classes).
        method: ``rtn``, ``adaround``, ``brecq`` or ``qdrop``.
        iters: reconstruction steps per block.
        seed: seeds the calibration subset or synthetic set and the reconstruction.
        steps, guidance: the generator's solver steps and guidance scale.
        partners: mixup partners: ``random``, ``near`` or ``far`` (text similarity).
    """

    profile: str = "mini"
    model: str = "resnet18"
    w_bits: int = 4
    a_bits: int = 4
    data: str = "real"
    k: int = 2
    n_calib: int | None = None
    method: str = "qdrop"
    iters: int | None = None
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    partners: str = "random"

    def __post_init__(self):
        if get_source(self.data).mixes_classes and self.k < 2:
            raise ConfigError(f"data {self.data!r} mixes k ≥ 2 classes per prompt, got k={self.k}")

    def resolved(self) -> ExperimentConfig:
        """This config with every ``None`` replaced by the profile's value."""
        profile = load_profile(self.profile)
        if self.model not in profile["models"]:
            raise unknown_name(f"model of profile {self.profile!r}", self.model, profile["models"])
        defaults = {"n_calib": profile["n_calib"], "iters": profile.get("iters", 500), "steps": profile["steps"],
                    "guidance": profile["guidance"]}
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentConfig:
        check_fields(cls, data, "experiment config keys")
        return cls(**data)

    def identity(self) -> dict:
        """What the record is keyed by: the resolved config, with the fields that cannot affect
        this data source normalised (generator settings for ``real``/``noise``, ``k`` and
        ``partners`` for single-class sources), plus the profile settings that matter. The
        profile's name is part of it: each profile's runs are its own records."""
        config = self.resolved()
        profile = load_profile(self.profile)
        identity = config.to_dict()
        if config.data in REAL_SOURCES:  # generator settings do not touch these runs
            identity.update(steps=None, guidance=None)
        if not get_source(config.data).mixes_classes:
            identity.update(k=1 if config.data in SYNTHETIC_SOURCES else None, partners=None)
        identity["track"] = {key: profile.get(key) for key in ("dataset", "weights", "eval_data", "eval_limit",
                                                               "generator", "resolution", "quant_compile")}
        # Settings only some profiles have join the identity only where present, so adding
        # them did not change the identity (and record) of any earlier experiment.
        optional = {"pretrained_tag": (profile.get("pretrained_tags") or {}).get(config.model),
                    "first_last_8bit": profile.get("first_last_8bit"), "classes": profile.get("classes"),
                    "round_weight": profile_round_weight(profile, config.model)}
        identity["track"].update({key: value for key, value in optional.items() if value is not None})
        return identity


def profile_round_weight(profile: dict, model: str) -> float | None:
    """The AdaRound rounding-loss weight a profile sets for ``model`` (its ``round_weight`` mapping: the
    model's entry, else ``default``); None where the profile sets none (QuantConfig's 0.01 then applies)."""
    weights = profile.get("round_weight")
    if weights is None:
        return None
    if not isinstance(weights, dict):
        raise ConfigError(f"profile {profile['name']!r}: round_weight must map model names (or 'default') to "
                          f"numbers, got {weights!r}")
    return weights.get(model, weights.get("default"))


def profile_engine(profile: dict) -> int:
    """The reconstruction engine whose records a profile holds (``engine``; 1 where it names none)."""
    return profile.get("engine", LEGACY_ENGINE)


def record_engine(record: dict) -> int:
    """The reconstruction engine that made a record (1 for records older than the field)."""
    return record["metrics"].get("engine", LEGACY_ENGINE)


# ----------------------------------------------------------------------------- calibration data


def synthetic_set_folder(config: ExperimentConfig, results_dir: str | os.PathLike = RESULTS_DIR) -> Path:
    """Where the synthetic set of ``config`` is cached (shared by every experiment using the same set)."""
    config = config.resolved()
    profile = load_profile(config.profile)
    source = get_source(config.data)
    key = {"generator": profile["generator"], "steps": config.steps,
           "guidance": config.guidance, "strategy": source.prompts, "n": _set_size(config), "seed": config.seed,
           "k": config.k if source.mixes_classes else 1, "partners": config.partners,
           "filter_model": config.model if config.data == "genq" else None}
    # The weights that make the set: a retrained generator or GenQ filter model gives a new folder, not the old set.
    weights = shipped_weights(profile, config)
    key["weights_sha256"] = {"generator": weights["generator"] or [],  # [] for a generator not shipped here
                             "filter_model": weights["model"] if config.data == "genq" else None}
    if profile.get("classes"):
        key["classes"] = list(profile["classes"])
    return Path(results_dir) / "sets" / f"{source.prompts}-{config_hash(key)}"


def shipped_weights(profile: dict, config: ExperimentConfig) -> dict:
    """sha256 of the shipped weights an experiment depends on, from ``assets/manifest.json``.

    ``model``: its classifier's checkpoint; ``generator``: the profile generator's files, for generated
    sources only. Each is None where the profile does not use shipped weights (the ImageNet track).
    """
    generated = config.data in SYNTHETIC_SOURCES and profile["generator"] in SHIPPED_GENERATORS
    return {"model": shipped_sha256(profile, config.model),
            "generator": [manifest_sha256(f) for f in SHIPPED_GENERATORS[profile["generator"]]] if generated else None}


def stale_weights(record: dict) -> list[str]:
    """Which shipped weights changed since ``record`` was made (empty: none did), so it must be rerun.

    A record keeps the FP top-1 of the classifier it quantized, compared with the manifest's
    ``test_top1`` of the shipped checkpoint; records made since the manifest sha256s were stored in
    them (``weights_sha256``) are also compared hash by hash, which covers the generator.
    """
    profile = load_profile(record["config"]["profile"])
    model = record["config"]["model"]
    stale = []
    if profile["weights"] == "assets":
        entry = read_assets_manifest()["files"].get(f"{model}.safetensors", {})
        if record["metrics"]["fp_top1"] != entry.get("test_top1"):
            stale.append(f"{model} (FP top-1 {record['metrics']['fp_top1']}, shipped {entry.get('test_top1')})")
    made_with = record["metrics"].get("weights_sha256")
    if made_with is not None:
        now = shipped_weights(profile, ExperimentConfig(**record["metrics"]["config"]))
        stale += [f"{part} (sha256 changed)" for part in ("model", "generator") if made_with[part] != now[part]]
    return stale


def _profile_classes(profile: dict) -> tuple[str, ...] | None:
    """The classes a profile's synthetic sets draw from (``classes``: names or ids), or None for all."""
    return tuple(str(c) for c in profile["classes"]) if profile.get("classes") else None


def _set_size(config: ExperimentConfig) -> int:
    profile = load_profile(config.profile)
    vocabulary = load_vocabulary(profile["vocabulary"])
    chosen = PromptConfig(vocabulary=profile["vocabulary"], classes=_profile_classes(profile))
    classes = len(selected_classes(chosen, vocabulary))
    n = (config.n_calib // classes) * classes
    if n == 0:
        raise ConfigError(f"n_calib={config.n_calib} is below the {classes} classes a balanced synthetic set needs")
    return n


def genq_filter(profile: dict, name: str, device: str | torch.device | None = None):
    """The full-precision model whose energy score filters a genq set, and the transform feeding it."""
    model = load_model(profile, name).to(default_device(device))
    return model, model_transform(profile, model)


def synthetic_set(config: ExperimentConfig, results_dir: str | os.PathLike = RESULTS_DIR, pipe=None,
                  device: str | torch.device | None = None, shard: tuple[int, int] = (0, 1)) -> dict:
    """Generate (or resume) the synthetic set of ``config`` in its cache folder.

    ``shard=(i, n)`` makes only every ``n``-th image from the ``i``-th, so several workers can
    share one set; the run that finds every image present writes the manifest (and, for
    ``genq``, applies the energy filter). Returns the summary of
    :func:`mixq_core.synthesis.synthesize_set`, whose ``complete`` says whether the set is ready.
    """
    config = config.resolved()
    if config.data not in SYNTHETIC_SOURCES:
        raise ConfigError(f"data source {config.data!r} is not generated; synthetic sources: {SYNTHETIC_SOURCES}")
    folder = synthetic_set_folder(config, results_dir)
    if (folder / "manifest.jsonl").exists():
        return {"out": str(folder), "generated": 0, "complete": True}
    if shard != (0, 1):  # a share of the set, made side by side with the others (the Ray executor)
        return _synthesize_missing(config, folder, pipe, device, shard)
    with _exclusive(folder.with_name(f".{folder.name}.lock")):  # two grid workers may need the same whole set
        return _synthesize_missing(config, folder, pipe, device, shard)


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (a file made for it) while the block runs; waits for other holders."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _synthesize_missing(config: ExperimentConfig, folder: Path, pipe, device, shard: tuple[int, int]) -> dict:
    """:func:`synthetic_set`'s work once the set's lock is held (another holder may have finished the set)."""
    if (folder / "manifest.jsonl").exists():
        return {"out": str(folder), "generated": 0, "complete": True}
    profile = load_profile(config.profile)
    device = default_device(device)
    source = get_source(config.data)
    prompt_config = PromptConfig(strategy=source.prompts, n=_set_size(config), vocabulary=profile["vocabulary"],
                                 k=config.k if source.mixes_classes else None,
                                 seed=config.seed, partners=config.partners, classes=_profile_classes(profile))
    filter_model, transform = genq_filter(profile, config.model, device) if config.data == "genq" else (None, None)
    return synthesize_set(prompt_config, folder, generator=profile["generator"], steps=config.steps,
                          guidance=config.guidance, resolution=profile["resolution"], device=str(device),
                          dtype=profile.get("synthesis_dtype"), batch_size=profile.get("synthesis_batch_size", 64),
                          shard=shard, filter_model=filter_model,
                          filter_model_name=config.model if filter_model is not None else None,
                          pipe=pipe, **({"transform": transform} if transform else {}))


def calibration_data(config: ExperimentConfig, model: torch.nn.Module, results_dir: str | os.PathLike = RESULTS_DIR,
                     pipe=None, imagenet_train: str | os.PathLike | None = None,
                     ) -> tuple[torch.utils.data.Dataset, dict]:
    """The calibration images of ``config`` for ``model`` and what making them cost (``synthesis_seconds``).

    Synthetic sets are generated on ``model``'s device (see :func:`synthetic_set`);
    ``imagenet_train`` is the real training folder where the profile ships none (see :func:`real_data_root`).
    """
    config = config.resolved()
    profile = load_profile(config.profile)
    if config.data in REAL_SOURCES:
        dataset = calibration_dataset(config.data, profile, n=config.n_calib, seed=config.seed, model=model,
                                      root=real_data_root("train", imagenet_train))
        return dataset, {"synthesis_seconds": 0.0}
    start = time.time()
    folder = Path(synthetic_set(config, results_dir, pipe, device=next(model.parameters()).device)["out"])
    seconds = time.time() - start
    dataset = calibration_dataset(str(folder), profile, n=config.n_calib, seed=config.seed, model=model)
    if (mixing := get_source(config.data).image_mixing) is not None:
        dataset = mix_images(dataset, mixing, seed=config.seed)
    return dataset, {"synthesis_seconds": round(seconds, 1), "set_folder": str(folder)}


def probe_data(profile: dict, seed: int = 0, model: torch.nn.Module | None = None, n_calib: int = 0,
               imagenet_train: str | os.PathLike | None = None) -> torch.utils.data.Dataset | None:
    """Held-out real training images for the generalization probes, or None without real data.

    Fashion-MNIST: drawn from the last images of the split. ImageNet (when its train folder
    is given): the ``probe_images`` that follow the ``n_calib`` images of the ``real``
    calibration subset in the same seeded order, so the two never overlap.
    """
    n = profile.get("probe_images", PROBE_IMAGES)
    if profile["dataset"] != "fashion-mnist":
        root = real_data_root("train", imagenet_train)
        if root is None:
            return None
        train = load_source(profile["dataset"], root=root, transform=model_transform(profile, model))
        order = subset_indices(len(train), min(len(train), n_calib + n), seed)
        return torch.utils.data.Subset(train, order[n_calib:].tolist()) if len(order) > n_calib else None
    train = load_source(profile["dataset"], split="train")
    tail = torch.arange(len(train) - 4 * n, len(train))
    chosen = tail[torch.randperm(len(tail), generator=torch.Generator().manual_seed(seed))[:n]]
    return torch.utils.data.Subset(train, chosen.tolist())


# ----------------------------------------------------------------------------- traces


def _windowed(values: list[float], window: int = TRACE_WINDOW) -> list[float]:
    return [sum(values[i:i + window]) / len(values[i:i + window]) for i in range(0, len(values), window)]


def compact_trace(trace) -> list[dict]:
    """Per-unit summary of a :class:`~mixq_core.quant.probes.QuantTrace`: windowed per-step values."""
    units = []
    for unit in trace.units:
        units.append({
            "name": unit.name, "kind": unit.kind, "iters": unit.iters, "seconds": round(unit.seconds, 2),
            "loss_before": unit.loss_before, "loss_after": unit.loss_after, "probe_loss_after": unit.probe_loss_after,
            "soft_share": unit.soft_share, "flipped_share": unit.flipped_share, "cache": unit.cache,
            "rec_loss": _windowed(unit.rec_loss), "grad_norm_rounding": _windowed(unit.grad_norm_rounding),
            "grad_norm_act_step": _windowed(unit.grad_norm_act_step), "probe_steps": unit.probe_steps,
            "probe_loss": unit.probe_loss, "probe_calib_loss": unit.probe_calib_loss,
            "generalization_error": unit.generalization_error(),
        })
    return units


# ----------------------------------------------------------------------------- run


def quant_config(config: ExperimentConfig):
    """The :class:`~mixq_core.quant.QuantConfig` that :func:`run` quantizes ``config`` with (its profile's settings)."""
    config = config.resolved()
    profile = load_profile(config.profile)
    weight = profile_round_weight(profile, config.model)
    return QuantConfig(w_bits=config.w_bits, a_bits=config.a_bits, method=config.method, iters=config.iters,
                       seed=config.seed, probe_every=max(1, config.iters // 10),
                       compile=profile.get("quant_compile", True), first_last_8bit=profile.get("first_last_8bit", True),
                       **({"round_weight": weight} if weight is not None else {}))


def set_identity(config: ExperimentConfig, calibration_set: str | os.PathLike) -> dict:
    """What the record of ``config`` calibrated on the set folder ``calibration_set`` is keyed by: the config's
    identity, with the set in place of its data source. The set is known by the sha256 of its manifest (which
    holds every image's sha256), so the same set in another folder is the same experiment."""
    identity = config.resolved().identity()
    identity.update(data=SET_DATA, steps=None, guidance=None, k=None, partners=None,
                    set_manifest_sha256=sha256_of(Path(calibration_set) / MANIFEST_NAME))
    return identity


def run(config: ExperimentConfig, force: bool = False, results_dir: str | os.PathLike = RESULTS_DIR,
        pipe=None, imagenet_val: str | os.PathLike | None = None, imagenet_train: str | os.PathLike | None = None,
        device: str | torch.device | None = None, resume_dir: str | os.PathLike | None = None,
        calibration_set: str | os.PathLike | None = None, trace_file: str | os.PathLike | None = None) -> dict:
    """Run ``config`` (or reuse its record) and return the result record.

    ``pipe``: an already loaded generator pipeline, to save loading it once per experiment.
    ``imagenet_val``, ``imagenet_train``: the real-data folders of the ImageNet track (see
    :func:`real_data_root`). ``device``: where synthesis, quantization and evaluation run.
    ``resume_dir``: a folder keeping the reconstruction's state after each finished unit, so that a run cut
    short goes on from there when called again (see :func:`resume_folder` and :mod:`mixq_core.quant.resume`).
    It is not part of the record: a resumed run gives the record an uninterrupted one gives.
    ``calibration_set``: a set folder (made by ``mixq synthesize``, or by hand) to calibrate with instead of
    ``config.data``'s source; such one-off records are kept apart from the profile's grid, under
    ``ptq-sets/<profile>/`` (see :func:`set_identity`).
    ``trace_file``: also write the whole reconstruction trace there (every step; the record keeps means over
    windows), when the experiment runs rather than its record being reused.
    """
    resolved = config.resolved()
    if calibration_set is None:
        identity, kind = resolved.identity(), ptq_kind(resolved.profile)
    else:
        identity, kind = set_identity(resolved, calibration_set), f"{SET_KIND}/{resolved.profile}"
    profile = load_profile(resolved.profile)
    record = None if force else load_record(kind, identity, results_dir)
    if record is not None and record_engine(record) == profile_engine(profile):
        return record
    if profile_engine(profile) != ENGINE_VERSION:
        raise ConfigError(
            f"profile {resolved.profile!r} holds records of reconstruction engine {profile_engine(profile)}, and this "
            f"code runs engine {ENGINE_VERSION}: its records can be read but not added to. Run the experiment under a "
            f"profile of engine {ENGINE_VERSION} (mini, mini-short, mini-long, smoke, imagenet, or your own)")
    quant_settings = quant_config(resolved)  # a bad method or bit width fails here, before the long work
    if resume_dir is not None:
        check_resume_dir(resume_dir)
    device = default_device(device)
    timings = {}
    start = time.time()
    model = load_model(profile, resolved.model).to(device)
    test = eval_loader(profile, model, root=imagenet_val)
    fp = run_fp_evaluation(resolved.profile, resolved.model, results_dir=results_dir, data_root=imagenet_val,
                           device=device)["metrics"]
    timings["setup_seconds"] = round(time.time() - start, 1)
    if calibration_set is None:
        calib, made = calibration_data(resolved, model, results_dir, pipe, imagenet_train)
    else:
        calib = calibration_dataset(str(calibration_set), profile, n=resolved.n_calib, seed=resolved.seed, model=model)
        made = {"synthesis_seconds": 0.0, "set_folder": str(Path(calibration_set).resolve())}
    timings["synthesis_seconds"] = made["synthesis_seconds"]
    start = time.time()
    diversity = diversity_metrics(model, calib)
    timings["diversity_seconds"] = round(time.time() - start, 1)
    probes = probe_data(profile, resolved.seed, model, resolved.n_calib, imagenet_train)
    qmodel, trace = quantize(model, quant_settings, make_loader(calib, batch_size=256),
                             make_loader(probes, batch_size=256) if probes is not None else None, resume_dir=resume_dir)
    timings["quantize_seconds"] = round(trace.seconds, 1)
    start = time.time()
    data = resolved.data if calibration_set is None else SET_DATA
    metrics = evaluate(qmodel, test, desc=f"eval {resolved.model} W{resolved.w_bits}A{resolved.a_bits} {data}")
    timings["eval_seconds"] = round(time.time() - start, 1)
    if trace_file is not None:
        atomic_write(trace_file, lambda tmp: Path(tmp).write_text(trace.to_json()))
    result = {
        "profile": resolved.profile, "config": {**resolved.to_dict(), "data": data}, "fp_top1": fp["top1"],
        "top1": metrics["top1"],
        "drop": round(fp["top1"] - metrics["top1"], 2), "n_eval": metrics["n_images"], "n_calib": len(calib),
        "set_folder": made.get("set_folder"), "diversity": diversity, "quant_config": quant_settings.to_dict(),
        "units": compact_trace(trace), "resumed_units": trace.resumed_units, "seconds": timings,
        "device": _device_name(device), "engine": trace.engine, "weights_sha256": shipped_weights(profile, resolved),
    }
    save_record(kind, identity, result, results_dir)
    return load_record(kind, identity, results_dir)


def resume_folder(config: ExperimentConfig, root: str | os.PathLike) -> Path:
    """The resume folder of ``config`` under ``root``: one per experiment, named by its record's hash."""
    return Path(root) / config_hash(config.resolved().identity())


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_grid(configs: list[ExperimentConfig], force: bool = False, results_dir: str | os.PathLike = RESULTS_DIR,
             device: str | torch.device | None = None, share: bool = False,
             resume_root: str | os.PathLike | None = None, **roots) -> list[dict]:
    """:func:`run` for each config, loading the generator once if any config needs it.

    ``share``: work beside other processes running the same grid. An experiment another process is
    running (it holds the experiment's lock) is skipped, so each experiment runs once however many
    workers there are; only the records this process made or found are returned.
    ``resume_root``: keep each run's reconstruction state in its :func:`resume_folder` under this folder, so
    that a grid stopped mid-run (a session's end, a reboot) goes on from the last finished unit when started
    again. A folder is deleted once its record is written.
    ``roots``: ``imagenet_val`` / ``imagenet_train`` folders, passed on to :func:`run`.
    """
    device = default_device(device)
    pipe = grid_pipeline(configs if force else pending_configs(configs, results_dir), device)

    def run_one(config: ExperimentConfig) -> dict:
        folder = None if resume_root is None else resume_folder(config, resume_root)
        record = run(config, force, results_dir, pipe, device=device, resume_dir=folder, **roots)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return record

    if not share:
        return [run_one(c) for c in progress(configs, desc="experiments")]
    records = []
    for config in progress(configs, desc="experiments"):
        lock = Path(results_dir) / "locks" / f"{config_hash(config.resolved().identity())}.lock"
        with _try_exclusive(lock) as held:
            if held:
                records.append(run_one(config))
    return records


@contextlib.contextmanager
def _try_exclusive(lock_path: Path):
    """Like :func:`_exclusive`, without waiting: yields False (and holds nothing) when another process holds it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pending_configs(configs: list[ExperimentConfig], results_dir: str | os.PathLike = RESULTS_DIR,
                    ) -> list[ExperimentConfig]:
    """The configs whose record does not exist yet."""
    return [c for c in configs if stored_record(c, results_dir) is None]


def stored_record(config: ExperimentConfig, results_dir: str | os.PathLike = RESULTS_DIR) -> dict | None:
    """The record of ``config`` under ``results_dir``, or None; nothing is run."""
    return load_record(ptq_kind(config.profile), config.resolved().identity(), results_dir)


def grid_pipeline(configs: list[ExperimentConfig], device: str | torch.device | None = None):
    """The generator pipeline of ``configs``' profile, loaded once on ``device`` when one of
    them needs a synthetic set; None otherwise."""
    if not any(c.data in SYNTHETIC_SOURCES for c in configs):
        return None
    profile = load_profile(configs[0].profile)
    return load_pipeline(profile["generator"], device=str(default_device(device)),
                         dtype=profile.get("synthesis_dtype"))


GRID_SECTIONS = ("grid_cnn", "grid_vit")  # a profile's main tables (03, 04); its ``ablations`` are apart


def grid_configs(profile_name: str, section: str = "grid_cnn") -> list[ExperimentConfig]:
    """The experiments a profile's grid section (``grid_cnn``, ``grid_vit``) lists: models × bits × data × seeds.

    A section may hold ``extra``: sub-grids that change some of its fields, for cells that are worth running
    for some models only (e.g. W2A2 for resnet18, where mobilenetv2_100 already collapses at W2A4).
    """
    profile = load_profile(profile_name)
    if not profile.get(section):  # absent, or set to null by a profile that extends another
        present = [name for name in (*GRID_SECTIONS, "ablations") if profile.get(name)]
        raise ConfigError(f"profile {profile_name!r} has no {section!r} section; its sections: "
                          f"{', '.join(present) or 'none'}")
    base = {k: v for k, v in profile[section].items() if k != "extra"}
    configs = []
    for grid in [base, *({**base, **sub} for sub in profile[section].get("extra", []))]:
        configs += [ExperimentConfig(profile=profile_name, model=model, w_bits=w, a_bits=a, data=data, seed=seed,
                                     n_calib=grid.get("n_calib"), iters=grid.get("iters"))
                    for model in grid["models"] for w, a in grid["bits"] for data in grid["data"]
                    for seed in grid["seeds"]]
    return list(dict.fromkeys(configs))


def grid_section_configs(profile_name: str, sections: tuple[str, ...] = GRID_SECTIONS) -> list[ExperimentConfig]:
    """The configs of every grid section in ``sections`` that the profile has (its main tables), in order."""
    profile = load_profile(profile_name)
    return [c for section in sections if profile.get(section) for c in grid_configs(profile_name, section)]


def ablation_configs(profile_name: str) -> dict[str, list[ExperimentConfig]]:
    """The profile's ``ablations``: one factor varied at a time around one cell.

    Returns ``{factor: configs}`` for ``k`` (1 = single-class, 2..4 = mixup), ``n_calib``
    (single vs mixup at each size), ``guidance`` (mixup), ``partners`` (mixup with random,
    near and far partners) and ``mixing`` (prompt-level ``mixup`` vs embedding-level ``mixup-embed``).
    """
    profile = load_profile(profile_name)
    if not profile.get("ablations"):
        raise ConfigError(f"profile {profile_name!r} has no 'ablations' section")
    spec = profile["ablations"]
    w_bits, a_bits = spec["bits"]

    def cell(seed: int, **changes) -> ExperimentConfig:
        base = {"profile": profile_name, "model": spec["model"], "w_bits": w_bits, "a_bits": a_bits, "data": "mixup",
                "n_calib": spec["n_calib"], "iters": spec["iters"], "seed": seed}
        return ExperimentConfig(**{**base, **changes})

    seeds = spec["seeds"]
    return {
        "k": [cell(s, data="single") if k == 1 else cell(s, k=k) for k in spec["k"] for s in seeds],
        "n_calib": [cell(s, data=d, n_calib=n) for n in spec["n_calib_sizes"] for d in ("single", "mixup")
                    for s in seeds],
        "guidance": [cell(s, guidance=g) for g in spec["guidance"] for s in seeds],
        "partners": [cell(s, partners=p) for p in ("random", *spec["partners"]) for s in seeds],
        "mixing": [cell(s, data=d) for d in ("mixup", "mixup-embed") for s in seeds],
    }
