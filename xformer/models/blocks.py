"""Building blocks shared by the classifiers: conv-BN-act, MobileNetV2 inverted residual, transformer
layer, and the XFormer block (MobileViT's local-global block with a pluggable token mixer)."""

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .attention import create_attention

__all__ = ["ConvNormAct", "InvertedResidual", "TransformerLayer", "XFormerBlock", "make_divisible",
           "unfold_patches", "fold_patches"]

ACTIVATIONS = {"silu": nn.SiLU, "relu6": nn.ReLU6, "relu": nn.ReLU, "leaky": partial(nn.LeakyReLU, 0.1)}


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor` without dropping more than 10% (MobileNetV2 rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> optional activation; 'same' padding for odd kernels."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = "silu"):
        layers = [nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(out_ch)]
        if act is not None:
            layers.append(ACTIVATIONS[act]())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: float, act: str = "silu"):
        super().__init__()
        hidden = make_divisible(round(in_ch * expansion), 8)
        layers = [] if expansion == 1 else [ConvNormAct(in_ch, hidden, 1, act=act)]
        layers += [ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act=act),
                   ConvNormAct(hidden, out_ch, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__(nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(drop), nn.Linear(hidden, dim), nn.Dropout(drop))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: x + mixer(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, dim: int, ffn_dim: int, attention: str = "xfa", num_heads: int = 4, dropout: float = 0.0,
                 attn_dropout: float = 0.0, ffn_dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = create_attention(attention, dim, num_heads, attn_drop=attn_dropout, proj_drop=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, ffn_dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.drop(self.ffn(self.norm2(x)))


def unfold_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, d, H, W) -> (B * patch**2, H*W / patch**2, d): one token sequence per pixel position in a patch.

    Sequence p holds pixel p of every non-overlapping patch, as in MobileViT. H and W must divide by `patch`.
    """
    b, d, h, w = x.shape
    x = x.reshape(b, d, h // patch, patch, w // patch, patch)
    x = x.permute(0, 3, 5, 2, 4, 1)  # (B, ph, pw, H/ph, W/pw, d)
    return x.reshape(b * patch * patch, (h // patch) * (w // patch), d)


def fold_patches(x: torch.Tensor, patch: int, batch: int, height: int, width: int) -> torch.Tensor:
    """Inverse of unfold_patches."""
    d = x.shape[-1]
    x = x.reshape(batch, patch, patch, height // patch, width // patch, d)
    x = x.permute(0, 5, 3, 1, 4, 2)  # (B, d, H/ph, ph, W/pw, pw)
    return x.reshape(batch, d, height, width)


class XFormerBlock(nn.Module):
    """Local 3x3 conv, 1x1 to width d, unfold 2x2 patches, L transformer layers, fold, 1x1 back, fuse with input.

    A feature map whose side is not a multiple of the patch size (7x7 at stride 32 for a 224 input) is
    resized up to the next multiple and back, as ml-cvnets does. The branch depends only on the static
    input shape, so each export traces a single graph.
    """

    def __init__(self, channels: int, dim: int, depth: int, attention: str = "xfa", num_heads: int = 4,
                 ffn_ratio: float = 2.0, patch_size: int = 2, dropout: float = 0.1, attn_dropout: float = 0.0,
                 ffn_dropout: float = 0.0):
        super().__init__()
        self.patch_size = patch_size
        self.local = nn.Sequential(ConvNormAct(channels, channels, 3),
                                   nn.Conv2d(channels, dim, 1, bias=False))
        self.transformer = nn.Sequential(*[
            TransformerLayer(dim, int(dim * ffn_ratio), attention, num_heads, dropout, attn_dropout, ffn_dropout)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.proj = ConvNormAct(dim, channels, 1)
        self.fusion = ConvNormAct(2 * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)
        b, _, h, w = y.shape
        p = self.patch_size
        ph, pw = math.ceil(h / p) * p, math.ceil(w / p) * p
        resized = (ph, pw) != (h, w)
        if resized:
            y = F.interpolate(y, size=(ph, pw), mode="bilinear", align_corners=False)
        y = self.norm(self.transformer(unfold_patches(y, p)))
        y = fold_patches(y, p, b, ph, pw)
        if resized:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return self.fusion(torch.cat([x, self.proj(y)], dim=1))
