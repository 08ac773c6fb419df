"""Text-to-image generation of calibration sets: resumable, shardable, reproducible per image.

A set is a folder::

    config.json        what made the set: prompt config, generator, steps, guidance, …
    images/<id>.png    one image per prompt record; its manifest line is stored inside the PNG
    manifest.jsonl     one line per image, written once every image of the set exists
    candidates.jsonl   (``genq`` only) every generated candidate; manifest.jsonl then lists
                       the ones kept by the energy filter

Guarantees:

- **Per-image seeds.** Image ``i`` starts from noise drawn on the CPU by its own
  ``torch.Generator`` seeded with the record's seed, so its content does not depend on the
  batch it is generated in, on the order, or on the shard.
- **Bit-identical pixels.** Batched convolutions and matrix products may round differently
  for different batch *shapes* (measured on CPU: up to 7e-7 in [0, 1], i.e. about one pixel
  in 40 000 off by one grey level). Every pipeline call is therefore padded to exactly
  ``batch_size`` images, so for a given batch size an image is bit-identical however the
  set is ordered, sharded or resumed. ``exact=True`` goes further: every pipeline call holds
  one image, so pixels are bit-identical at *any* batch size (``batch_size`` then only sets
  how often progress is reported), at the cost of batching (about 5x slower on a 2-core CPU).
- **Resumable.** Each PNG is written to a temporary name and renamed, so an image exists
  whole or not at all; a rerun generates only the missing images and ends with exactly
  the requested ones. ``config.json`` makes a rerun with another configuration refuse
  rather than mix two sets in one folder.
- **Shards.** ``shard=(i, n)`` generates records ``i, i+n, i+2n, …``; shards may run at the
  same time on several machines sharing the folder. The manifest is written by whichever
  run finds the set complete; if two shards finish at the same instant and neither sees
  the other's last image, rerunning any shard only writes the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .data import MANIFEST_NAME, mini_image_transform
from .errors import ConfigError, DatasetLayoutError, MixQError, unknown_name
from .generator import TEXT_ENCODER_PACKAGE, WORLDS, generator_dir, generator_name, mini_text_encoder
from .models import atomic_write, verified_asset
from .progress import progress, quiet
from .prompts import PromptConfig, PromptRecord, cosine_similarity, load_vocabulary, make_prompts, validate
from .validate import GUIDANCE, RESOLUTION, STEPS, check_output_dir, read_json, read_jsonl, resolve_device

CONFIG_NAME = "config.json"
CANDIDATES_NAME = "candidates.jsonl"
IMAGES_DIR = "images"
PNG_TEXT_KEY = "mixq"  # PNG text chunk holding the image's manifest line

# DPM-Solver++ (2nd order, multistep) reaches Stable Diffusion's quality in ~20-25 steps.
DEFAULT_STEPS = 25
# Stable Diffusion's customary classifier-free guidance; the mini profile sets its own (3.0).
DEFAULT_GUIDANCE = 7.5
STABLE_DIFFUSION_1_5 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MINI_GENERATOR_COMMAND = "mixq train-mini-generator"
# The mini generators by name: the plain one and the variants of the generator worlds (mini-gap, ...).
GENERATORS = {generator_name(world): generator_dir(world) for world in WORLDS}
# A polysemy world draws the same pictures as its world without polysemy, so it reuses that world's VAE:
# the two generators then differ in their captions (and UNet) only.
VAE_SHARED_WITH = {"polysemy": "plain", "gap+polysemy": "gap"}


def _build_command(world: str) -> str:
    if world == "plain":
        return MINI_GENERATOR_COMMAND
    command = f"{MINI_GENERATOR_COMMAND} --world {world}"
    if world in VAE_SHARED_WITH:
        command += f" --vae-from assets/{generator_dir(VAE_SHARED_WITH[world]).name}"
    return command


BUILD_COMMANDS = {generator_name(world): _build_command(world) for world in WORLDS}
# Weight files of the mini generators, as keyed in assets/manifest.json (hash-checked on loading).
SHIPPED_GENERATORS = {name: [f"{folder.name}/{part}/diffusion_pytorch_model.safetensors" for part in ("unet", "vae")]
                      for name, folder in GENERATORS.items()}
# Components a pipeline may list but that generation here never uses (the safety checker is off).
UNUSED_COMPONENTS = {"safety_checker", "feature_extractor", "image_encoder"}
# A pipeline folder whose model_index.json names a Python package under this key ships no text
# encoder: it comes from that package (the mini generator's all-MiniLM-L6-v2).
TEXT_ENCODER_PACKAGE_KEY = "_text_encoder_package"
PACKAGED_COMPONENTS = {"text_encoder", "tokenizer"}
_INDEX_FIX = "restore the pipeline folder (git checkout, or save_pretrained again)"


class GeneratorNotFoundError(MixQError, FileNotFoundError):
    """A text-to-image pipeline whose files are missing and cannot be downloaded."""


# ----------------------------------------------------------------------------- loading a pipeline


def _component_requirements(class_name: str) -> list[tuple[str, ...]]:
    """Files a pipeline component's folder needs, each as a tuple of acceptable alternatives."""
    if "Scheduler" in class_name:
        return [("scheduler_config.json",)]
    if "Tokenizer" in class_name:
        return [("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "tokenizer.model")]
    if "Processor" in class_name or "FeatureExtractor" in class_name:
        return [("preprocessor_config.json",)]
    return [("config.json",), ("*.safetensors", "*.bin")]


def missing_pipeline_files(folder: str | os.PathLike) -> list[str]:
    """Files a diffusers pipeline folder lacks (relative paths; alternatives joined by ``|``).

    Reads ``model_index.json`` for the component list; components the synthesis never
    loads (safety checker, feature extractor) are not required.
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        return ["model_index.json"]
    index = read_json(index_path, _INDEX_FIX)
    supplied = PACKAGED_COMPONENTS if index.get(TEXT_ENCODER_PACKAGE_KEY) else set()
    missing = []
    for component, spec in sorted(index.items()):
        if component.startswith("_") or component in UNUSED_COMPONENTS | supplied:
            continue
        if not isinstance(spec, list) or len(spec) != 2 or None in spec:
            continue  # a config value or an absent optional component
        for alternatives in _component_requirements(spec[1]):
            if not any(any((folder / component).glob(pattern)) for pattern in alternatives):
                missing.append(f"{component}/{'|'.join(alternatives)}")
    return missing


def resolve_generator(name_or_path: str | os.PathLike) -> Path | str:
    """A local folder (``Path``) for an alias such as ``mini`` or an existing path, else the hub id (``str``)."""
    if str(name_or_path) in GENERATORS:
        return Path(GENERATORS[str(name_or_path)])
    path = Path(name_or_path).expanduser()
    if path.exists() or str(name_or_path).startswith((".", "/", "~")):
        return path
    return str(name_or_path)


def _resolve_dtype(dtype: torch.dtype | str | None, device: str) -> torch.dtype:
    """``None`` → float16 on CUDA (Stable Diffusion's usual precision), float32 elsewhere."""
    if dtype is None:
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}
    if dtype not in names:
        raise unknown_name("dtype", dtype, names)
    return names[dtype]


@contextlib.contextmanager
def _quiet_hf_loading() -> Iterator[None]:
    """Silence diffusers/transformers loading chatter (expected-type warnings, load reports, bars)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    saved = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    bars = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    if quiet():
        diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(saved[0])
        transformers_logging.set_verbosity(saved[1])
        if bars:
            diffusers_logging.enable_progress_bar()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def _missing_in_hub_cache(repo_id: str) -> list[str]:
    """What the local Hugging Face cache lacks of pipeline ``repo_id``."""
    from huggingface_hub import try_to_load_from_cache

    index = try_to_load_from_cache(repo_id, "model_index.json")
    return missing_pipeline_files(Path(index).parent) if isinstance(index, str) else ["model_index.json"]


def load_pipeline(name_or_path: str | os.PathLike = "mini", device: str = "cpu",
                  dtype: torch.dtype | str | None = None, scheduler: str = "dpm++"):
    """A diffusers text-to-image pipeline ready to generate, safety checker off.

    Args:
        name_or_path: ``"mini"`` (the shipped generator in ``assets/mini-generator``), a
            hub id such as ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``, or a local
            folder saved with ``save_pretrained``. Any pipeline class and text encoder
            listed in its ``model_index.json`` loads (the mini one uses a BERT encoder).
        device: where the pipeline runs.
        dtype: weights' dtype; default float16 on CUDA, float32 elsewhere.
        scheduler: ``"dpm++"`` (DPM-Solver++ multistep, the default) or ``"pipeline"`` to
            keep the pipeline's own scheduler.

    Raises :class:`GeneratorNotFoundError` naming the missing files when the pipeline is not
    available locally and cannot be downloaded (offline, ``HF_HUB_OFFLINE=1``).
    """
    from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler

    if scheduler not in ("dpm++", "pipeline"):
        raise unknown_name("scheduler", scheduler, ("dpm++", "pipeline"))
    source = resolve_generator(name_or_path)
    if isinstance(source, Path):
        missing = missing_pipeline_files(source)
        if missing:
            command = BUILD_COMMANDS.get(str(name_or_path))
            built_by = f"; it is built by `{command}`" if command else ""
            state = (f"lacks {', '.join(missing)}" if source.is_dir() else
                     "does not exist (a pipeline folder holds model_index.json, unet/, vae/, text_encoder/, "
                     "tokenizer/ and scheduler/)")
            raise GeneratorNotFoundError(f"generator {str(name_or_path)!r}: {source} {state}{built_by}")
    if str(name_or_path) in SHIPPED_GENERATORS:  # shipped weights: check their sha256 against the manifest
        for file in SHIPPED_GENERATORS[str(name_or_path)]:
            verified_asset(file, assets_dir=source.parent, rebuild=BUILD_COMMANDS[str(name_or_path)])
    torch_dtype = _resolve_dtype(dtype, device)
    try:
        with _quiet_hf_loading():
            pipe = DiffusionPipeline.from_pretrained(
                str(source), dtype=torch_dtype, safety_checker=None, requires_safety_checker=False,
                local_files_only=isinstance(source, Path) or _hub_offline(),
                **_packaged_components(source, torch_dtype))
    except (OSError, ValueError) as exc:
        missing = _missing_in_hub_cache(source) if isinstance(source, str) else []
        mode = "offline (HF_HUB_OFFLINE=1)" if _hub_offline() else "and the download failed"
        lacks = f"the Hugging Face cache lacks {', '.join(missing)}" if missing else str(exc).splitlines()[0]
        raise GeneratorNotFoundError(f"cannot load generator {str(name_or_path)!r} {mode}: {lacks}; run once "
                                     "online to download it, or pass a local pipeline folder") from None
    if scheduler == "dpm++":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)  # synthesize() shows one bar over images instead
    return pipe.to(device)


def _packaged_components(source: Path | str, dtype: torch.dtype) -> dict:
    """Text encoder and tokenizer of a pipeline folder that names the package shipping them."""
    index_path = Path(source) / "model_index.json" if isinstance(source, Path) else None
    if index_path is None or not index_path.is_file():
        return {}
    package = read_json(index_path, _INDEX_FIX).get(TEXT_ENCODER_PACKAGE_KEY)
    if not package:
        return {}
    if package != TEXT_ENCODER_PACKAGE:
        raise ConfigError(f"{index_path} takes its text encoder from package {package!r}; only "
                          f"{TEXT_ENCODER_PACKAGE!r} is supported")
    encoder, tokenizer = mini_text_encoder()
    return {"text_encoder": encoder.to(dtype), "tokenizer": tokenizer}


# ----------------------------------------------------------------------------- text embeddings


@torch.no_grad()
def text_embeddings(pipe, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """Mean of the text encoder's last hidden states over each text's tokens → ``(len(texts), D)``."""
    encoder, tokenizer = pipe.text_encoder, pipe.tokenizer
    device = next(encoder.parameters()).device
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[start:start + batch_size], padding="max_length", truncation=True,
                           max_length=tokenizer.model_max_length, return_tensors="pt").to(device)
        hidden = encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0].float()  # (B, L, D)
        mask = tokens.attention_mask[..., None].float()
        chunks.append(((hidden * mask).sum(1) / mask.sum(1)).cpu())
    return torch.cat(chunks)


def class_similarity(pipe, vocabulary: str, template: str = "a photo of a {c}") -> np.ndarray:
    """Cosine similarity ``(V, V)`` of the generator's embeddings of ``template`` for each class.

    This is what ``partners="near"`` / ``"far"`` pair mixup classes by: the generator's own
    notion of which class names are alike.
    """
    names = load_vocabulary(vocabulary).names
    return cosine_similarity(text_embeddings(pipe, [template.format(c=name) for name in names]).numpy())


# ----------------------------------------------------------------------------- set folder and records


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 ≤ i < n``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"shard {text!r} must look like i/n, e.g. 0/4 for the first of four") from None
    _check_shard((index, count))
    return index, count


def _check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard {index}/{count} is invalid: need n ≥ 1 and 0 ≤ i < n")


def records_digest(records: list[PromptRecord]) -> str:
    """sha256 of the records' JSON: two sets share it only if every prompt, class and seed agree."""
    text = json.dumps([r.to_dict() for r in records], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_set_folder(out_dir: str | os.PathLike, config: dict) -> None:
    """Create ``out_dir`` with ``config.json``, or check that the one there is ``config``.

    Raises :class:`ConfigError` when the folder holds a set of another configuration, or is
    not empty and holds no ``config.json`` (not a set at all): never mix two sets.
    """
    out_dir = Path(out_dir)
    path = out_dir / CONFIG_NAME
    wanted = json.loads(json.dumps(config))  # compare in JSON form: tuples become lists
    if path.exists():
        existing = read_json(path, "delete the folder and synthesize the set again")
        if existing != wanted:
            keys = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
            shown = "; ".join(f"{k}: {existing.get(k)!r} there, {wanted.get(k)!r} now" for k in keys[:5])
            raise ConfigError(f"{out_dir} holds a set made with another configuration ({shown}); refusing to mix "
                              "two sets in one folder: choose another output folder or delete this one")
        return
    _check_not_foreign(out_dir)
    text = json.dumps(wanted, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _check_not_foreign(out_dir: Path) -> None:
    """Refuse a folder with files but no ``config.json``: not a set, so never written into. Hidden files are
    the temporaries of atomic writes (another shard's ``config.json`` in flight) and are not counted."""
    if out_dir.is_dir() and not (out_dir / CONFIG_NAME).exists() and any(
            not p.name.startswith(".") for p in out_dir.iterdir()):
        raise ConfigError(f"{out_dir} is not empty and has no {CONFIG_NAME}, so it is not a set made by mixq "
                          "synthesize; choose a new or empty output folder")


def check_set_folder_target(out_dir: str | os.PathLike) -> Path:
    """Check, before anything is generated, that ``out_dir`` can take a set: a new or empty folder, or a set
    to resume; writable, with room on its disk. Nothing is created."""
    out_dir = check_output_dir(out_dir, "set folder")
    _check_not_foreign(out_dir)
    return out_dir


def _stored_entry(path: Path, decode: bool = False) -> dict | None:
    """The manifest line stored in a PNG, or ``None`` when the file is unreadable or not ours."""
    try:
        with Image.open(path) as image:
            if decode:
                image.load()  # reads every pixel: catches a damaged file
            text = image.text.get(PNG_TEXT_KEY)
        return json.loads(text) if text else None
    except (OSError, SyntaxError, ValueError):  # ValueError covers malformed JSON too
        return None


def _is_present(images_dir: Path, record: PromptRecord) -> bool:
    """Whether ``record``'s image exists whole; a damaged one is deleted so it is regenerated."""
    path = images_dir / f"{record.id}.png"
    if not path.exists():
        return False
    entry = _stored_entry(path, decode=True)
    if entry is None:
        path.unlink()
        return False
    wanted = record.to_dict()
    differing = [key for key in ("prompt", "classes", "seed") if entry.get(key) != wanted[key]]
    if differing:
        raise DatasetLayoutError(f"{path} was generated for another record ({', '.join(differing)} differ); "
                                 "the folder mixes two sets: delete it and synthesize again")
    return True


def _remove_stale_temporaries(images_dir: Path, ids: set[str]) -> None:
    """Delete temporary files a killed run left for ``ids`` (never other shards' files in flight)."""
    for path in images_dir.glob(".*.png.*"):
        if path.name[1:].split(".png.")[0] in ids:
            path.unlink(missing_ok=True)


def write_manifest(out_dir: str | os.PathLike, records: list[PromptRecord], name: str = MANIFEST_NAME) -> Path:
    """Write ``name`` (one JSON line per record, in record order) from the entries stored in the PNGs."""
    out_dir = Path(out_dir)
    lines = []
    for record in records:
        entry = _stored_entry(out_dir / IMAGES_DIR / f"{record.id}.png")
        if entry is None:
            raise DatasetLayoutError(f"{out_dir / IMAGES_DIR / record.id}.png is missing or unreadable")
        lines.append(json.dumps(entry))
    text = "\n".join(lines) + "\n"
    atomic_write(out_dir / name, lambda tmp: Path(tmp).write_text(text))
    return out_dir / name


# ----------------------------------------------------------------------------- generation


def _execution_device(pipe) -> torch.device:
    return getattr(pipe, "_execution_device", None) or pipe.device


def _mixed_prompt_embeds(pipe, batch: list[PromptRecord]) -> dict:
    """Conditioning of ``mixup-embed`` records: weighted sums of their prompts' text embeddings."""
    if not hasattr(pipe, "encode_prompt"):
        raise ConfigError(f"mixup-embed needs a pipeline with encode_prompt; {type(pipe).__name__} has none")
    device = _execution_device(pipe)
    k = len(batch[0].components)
    texts = [text for record in batch for text in record.components]
    encoded = pipe.encode_prompt(prompt=texts, device=device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=False)
    if len(encoded) != 2:
        raise ConfigError(f"mixup-embed supports pipelines whose encode_prompt returns (embeds, negative), as "
                          f"Stable Diffusion 1/2; {type(pipe).__name__} returns {len(encoded)} values")
    embeds = encoded[0].view(len(batch), k, *encoded[0].shape[1:])  # (B, k, L, D)
    weights = torch.tensor([record.weights for record in batch], dtype=embeds.dtype, device=embeds.device)
    mixed = (weights[:, :, None, None] * embeds).sum(1)  # (B, L, D)
    negative = pipe.encode_prompt(prompt=[""] * len(batch), device=device, num_images_per_prompt=1,
                                  do_classifier_free_guidance=False)[0]
    return {"prompt_embeds": mixed, "negative_prompt_embeds": negative}


def generate_images(pipe, records: list[PromptRecord], steps: int, guidance: float,
                    resolution: int | None, pad_to: int) -> list[Image.Image]:
    """One pipeline call for ``records``, padded to ``pad_to`` images (see the module doc)."""
    padded = records + [records[-1]] * (pad_to - len(records))
    generators = [torch.Generator("cpu").manual_seed(record.seed) for record in padded]
    if any(record.weights for record in padded):
        conditioning = _mixed_prompt_embeds(pipe, padded)
    else:
        conditioning = {"prompt": [record.text for record in padded]}
    size = {} if resolution is None else {"height": resolution, "width": resolution}
    output = pipe(**conditioning, **size, num_inference_steps=steps, guidance_scale=guidance,
                  generator=generators, output_type="pil")
    return output.images[: len(records)]


def _write_image(path: Path, image: Image.Image, entry: dict) -> None:
    """Save ``image`` as PNG with ``entry`` inside, atomically (temporary name, then rename)."""
    info = PngInfo()
    info.add_text(PNG_TEXT_KEY, json.dumps(entry))
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))


def synthesize(pipe, records: list[PromptRecord], out_dir: str | os.PathLike, *, steps: int = DEFAULT_STEPS,
               guidance: float = DEFAULT_GUIDANCE, resolution: int | None = None, batch_size: int = 8,
               shard: tuple[int, int] = (0, 1), generator_name: str | None = None, set_config: dict | None = None,
               manifest_name: str = MANIFEST_NAME, callback: Callable[[int], None] | None = None,
               exact: bool = False) -> dict:
    """Generate the images of ``records`` missing from ``out_dir``; write the manifest when all exist.

    Args:
        pipe: a pipeline from :func:`load_pipeline` (or any diffusers text-to-image pipeline).
        records: the whole set's records (from :func:`mixq_core.prompts.make_prompts`), also
            when this call generates one shard only.
        out_dir: the set folder; created, or resumed if it holds this same configuration.
        steps, guidance: denoising steps and classifier-free guidance scale.
        resolution: square image size in pixels; ``None``: the pipeline's default.
        batch_size: images per pipeline call (memory vs. speed; see the module doc on bits).
        shard: ``(i, n)``: generate records ``i, i+n, …`` only.
        generator_name: recorded in the config and manifest; default: the pipeline's path.
        set_config: more entries for ``config.json`` (the prompt config, filter settings).
        manifest_name: ``manifest.jsonl``, or ``candidates.jsonl`` for sets filtered afterwards.
        callback: called with the number of images written so far after every batch.
        exact: one image per pipeline call, so pixels do not depend on ``batch_size`` at all.

    Returns a summary: images generated now, already present, whether the set is complete.
    """
    if not records:
        raise ConfigError("no records to synthesize")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    _check_shard(shard)
    STEPS.check(steps, "steps")  # before the set folder is made: diffusers would refuse them mid-run
    GUIDANCE.check(guidance, "guidance")
    if resolution is not None:
        RESOLUTION.check(resolution, "resolution")
    generator_name = generator_name or str(getattr(pipe, "name_or_path", "") or type(pipe).__name__)
    settings = {"generator": generator_name, "scheduler": type(pipe.scheduler).__name__, "steps": steps,
                "guidance": guidance}
    config = {**settings, "resolution": resolution, "dtype": str(pipe.dtype).removeprefix("torch."),
              "n_records": len(records), "records_sha256": records_digest(records), **(set_config or {})}
    out_dir = Path(out_dir)
    prepare_set_folder(out_dir, config)
    images_dir = out_dir / IMAGES_DIR
    images_dir.mkdir(exist_ok=True)
    mine = records[shard[0]::shard[1]]
    _remove_stale_temporaries(images_dir, {record.id for record in mine})
    todo = [record for record in mine if not _is_present(images_dir, record)]
    pipe.set_progress_bar_config(disable=True)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()  # dropout left on (a pipeline assembled by hand) would make images random
    bar = progress(total=len(mine), initial=len(mine) - len(todo), desc=f"synthesize {shard[0]}/{shard[1]}")
    start, written = time.time(), 0
    try:
        for first in range(0, len(todo), batch_size):
            batch = todo[first:first + batch_size]
            if exact:
                images = [generate_images(pipe, [record], steps, guidance, resolution, pad_to=1)[0]
                          for record in batch]
            else:
                images = generate_images(pipe, batch, steps, guidance, resolution, pad_to=batch_size)
            for record, image in zip(batch, images, strict=True):
                entry = {"file": f"{IMAGES_DIR}/{record.id}.png", **record.to_dict(), **settings,
                         "resolution": image.width, "batch_size": 1 if exact else batch_size}
                _write_image(images_dir / f"{record.id}.png", image, entry)
            written += len(batch)
            bar.update(len(batch))
            if callback is not None:
                callback(written)
    finally:
        bar.close()
    seconds = time.time() - start
    complete = all((images_dir / f"{record.id}.png").exists() for record in records)
    manifest = write_manifest(out_dir, records, manifest_name) if complete else None
    return {"out": str(out_dir), "records": len(records), "shard": f"{shard[0]}/{shard[1]}", "generated": written,
            "already_present": len(mine) - len(todo), "complete": complete,
            "manifest": str(manifest) if manifest else None, "seconds": round(seconds, 2),
            "seconds_per_image": round(seconds / written, 4) if written else None}


# ----------------------------------------------------------------------------- GenQ energy filter


def genq_quotas(records: list[PromptRecord], n: int) -> dict[int, int]:
    """Images to keep per class: the class counts of the first ``n`` records.

    GenQ records come in balanced rounds, so this is ``n / C`` per class when ``n`` is a
    multiple of ``C``, and differs by at most one between classes otherwise.
    """
    return dict(Counter(record.classes[0] for record in records[:n]))


def lowest_energy(classes: list[int], energies: list[float], quotas: dict[int, int]) -> list[int]:
    """Indices (ascending) of the ``quotas[c]`` lowest-energy candidates of each class ``c``.

    Ties are broken by index, so the choice is deterministic.
    """
    by_class: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for index, (class_id, energy) in enumerate(zip(classes, energies, strict=True)):
        by_class[class_id].append((energy, index))
    kept = []
    for class_id, quota in sorted(quotas.items()):
        candidates = sorted(by_class.get(class_id, []))
        if len(candidates) < quota:
            raise ConfigError(f"class {class_id} has {len(candidates)} candidates but {quota} are to be kept")
        kept.extend(index for _, index in candidates[:quota])
    return sorted(kept)


def filter_by_energy(out_dir: str | os.PathLike, model: torch.nn.Module, quotas: dict[int, int],
                     transform: Callable = mini_image_transform, temperature: float = 1.0,
                     batch_size: int = 256) -> dict:
    """GenQ's filter: write ``manifest.jsonl`` with the lowest-energy candidates of each class.

    The energy ``E(x) = -T·logsumexp(f(x)/T)`` of the full-precision ``model`` is low when the
    model finds ``x`` typical of its training data (Liu et al., 2020); keeping the lowest-
    energy images per class (``quotas``) drops the generator's failures while keeping the
    set class-balanced. Reads ``candidates.jsonl``; kept lines gain an ``energy`` field.
    """
    from torch.utils.data import DataLoader

    from .analysis import energy_score, logits_and_features
    from .data import manifest_dataset

    out_dir = Path(out_dir)
    candidates_path = out_dir / CANDIDATES_NAME
    if not candidates_path.exists():
        raise DatasetLayoutError(f"{out_dir} has no {CANDIDATES_NAME}: synthesize the candidates first")
    entries = read_jsonl(candidates_path)
    loader = DataLoader(manifest_dataset(out_dir, entries, transform, manifest=CANDIDATES_NAME), batch_size=batch_size)
    logits, _ = logits_and_features(model, loader, desc="energy")
    energies = energy_score(logits, temperature).tolist()
    kept = lowest_energy([int(e["classes"][0]) for e in entries], energies, quotas)
    text = "".join(json.dumps({**entries[i], "energy": energies[i]}) + "\n" for i in kept)
    atomic_write(out_dir / MANIFEST_NAME, lambda tmp: Path(tmp).write_text(text))
    return {"kept": len(kept), "candidates": len(entries),
            "mean_energy_kept": float(np.mean([energies[i] for i in kept])),
            "mean_energy_candidates": float(np.mean(energies))}


# ----------------------------------------------------------------------------- one call for a whole set


def synthesize_set(config: PromptConfig, out_dir: str | os.PathLike, *, generator: str = "mini",
                   steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE, resolution: int | None = None,
                   device: str | None = None, dtype: torch.dtype | str | None = None, batch_size: int = 8,
                   shard: tuple[int, int] = (0, 1), filter_model: torch.nn.Module | None = None,
                   filter_model_name: str | None = None, transform: Callable = mini_image_transform,
                   temperature: float = 1.0, pipe=None, callback: Callable[[int], None] | None = None,
                   exact: bool = False) -> dict:
    """Prompts → images → manifest for the set ``config`` describes (what ``mixq synthesize`` runs).

    ``generator`` is loaded with :func:`load_pipeline` unless ``pipe`` is given (then it only
    names the generator in the records). ``genq`` needs ``filter_model`` (the full-precision
    model, with ``filter_model_name`` to record and the ``transform`` feeding it); its
    candidates go to ``candidates.jsonl`` and, once all exist, the energy filter writes
    ``manifest.jsonl``. Other arguments are those of :func:`synthesize`.
    """
    genq = config.strategy == "genq"
    if genq and filter_model is None:
        raise ConfigError("strategy genq filters its images with the full-precision model: pass the model "
                          "(--model) whose energy score selects them")
    device = str(resolve_device(device))
    validate(config, load_vocabulary(config.vocabulary))  # fail on a bad config before loading a generator
    check_set_folder_target(out_dir)
    if pipe is None:
        pipe = load_pipeline(generator, device=device, dtype=dtype)
    similarity = class_similarity(pipe, config.vocabulary) if config.partners != "random" else None
    records = make_prompts(config, similarity)
    set_config = {"prompts": config.to_dict()}
    if genq:
        set_config["filter"] = {"model": filter_model_name or type(filter_model).__name__,
                                "energy_temperature": temperature}
    summary = synthesize(pipe, records, out_dir, steps=steps, guidance=guidance, resolution=resolution,
                         batch_size=batch_size, shard=shard, generator_name=str(generator), set_config=set_config,
                         manifest_name=CANDIDATES_NAME if genq else MANIFEST_NAME, callback=callback, exact=exact)
    if genq and summary["complete"]:
        kept = filter_by_energy(out_dir, filter_model, genq_quotas(records, config.n), transform, temperature)
        summary.update(manifest=str(Path(out_dir) / MANIFEST_NAME), filter=kept)
    return {"strategy": config.strategy, "n": config.n, **summary}
