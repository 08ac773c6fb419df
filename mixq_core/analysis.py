"""Measurements that explain results: how a full-precision model sees a calibration set.

- :func:`score_synthetic`: does the model recognise the prompted classes in a synthetic set
  (``mixq evaluate --data DIR``)?
- :func:`diversity_metrics`: how varied a set looks to the model: mean prediction entropy,
  coverage of its top-1 classes, spread of its penultimate features.
- :func:`frechet_distance`: distance between two sets of features, each modelled as a
  Gaussian (FID's formula, here in a classifier's penultimate features).
- :func:`energy_score`: the free energy ``E(x) = -T·logsumexp(f(x)/T)`` that the GenQ
  baseline filters on (low energy: the model finds the image in-distribution).

Every function runs the model where it is (CPU or GPU) in eval mode without gradients.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import manifest_dataset, mini_image_transform, read_manifest
from .errors import ConfigError, DatasetLayoutError
from .progress import progress


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Free energy per row of ``logits`` ``(N, C)``: ``-T·logsumexp(logits / T)`` → ``(N,)``."""
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=1)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance of Gaussians fitted to feature rows ``a`` ``(N, D)`` and ``b`` ``(M, D)``.

    ``|μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½)``; the trace of the matrix square root is the sum
    of the square roots of the eigenvalues of ``Σa^½ Σb Σa^½`` (symmetric, so stable).
    """
    import numpy as np
    from scipy import linalg

    if a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ConfigError(f"frechet_distance needs two sets of ≥ 2 rows of equal width, got {tuple(a.shape)} "
                          f"and {tuple(b.shape)}")
    a, b = a.double().numpy(), b.double().numpy()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = linalg.sqrtm(cov_a).real
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)
    trace = np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(eigenvalues).sum()
    return float(((mean_a - mean_b) ** 2).sum() + trace)


def _classifier_layer(model: nn.Module) -> nn.Module:
    """The final linear layer: timm's ``get_classifier()``, else the last ``nn.Linear``."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no linear classifier to read penultimate features from")
    return linears[-1]


@torch.no_grad()
def logits_and_features(model: nn.Module, batches: Iterable,
                        desc: str = "predict") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, C)`` and penultimate features ``(N, D)`` (the classifier's input), on the CPU.

    ``batches`` yields image tensors or ``(images, labels)`` pairs. The features are read
    by a hook on the classifier, so one forward pass gives both.
    """
    device = next(model.parameters()).device
    model.eval()
    captured: list[torch.Tensor] = []
    hook = _classifier_layer(model).register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].flatten(1).float().cpu()))
    logits = []
    try:
        for batch in progress(batches, desc=desc):
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            logits.append(model(images.to(device)).float().cpu())
    finally:
        hook.remove()
    return torch.cat(logits), torch.cat(captured)


def _loader(data: Dataset | DataLoader, batch_size: int) -> DataLoader | Iterable:
    return data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)


def _entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of each row (or of a single distribution)."""
    return -(probabilities * probabilities.clamp_min(1e-12).log()).sum(-1)


def mean_pairwise_distance(features: torch.Tensor, chunk: int = 1024) -> float:
    """Mean Euclidean distance over all pairs of distinct rows, computed in row chunks."""
    n = features.shape[0]
    if n < 2:
        return 0.0
    x = features.double()
    total = 0.0
    for start in range(0, n, chunk):
        total += torch.cdist(x[start:start + chunk], x).sum().item()
    return total / (n * (n - 1))  # the diagonal contributes zeros


def diversity_metrics(model: nn.Module, data: Dataset | DataLoader, batch_size: int = 256) -> dict:
    """How varied a set of images looks to ``model`` (its full-precision classifier).

    Returns ``mean_entropy`` (nats, of the softmax; high: ambiguous images),
    ``top1_coverage`` (share of the model's classes that are some image's top-1),
    ``top1_entropy`` (entropy of the top-1 histogram, nats; ``log C`` when perfectly even),
    ``feature_trace_cov`` (trace of the penultimate features' covariance) and
    ``feature_mean_distance`` (their mean pairwise Euclidean distance), and ``n_images``.
    """
    logits, features = logits_and_features(model, _loader(data, batch_size), desc="diversity")
    num_classes = logits.shape[1]
    top1_counts = torch.bincount(logits.argmax(1), minlength=num_classes).double()
    covariance = torch.cov(features.double().T) if len(features) > 1 else torch.zeros(1, 1)
    return {
        "mean_entropy": _entropy(logits.softmax(1)).mean().item(),
        "top1_coverage": (top1_counts > 0).double().mean().item(),
        "top1_entropy": _entropy(top1_counts / top1_counts.sum()).item(),
        "feature_trace_cov": covariance.trace().item(),
        "feature_mean_distance": mean_pairwise_distance(features),
        "n_images": len(features),
    }


def score_synthetic(model: nn.Module, folder: str | os.PathLike, topk: int = 2,
                    transform: Callable | None = None, batch_size: int = 256) -> dict:
    """Agreement of ``model`` with the prompts of the synthetic set in ``folder``.

    Args:
        model: a classifier over the set's vocabulary (class ids as in the manifest).
        folder: a set written by ``mixq synthesize`` (``manifest.jsonl`` + ``images/``).
        topk: how many top predictions count for the multi-class scores (1 to the model's classes).
        transform: PIL image → model input; default: the ``mini`` track's transform.

    Returns ``top1`` (% of images whose top-1 is the first prompted class, i.e. the label),
    ``all_in_topk`` (% whose top-``topk`` holds every prompted class; 0 when a prompt has more
    than ``topk`` classes), ``any_in_topk`` (% whose top-``topk`` holds at least one), ``topk``
    and ``n_images``.
    """
    head = _classifier_layer(model)
    num_classes = getattr(head, "out_features", None) or getattr(head, "out_channels", None) or model.num_classes
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= num_classes:
        raise ConfigError(f"topk must be an integer from 1 to {num_classes} (the model's classes), got {topk!r}")
    entries = read_manifest(folder)
    if not entries:
        raise DatasetLayoutError(f"{folder} has an empty manifest")
    dataset = manifest_dataset(folder, entries, transform or mini_image_transform, num_classes)
    logits, _ = logits_and_features(model, _loader(dataset, batch_size), desc="score")
    top = logits.topk(topk, dim=1).indices.tolist()
    first = sum(int(entry["classes"][0]) == row[0] for entry, row in zip(entries, top, strict=True))
    every = sum(set(entry["classes"]) <= set(row) for entry, row in zip(entries, top, strict=True))
    some = sum(bool(set(entry["classes"]) & set(row)) for entry, row in zip(entries, top, strict=True))
    n = len(entries)
    return {"top1": 100.0 * first / n, "all_in_topk": 100.0 * every / n, "any_in_topk": 100.0 * some / n,
            "topk": topk, "n_images": n}
