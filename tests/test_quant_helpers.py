"""Tiny random models shared by the quantization tests (real timm blocks, a few thousand parameters)."""

import torch
from timm.models.resnet import BasicBlock
from timm.models.vision_transformer import VisionTransformer
from torch import nn


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """Stem conv + BN, two timm BasicBlocks (the second downsamples), pooling and a linear head; 16×16 input."""
    torch.manual_seed(seed)
    downsample = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        BasicBlock(8, 8),
        BasicBlock(8, 16, stride=2, downsample=downsample),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


def tiny_vit(seed: int = 0) -> VisionTransformer:
    """A 2-block timm ViT on 4×4 patches of a 16×16 image, width 32, 2 heads."""
    torch.manual_seed(seed)
    return VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                             num_classes=10)


def noise_loader(n: int = 64, size: int = 16, batch: int = 32, seed: int = 0) -> list:
    """``n`` Gaussian images as a list of ``(images, labels)`` batches (anything iterable is a loader)."""
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return [(images[i : i + batch], torch.zeros(len(images[i : i + batch]))) for i in range(0, n, batch)]
