"""How well the mini generator draws what it is asked for: the quality experiments of notebook 02.

:func:`generator_quality` judges single- and two-class images with a Fashion-MNIST classifier (top-1,
Fréchet distance in its features, both / any prompted class in its top-2, one item at a time);
:func:`polysemy_split` measures what a polysemous class name draws; :func:`judge_pair_ceiling` scores real
two-item compositions, the most a perfect drawing could get from this judge. Training the generator is
:mod:`mixq_core.generator`'s; ``benchmarks/generator_quality.py`` runs these and records the results.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .analysis import frechet_distance, logits_and_features
from .data import fashion_mnist, fashion_mnist_tensors, mini_image_transform, normalize_mini, subset
from .generator import CLASS_SYNONYMS, POLYSEMOUS_NAMES, RESOLUTION, collage, paste_over
from .progress import progress
from .prompts import PromptConfig, make_prompts
from .synthesis import generate_images


def _generate(pipe, records, steps: int, guidance: float, batch_size: int) -> tuple[list, float]:
    """PIL images for ``records`` (batched pipeline calls) and the images per second it took."""

    images, start = [], time.time()
    for first in progress(range(0, len(records), batch_size), desc=f"sample {steps} steps"):
        batch = records[first:first + batch_size]
        images += generate_images(pipe, batch, steps, guidance, RESOLUTION, pad_to=len(batch))
    return images, len(records) / (time.time() - start)


def _judge(judge, images) -> tuple[torch.Tensor, torch.Tensor]:

    batches = torch.stack([mini_image_transform(image) for image in images]).split(250)
    return logits_and_features(judge, batches, desc="judge")


def generator_quality(pipe, judge, steps: int = 25, guidance: float = 3.0, per_class: int = 100,
                      pair_prompts: int = 200, batch_size: int = 100, seed: int = 0) -> dict:
    """How well the generator draws what it is asked for, judged by a Fashion-MNIST classifier.

    - ``single_top1``: % of single-class images (``per_class`` per class, ``"a photo of a {c}"``)
      whose judge top-1 is the prompted class; ``single_top1_per_class`` likewise per class.
    - ``fd_generated`` / ``fd_real_floor``: Fréchet distance in the judge's penultimate
      features between the single-class images and as many real test images, and between
      real train and real test images (the floor a perfect generator would reach).
    - ``pair_both_in_top2`` / ``pair_any_in_top2``: % of two-class images
      (``"a photo of a {c1} and a {c2}"``) whose judge top-2 holds both / at least one class;
      ``pair_both_by_items`` / ``pair_any_by_items``: the same judged one item at a time (the
      judge's top-1 on each side's item, see :func:`pair_scores`).
    - ``real_collage_*``: the same two-class scores for real test items pasted into collages
      exactly as the training collages are made: what this judge gives a perfect drawing of two
      items (it was trained on one centred item per image).
    - ``images_per_second``: sampling throughput with guidance, batches of ``batch_size``.

    Returns the metrics and, under ``"images"``, the generated PIL images and their records
    (for galleries).
    """

    classes = len(CLASS_SYNONYMS)
    single = make_prompts(PromptConfig(strategy="single", n=per_class * classes, vocabulary="fashion-mnist",
                                       seed=seed))
    pairs = make_prompts(PromptConfig(strategy="mixup", n=pair_prompts, vocabulary="fashion-mnist", k=2, seed=seed,
                                      allow_unbalanced=True))
    single_images, rate = _generate(pipe, single, steps, guidance, batch_size)
    pair_images, _ = _generate(pipe, pairs, steps, guidance, batch_size)
    logits, features = _judge(judge, single_images)
    prompted = torch.tensor([record.classes[0] for record in single])
    hits = logits.argmax(1) == prompted
    generated_pairs = pair_scores(judge, grey_pictures(pair_images), [set(record.classes) for record in pairs])
    real_collage_scores = pair_scores(judge, *real_pairs(pair_prompts, seed))

    def real_features(split: str) -> torch.Tensor:

        data = subset(fashion_mnist(split), len(single), seed=seed)
        batches = [torch.stack([data[i][0] for i in range(s, min(s + 250, len(data)))])
                   for s in range(0, len(data), 250)]
        return logits_and_features(judge, batches, desc=f"judge real {split}")[1]

    test_features = real_features("test")
    return {
        "steps": steps, "guidance": guidance, "seed": seed,
        "single_images": len(single), "single_top1": round(100.0 * hits.double().mean().item(), 2),
        "single_top1_per_class": [round(100.0 * hits[prompted == c].double().mean().item(), 1) for c in range(classes)],
        "fd_generated": round(frechet_distance(features, test_features), 3),
        "fd_real_floor": round(frechet_distance(real_features("train"), test_features), 3),
        "pair_images": len(pairs), **{f"pair_{key}": value for key, value in generated_pairs.items()},
        **{f"real_collage_{key}": value for key, value in real_collage_scores.items()},
        "images_per_second": round(rate, 2), "batch_size": batch_size,
        "images": {"single": list(zip(single, single_images, strict=True)),
                   "pairs": list(zip(pairs, pair_images, strict=True))},
    }


ITEM_SIZE = 28  # Fashion-MNIST items are 28 px, centred on the 32 px canvas the mini models see


def item_crops(pictures: torch.Tensor, width: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The left and right item of two-item pictures, each as the judge expects an item.

    ``pictures`` is uint8 ``(N, 1, 32, 32)`` on a dark background. Each side is a ``width``-px strip
    (default: the halves; on real collages, wider strips that hold more of an item also catch more of
    its neighbour, and score lower); the bounding box of its bright pixels is scaled, aspect kept, to
    :data:`ITEM_SIZE` px and centred on a black 32×32 canvas. A strip without bright pixels gives a
    black canvas. Returns ``(lefts, rights)``, uint8, same shape.
    """
    crops = {"left": [], "right": []}
    for picture in pictures:
        for side, strip in (("left", picture[:, :, :width]), ("right", picture[:, :, RESOLUTION - width:])):
            canvas = torch.zeros(1, RESOLUTION, RESOLUTION, dtype=torch.uint8)
            rows, cols = torch.nonzero(strip[0] > 0.25 * max(int(strip.max()), 1), as_tuple=True)
            if len(rows):
                item = strip[:, int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
                scale = ITEM_SIZE / max(item.shape[1:])
                size = [max(1, round(d * scale)) for d in item.shape[1:]]
                resized = F.interpolate(item[None].float(), size=size, mode="bilinear", antialias=True,
                                        align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
                top, left = (RESOLUTION - size[0]) // 2, (RESOLUTION - size[1]) // 2
                canvas[:, top:top + size[0], left:left + size[1]] = resized
            crops[side].append(canvas)
    return torch.stack(crops["left"]), torch.stack(crops["right"])


def polysemy_split(pipe, judge, steps: int = 25, guidance: float = 3.0, per_word: int = 100, seed: int = 0,
                   batch_size: int = 100) -> dict[str, dict]:
    """What single-class prompts for the polysemous names (:data:`POLYSEMOUS_NAMES`) draw, by the judge.

    For each such word, ``per_word`` images of ``"a photo of a {word}"`` (the practitioner's prompt) and the
    % the judge's top-1 puts in the word's own class and in the other concept the word also names. On a
    plain generator the other share is the judge's confusion between the two; in a polysemy world it is
    how often the prompt yields the other concept.
    """

    split = {}
    for word_class, other_class in POLYSEMOUS_NAMES.items():
        word = CLASS_SYNONYMS[word_class][0]
        records = make_prompts(PromptConfig(strategy="single", n=per_word, vocabulary="fashion-mnist", seed=seed,
                                            classes=(word,)))
        images, _ = _generate(pipe, records, steps, guidance, batch_size)
        top1 = _judge(judge, images)[0].argmax(1)
        split[word] = {"own_class": CLASS_SYNONYMS[word_class][0], "other_class": CLASS_SYNONYMS[other_class][0],
                       "own": round(100.0 * (top1 == word_class).double().mean().item(), 1),
                       "other": round(100.0 * (top1 == other_class).double().mean().item(), 1), "images": per_word}
    return split


def chance_pair_scores(n_classes: int = 10) -> dict[str, float]:
    """``both_in_top2`` and ``any_in_top2`` (%) of a judge whose top-2 ignores the picture (two distinct classes
    drawn uniformly): the floor against which :func:`pair_scores` reads."""
    pairs = math.comb(n_classes, 2)
    return {"both_in_top2": 100.0 / pairs, "any_in_top2": 100.0 * (1 - math.comb(n_classes - 2, 2) / pairs)}


@torch.no_grad()
def pair_scores(judge, pictures: torch.Tensor, pairs: list[set[int]]) -> dict[str, float]:
    """Two-class scores (%) of uint8 two-item pictures ``(N, 1, 32, 32)`` whose prompted classes are ``pairs``.

    ``both_in_top2`` / ``any_in_top2``: the judge's top-2 on the whole picture holds both / at least one
    class. ``both_by_items`` / ``any_by_items``: the judge's top-1 on each side's item (:func:`item_crops`)
    gives both classes / at least one. The whole-picture scores ask a judge trained on one centred item
    to read two small ones; the item scores ask it one item at a time.
    """

    best_two = top2(judge, pictures)[0].tolist()
    lefts, rights = (_logits(judge, crops).argmax(1).tolist() for crops in item_crops(pictures))
    items = [{a, b} for a, b in zip(lefts, rights, strict=True)]
    n = len(pairs)

    def share(hits) -> float:
        return round(100.0 * sum(hits) / n, 2)

    return {"both_in_top2": share(pair <= set(row) for pair, row in zip(pairs, best_two, strict=True)),
            "any_in_top2": share(bool(pair & set(row)) for pair, row in zip(pairs, best_two, strict=True)),
            "both_by_items": share(pair == found for pair, found in zip(pairs, items, strict=True)),
            "any_by_items": share(bool(pair & found) for pair, found in zip(pairs, items, strict=True))}


@torch.no_grad()
def _logits(judge, pictures: torch.Tensor) -> torch.Tensor:
    """The judge's logits (eval mode, on its device, returned on the CPU) for uint8 pictures ``(N, 1, 32, 32)``."""
    device = next(judge.parameters()).device
    return torch.cat([judge.eval()(normalize_mini(part).to(device)).cpu() for part in pictures.split(250)])


def top2(judge, pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's two most likely classes on uint8 pictures ``(N, 1, 32, 32)`` and their softmax probabilities."""
    logits = _logits(judge, pictures)
    classes = logits.topk(2, dim=1).indices  # ranked by logit: far-apart logits underflow to equal probabilities
    return classes, logits.softmax(1).gather(1, classes)


def mixed_picture_reading(pipe, judges: dict, n: int = 200, steps: int = 15, guidance: float = 3.0,
                          seed: int = 0, batch_size: int = 100) -> dict:
    """How each of several judges reads two-class pictures: the generator's mixup-prompted ones and real collages.

    The same ``n`` mixup-class prompts (``"a photo of a {c1} and a {c2}"``, seed ``seed``) are drawn once and
    shown to every judge in ``judges`` (name → classifier), together with ``n`` real two-item collages
    (:func:`real_pairs`). Returns ``scores`` (judge → picture kind → :func:`pair_scores`), the generated
    ``pictures`` (uint8), their prompted class ``pairs``, and ``top2`` (judge → classes, probabilities).
    """
    records = make_prompts(PromptConfig(strategy="mixup", n=n, vocabulary="fashion-mnist", k=2, seed=seed,
                                        allow_unbalanced=True))
    pictures = grey_pictures(_generate(pipe, records, steps, guidance, batch_size)[0])
    pairs = [set(record.classes) for record in records]
    collages, collage_pairs = real_pairs(n, seed)
    return {"scores": {name: {"generated (mixup prompts)": pair_scores(judge, pictures, pairs),
                              "real collages": pair_scores(judge, collages, collage_pairs)}
                       for name, judge in judges.items()},
            "pictures": pictures, "pairs": [tuple(record.classes) for record in records],
            "top2": {name: top2(judge, pictures) for name, judge in judges.items()}}


def real_pairs(n: int, seed: int, compose=None) -> tuple[torch.Tensor, list[set[int]]]:
    """``n`` pictures of two real test items of different classes, ``compose(first, second, generator)`` of them.

    The default composition is :func:`collage`, exactly as the training collages are made.
    """

    compose = compose or collage
    images, labels = fashion_mnist_tensors("test")
    generator = torch.Generator().manual_seed(seed)
    pictures, pairs = [], []
    for _ in range(n):
        a, b = torch.randint(0, len(images), (2,), generator=generator).tolist()
        while labels[b] == labels[a]:
            b = int(torch.randint(0, len(images), (1,), generator=generator))
        pictures.append(compose(images[a], images[b], generator))
        pairs.append({int(labels[a]), int(labels[b])})
    return torch.stack(pictures), pairs


def overlay(first: torch.Tensor, second: torch.Tensor, generator: torch.Generator,
            offsets: tuple[int, int] = (4, 8)) -> torch.Tensor:
    """Two full-size uint8 items ``(1, 32, 32)`` pasted over each other, ``second`` shifted right of ``first``.

    The horizontal distance between them is drawn from ``offsets`` (px, inclusive); ``second``
    occludes ``first`` where its own pixels are (pasted, never blended).
    """
    offset = int(torch.randint(offsets[0], offsets[1] + 1, (1,), generator=generator))
    canvas = torch.zeros(1, RESOLUTION, RESOLUTION, dtype=torch.uint8)
    for item, shift in ((first, -(offset // 2)), (second, offset - offset // 2)):
        moved = torch.zeros_like(canvas)
        if shift >= 0:
            moved[:, :, shift:] = item[:, :, :RESOLUTION - shift]
        else:
            moved[:, :, :shift] = item[:, :, -shift:]
        paste_over(canvas, moved)
    return canvas


# Ways to put two real items in one picture, from the training collage to a pixel-wise blend: whatever a
# generator draws for a two-class prompt, its judge scores are bounded by what the judge makes of these.
PAIR_DESIGNS = {
    "collage (training design)": None,
    "full-size overlay, 4-8 px apart": lambda a, b, g: overlay(a, b, g, (4, 8)),
    "full-size overlay, 8-12 px apart": lambda a, b, g: overlay(a, b, g, (8, 12)),
    "pixel-wise maximum (a blend)": lambda a, b, g: torch.maximum(a, b),
}


def judge_pair_ceiling(judge, n: int = 400, seed: int = 0) -> dict[str, dict[str, float]]:
    """The judge's two-class scores (:func:`pair_scores`, top-2 only) on ``n`` real two-item pictures per design.

    A drawing of two items is at best as readable as the real items composed in some way; the
    designs in :data:`PAIR_DESIGNS` span side by side, overlapping and blended. What the judge
    gives the best of them bounds what it can give a generator's two-class images.
    """
    ceiling = {}
    for design, compose in PAIR_DESIGNS.items():
        scores = pair_scores(judge, *real_pairs(n, seed, compose))
        ceiling[design] = {key: scores[key] for key in ("both_in_top2", "any_in_top2")}
    return ceiling


def grey_pictures(images) -> torch.Tensor:
    """PIL images as uint8 ``(N, 1, H, W)`` grey tensors."""
    return torch.stack([torch.from_numpy(np.array(image.convert("L")))[None] for image in images])


