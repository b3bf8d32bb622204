"""A DeiT-Tiny-like plain ViT (Touvron et al., arXiv 2012.12877): the pure-transformer peer in benchmarks.

Patch 16, width 192, 12 layers, 3 heads, MLP x4, class token, learned position embedding (resized to
the input's patch grid when it differs, a static-shape branch).
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..preprocess import PreprocessSpec
from .blocks import TransformerLayer
from .registry import register_model

__all__ = ["VisionTransformer"]


class VisionTransformer(nn.Module):
    def __init__(self, num_classes: int = 1000, img_size: int = 224, patch_size: int = 16, dim: int = 192,
                 depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim))
        self.blocks = nn.Sequential(*[TransformerLayer(dim, int(dim * mlp_ratio), "mhsa", num_heads)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, patch_pos.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        b, _, gh, gw = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
        x = self.norm(self.blocks(x + self._position_embedding(gh, gw)))
        return self.classifier(x[:, 0])


_DEIT_PREPROCESS = PreprocessSpec(input_size=(224, 224), resize_size=256, interpolation="bicubic",
                                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@register_model(_DEIT_PREPROCESS, "DeiT-Tiny-like ViT peer", attention="mhsa")
def deit_tiny(**kwargs) -> VisionTransformer:
    return VisionTransformer(**kwargs)
