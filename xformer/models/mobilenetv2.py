"""MobileNetV2 1.0 (Sandler et al., arXiv 1801.04381), built from the same inverted-residual blocks as XFormer.

The CNN peer in benchmarks: the paper's detection baseline and the usual mobile reference point.
"""

import torch
from torch import nn

from ..preprocess import PreprocessSpec
from .blocks import ConvNormAct, InvertedResidual, make_divisible
from .registry import register_model

__all__ = ["MobileNetV2"]

# (expansion, channels, repeats, first stride) per stage, from the paper's Table 2.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_FEATURE_STAGES = (1, 2, 4, 6)  # stage indices whose outputs are at strides 4, 8, 16, 32


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width: float = 1.0, drop_rate: float = 0.2,
                 features_only: bool = False):
        super().__init__()
        c_in = make_divisible(32 * width)
        self.stem = ConvNormAct(3, c_in, 3, stride=2, act="relu6")
        stages, self.feature_channels = [], []
        for expansion, channels, repeats, stride in _STAGES:
            c_out = make_divisible(channels * width)
            blocks = [InvertedResidual(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, expansion, "relu6")
                      for i in range(repeats)]
            stages.append(nn.Sequential(*blocks))
            if len(stages) - 1 in _FEATURE_STAGES:
                self.feature_channels.append(c_out)
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.feature_channels = tuple(self.feature_channels)
        self.feature_strides = (4, 8, 16, 32)
        if not features_only:  # a backbone for dense heads has no 1280-wide conv and classifier
            head = make_divisible(1280 * max(1.0, width))
            self.head_conv = ConvNormAct(c_in, head, 1, act="relu6")
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(drop_rate)
            self.classifier = nn.Linear(head, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # fan_in keeps activations alive through the depthwise convs of an untrained network, so
                # seeded weights give informative (non-vanishing) logits for parity checks.
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 4, 8, 16 and 32."""
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in _FEATURE_STAGES:
                features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)[-1]
        return self.classifier(self.dropout(self.pool(self.head_conv(x)).flatten(1)))


_IMAGENET_PREPROCESS = PreprocessSpec(input_size=(224, 224), resize_size=256, interpolation="bilinear",
                                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@register_model(_IMAGENET_PREPROCESS, "MobileNetV2 1.0 CNN peer")
def mobilenetv2_100(**kwargs) -> MobileNetV2:
    return MobileNetV2(**kwargs)
