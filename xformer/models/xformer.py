"""XFormer: "Lightweight Vision Transformer with Cross Feature Attention" (Zhao et al., arXiv 2207.07268).

A MobileViT-style CNN-ViT hybrid whose transformer layers use cross feature attention (XFA). No official
code exists: the layout below is the reconstruction in ../shared/design/xformer-paper.md (MobileViT-S widths
and depths with XFA give 5.58M parameters, matching the paper's 5.5M). The same class with
attention="mhsa" is MobileViT, so XFA and MHSA are compared on one codebase.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..preprocess import PreprocessSpec
from .blocks import ConvNormAct, InvertedResidual, XFormerBlock
from .registry import register_model

__all__ = ["XFormer", "XFormerArch"]


@dataclass(frozen=True)
class XFormerArch:
    """Widths and depths. `channels` = stem, layer1..layer5; `dims`/`depths` are for layer3..layer5."""

    channels: tuple[int, ...]
    dims: tuple[int, int, int]
    depths: tuple[int, int, int] = (2, 4, 3)
    expansion: float = 4.0
    head_channels: int | None = None  # default: min(4 * last width, 960), as in MobileViT


class XFormer(nn.Module):
    """stem -> MV2 (/2) -> 3x MV2 (/4) -> [MV2 s2 + XFormer block] x3 (/8, /16, /32) -> 1x1 conv -> pool -> FC."""

    def __init__(self, arch: XFormerArch, num_classes: int = 1000, attention: str = "xfa", num_heads: int = 4,
                 ffn_ratio: float = 2.0, patch_size: int = 2, drop_rate: float = 0.1, block_dropout: float = 0.1,
                 features_only: bool = False):
        super().__init__()
        stem, c1, c2, c3, c4, c5 = arch.channels
        exp = arch.expansion
        self.stem = ConvNormAct(3, stem, 3, stride=2)
        self.layer1 = InvertedResidual(stem, c1, 1, exp)
        self.layer2 = nn.Sequential(InvertedResidual(c1, c2, 2, exp), InvertedResidual(c2, c2, 1, exp),
                                    InvertedResidual(c2, c2, 1, exp))
        stages = []
        for c_in, c_out, dim, depth in zip((c2, c3, c4), (c3, c4, c5), arch.dims, arch.depths):
            stages.append(nn.Sequential(
                InvertedResidual(c_in, c_out, 2, exp),
                XFormerBlock(c_out, dim, depth, attention, num_heads, ffn_ratio, patch_size, block_dropout)))
        self.layer3, self.layer4, self.layer5 = stages
        if not features_only:  # a backbone for dense heads has no classifier
            head = arch.head_channels or min(4 * c5, 960)
            self.head_conv = ConvNormAct(c5, head, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(drop_rate)
            self.classifier = nn.Linear(head, num_classes)
        self.feature_channels = (c2, c3, c4, c5)
        self.feature_strides = (4, 8, 16, 32)
        self._init_weights()

    def _init_weights(self) -> None:
        # ml-cvnets initialisation: Kaiming-normal convs, truncated-normal linears, unit norms.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 4, 8, 16 and 32 (for detection and segmentation heads)."""
        x = self.layer2(self.layer1(self.stem(x)))
        f8 = self.layer3(x)
        f16 = self.layer4(f8)
        return [x, f8, f16, self.layer5(f16)]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.head_conv(x)).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[-1])


# MobileViT eval contract: RGB in [0, 1], no mean/std, short side 288, center crop 256, bicubic.
_MOBILEVIT_PREPROCESS = PreprocessSpec(input_size=(256, 256), resize_size=288, interpolation="bicubic")

_ARCHS = {
    "xxs": XFormerArch(channels=(16, 16, 24, 48, 64, 80), dims=(64, 80, 96), expansion=2.0),
    "xs": XFormerArch(channels=(16, 32, 48, 64, 80, 96), dims=(96, 120, 144)),
    "s": XFormerArch(channels=(16, 32, 64, 96, 128, 160), dims=(144, 192, 240)),
}


def _create_xformer(size: str, default_attention: str, **kwargs) -> XFormer:
    kwargs.setdefault("attention", default_attention)
    return XFormer(_ARCHS[size], **kwargs)


@register_model(_MOBILEVIT_PREPROCESS, "XFormer-XXS", attention="xfa")
def xformer_xxs(**kwargs) -> XFormer:
    return _create_xformer("xxs", "xfa", **kwargs)


@register_model(_MOBILEVIT_PREPROCESS, "XFormer-XS", attention="xfa")
def xformer_xs(**kwargs) -> XFormer:
    return _create_xformer("xs", "xfa", **kwargs)


@register_model(_MOBILEVIT_PREPROCESS, "XFormer-S: the paper's 5.5M model",
                attention="xfa")
def xformer_s(**kwargs) -> XFormer:
    return _create_xformer("s", "xfa", **kwargs)


@register_model(_MOBILEVIT_PREPROCESS, "MobileViT-S peer (same code, MHSA)", attention="mhsa")
def mobilevit_s(**kwargs) -> XFormer:
    return _create_xformer("s", "mhsa", **kwargs)
