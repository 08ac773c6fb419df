"""Tiny random components for fast, offline tests of the synthesis path.

:func:`tiny_sd_pipeline` assembles a real ``diffusers.StableDiffusionPipeline`` whose UNet,
VAE and text encoder are randomly initialised and a few thousand parameters large, with a
tokenizer built in memory (no hub access). It produces 32×32 images in well under a second
on a CPU, so tests can run the exact code path of the ``mini`` and ``imagenet`` tracks.
Its pictures are noise-like: tests assert properties (count, determinism, resumability),
never content.
"""

from __future__ import annotations

import os

import torch

from .prompts import FASHION_MNIST_PROMPT_NAMES

TINY_RESOLUTION = 32
TINY_TEXT_WIDTH = 32  # hidden size of the text encoder = cross-attention width of the UNet
TINY_MAX_TOKENS = 48  # characters are tokens here, so the longest test prompt must fit


def char_clip_tokenizer(max_length: int = TINY_MAX_TOKENS):
    """A character-level CLIP tokenizer built in memory: ids 0 and 1 are start and end of text.

    Byte-level BPE without merges splits every word into single characters; the last
    character of a word carries CLIP's end-of-word mark "</w>", so both forms are listed.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + alphabet + [c + "</w>" for c in alphabet]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=max_length)


def _tiny_clip_text_encoder():
    """A 2-layer random CLIP text model and a character-level CLIP tokenizer (no merges)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = char_clip_tokenizer()
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=TINY_TEXT_WIDTH, intermediate_size=37,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=TINY_MAX_TOKENS,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return CLIPTextModel(config), tokenizer


def _tiny_bert_text_encoder():
    """A 2-layer random BERT and a WordPiece tokenizer over the words of the test prompts.

    This mirrors the ``mini`` generator, whose text encoder is a (pretrained) BERT, not CLIP.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    words = {"a", "photo", "of", "and", "an", "image", "-", ","}
    for name in FASHION_MNIST_PROMPT_NAMES:
        words.update(name.replace("-", " - ").split())
    letters = "abcdefghijklmnopqrstuvwxyz"
    # Single letters and "##letter" pieces let WordPiece spell any other lower-case word.
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + list(letters)
    tokens += [f"##{c}" for c in letters]
    tokens = list(dict.fromkeys(tokens))
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, model_max_length=16)
    config = BertConfig(vocab_size=len(tokens), hidden_size=TINY_TEXT_WIDTH, intermediate_size=37,
                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32)
    return BertModel(config), tokenizer


TEXT_ENCODERS = {"clip": _tiny_clip_text_encoder, "bert": _tiny_bert_text_encoder}


def tiny_sd_pipeline(text_encoder: str = "clip", seed: int = 0):
    """A random ``StableDiffusionPipeline`` making ``32×32`` images, built offline in about a second.

    ``text_encoder`` is ``"clip"`` (as in Stable Diffusion) or ``"bert"`` (as in the ``mini``
    generator). The weights depend only on ``seed``. The scheduler is DPM-Solver++, as
    :func:`mixq_core.synthesis.load_pipeline` would set, and the safety checker is off.
    """
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel

    if text_encoder not in TEXT_ENCODERS:
        raise ValueError(f"text_encoder must be one of {sorted(TEXT_ENCODERS)}, got {text_encoder!r}")
    torch.manual_seed(seed)
    # Two VAE levels halve the resolution once: 32×32 pixels ↔ 16×16 latents.
    unet = UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=TINY_TEXT_WIDTH, attention_head_dim=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        layers_per_block=1, norm_num_groups=4, sample_size=TINY_RESOLUTION,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    vae.register_to_config(scaling_factor=0.5)
    encoder, tokenizer = TEXT_ENCODERS[text_encoder]()
    scheduler = DPMSolverMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                            algorithm_type="dpmsolver++", steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for module in (unet, vae, encoder):
        module.eval()  # as from_pretrained leaves them: BERT's dropout would make images random
    return pipe


def random_sd_pipeline(config_dir: str | os.PathLike, seed: int = 0):
    """A ``StableDiffusionPipeline`` with random weights, assembled from the ``unet.json``,
    ``vae.json``, ``text_encoder.json`` and ``scheduler.json`` configs in ``config_dir``.

    With Stable Diffusion v1.5's configs (``benchmarks/sd15/``) it has SD v1.5's shapes and
    cost, without downloading anything: what a speed benchmark needs. The tokenizer is
    character-level (:func:`char_clip_tokenizer`), so prompts are cut at 77 characters.
    """
    import json
    from pathlib import Path

    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def read(name: str) -> dict:
        config = json.loads((Path(config_dir) / name).read_text())
        return {k: v for k, v in config.items() if not k.startswith("_")}

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(read("unet.json"))
    vae = AutoencoderKL.from_config(read("vae.json"))
    text_config = CLIPTextConfig(**read("text_encoder.json"))
    encoder = CLIPTextModel(text_config)
    tokenizer = char_clip_tokenizer(text_config.max_position_embeddings)
    scheduler = DPMSolverMultistepScheduler(**read("scheduler.json"))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    for module in (unet, vae, encoder):
        module.eval()
    return pipe


def tiny_classifier(num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    """A random conv net for ``(3, 32, 32)`` input ending in an ``nn.Linear`` (its penultimate features: 8)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, num_classes),
    )
    return model.eval()
