"""Semantic segmentation: an XFormer (or MobileViT) backbone with SegFormer's all-MLP decoder.

The paper's Cityscapes result (78.5 mIoU) uses "a simple all-MLP decoder"; the design notes read it as
SegFormer's head: each of the four feature maps (strides 4/8/16/32) is projected by a linear layer to one
width, upsampled to stride 4, concatenated, fused by a 1x1 conv with BN and ReLU, and classified per pixel.
The linear layers are 1x1 convolutions, so every tensor stays rank 4 on every runtime. The model returns
logits at stride 4; callers upsample them (bilinear) to the input size before the argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..preprocess import PreprocessSpec
from .blocks import ConvNormAct
from .registry import CITYSCAPES_CLASSES, register_model
from .xformer import _ARCHS, XFormer

__all__ = ["CITYSCAPES_PALETTE", "IGNORE_INDEX", "MLPDecoder", "Segmenter", "palette", "upsample_logits"]

IGNORE_INDEX = 255  # label value of pixels that are not scored (Cityscapes' convention)

# Cityscapes' own colours for its 19 train ids.
CITYSCAPES_PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
                      (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
                      (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))


def palette(labels: list[str]) -> list[tuple[int, int, int]]:
    """One RGB colour per class: Cityscapes' palette for its classes, evenly spread hues otherwise."""
    if tuple(labels) == CITYSCAPES_CLASSES:
        return list(CITYSCAPES_PALETTE)
    import colorsys

    n = max(1, len(labels))
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)) for i in range(n)]


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stride-4 logits to a full-size map (bilinear, as SegFormer scores them)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class MLPDecoder(nn.Module):
    """SegFormer's all-MLP head: per-level linear projection, upsample to stride 4, concat, fuse, classify."""

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, width: int = 256, dropout: float = 0.1):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = ConvNormAct(width * len(in_channels), width, 1, act="relu")
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        # Integer scale factors (the maps are exactly H/4, H/8, ... for inputs divisible by 32) export as one
        # static resize on every runtime.
        levels = [proj(f) if i == 0 else F.interpolate(proj(f), scale_factor=2 ** i, mode="bilinear",
                                                       align_corners=False)
                  for i, (proj, f) in enumerate(zip(self.proj, features))]
        return self.classifier(self.dropout(self.fuse(torch.cat(levels, dim=1))))


class Segmenter(nn.Module):
    """Backbone features at strides 4/8/16/32 -> MLP decoder -> class logits at stride 4."""

    stride = 32  # inputs must divide by this

    def __init__(self, backbone: XFormer, num_classes: int = 19, decoder_width: int = 256, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.decode_head = MLPDecoder(backbone.feature_channels, num_classes, decoder_width, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.stride or width % self.stride:
            raise ValueError(f"input {height}x{width} is not a multiple of {self.stride} (the backbone's stride); "
                             f"resize to e.g. {max(32, round(height / 32) * 32)}x{max(32, round(width / 32) * 32)}")
        return self.decode_head(self.backbone.forward_features(x))


# Cityscapes-style frames: RGB in [0, 1] (the backbone's contract), resized straight to 512x1024 (half resolution).
_SEG_PREPROCESS = PreprocessSpec(input_size=(512, 1024), resize_size=None, interpolation="bilinear")
_DECODER_WIDTH = {"xxs": 128, "xs": 192, "s": 256}


def _create_segmenter(size: str, attention: str, num_classes: int = 19, decoder_width: int | None = None,
                      dropout: float = 0.1, **kwargs) -> Segmenter:
    kwargs.setdefault("attention", attention)
    backbone = XFormer(_ARCHS[size], features_only=True, **kwargs)
    return Segmenter(backbone, num_classes, decoder_width or _DECODER_WIDTH[size], dropout)


def _register(name: str, size: str, attention: str, description: str) -> None:
    def builder(**kwargs) -> Segmenter:
        return _create_segmenter(size, attention, **kwargs)

    builder.__name__ = name
    register_model(_SEG_PREPROCESS, description, attention=attention, task="segment", num_classes=19)(builder)


_register("xformer_xxs_seg", "xxs", "xfa", "XFormer-XXS + all-MLP decoder (segmentation)")
_register("xformer_xs_seg", "xs", "xfa", "XFormer-XS + all-MLP decoder (segmentation)")
_register("xformer_s_seg", "s", "xfa", "XFormer-S + all-MLP decoder: the paper's Cityscapes model")
_register("mobilevit_s_seg", "s", "mhsa", "MobileViT-S + all-MLP decoder (same code, MHSA)")
