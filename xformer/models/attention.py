"""Token mixers for the XFormer block: cross feature attention (XFA) and its peers.

XFA (Zhao et al., arXiv 2207.07268) attends across feature channels instead of across tokens, so its
cost is linear in the number of tokens. The paper's formula is not public; ../design notes reconstruct it
as XCiT-style channel attention ("xfa", reading A) with a softmax-free linear variant ("xfa_linear",
reading B). Multi-head self-attention ("mhsa") is MobileViT's token-to-token attention, kept on the same
code path so the XFA-vs-MHSA comparison runs on one codebase.

All three take and return tokens shaped (batch, tokens, dim). They are written for clarity; the
export package lowers them to a fused, rank <= 4 deploy form.
"""

import torch
from torch import nn

__all__ = ["ATTENTION_TYPES", "CrossFeatureAttention", "LinearCrossFeatureAttention", "MultiHeadSelfAttention",
           "create_attention", "l2_normalize"]

L2_EPS = 1e-12


def l2_normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """L2 normalisation written with plain ops: F.normalize exports to ReduceL2, which onnx2tf rejects."""
    return x / (x * x).sum(dim, keepdim=True).sqrt().clamp_min(L2_EPS)


class _ChannelAttentionBase(nn.Module):
    """Shared parameters of both XFA readings: one qkv projection, a learned per-head temperature, proj."""

    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        # Replaces 1/sqrt(c): after L2 normalisation the logits are cosines, so the sharpness is learned.
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split tokens (b, n, d) into q, k, v laid out (b, heads, channels, tokens): tokens last."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv.unbind(0)
        return q, k, v

    @staticmethod
    def _tokens(y: torch.Tensor) -> torch.Tensor:
        """Merge (b, heads, channels, tokens) back to (b, tokens, dim)."""
        b, h, c, n = y.shape
        return y.permute(0, 3, 1, 2).reshape(b, n, h * c)


class CrossFeatureAttention(_ChannelAttentionBase):
    """XFA, reading A: softmax over a channel-by-channel map of cosine similarities between q and k.

    q and k are L2-normalised along the token axis, so every entry of the (c x c) map is bounded whatever
    the resolution, and the map's size does not depend on the number of tokens.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(x)
        q, k = l2_normalize(q), l2_normalize(k)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj_drop(self.proj(self._tokens(attn @ v)))


class LinearCrossFeatureAttention(_ChannelAttentionBase):
    """XFA, reading B: softmax-free linear attention y = temperature * q^ (k^T v), q^ and k^ L2-normalised over tokens.

    The (c x c) cross-feature matrix is k^T v (key features by value features). Without softmax the whole
    layer is a chain of matmuls, which mobile NPUs like.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(x)
        q, k = l2_normalize(q), l2_normalize(k)
        context = v @ k.transpose(-2, -1)  # (c_v x c_k): k^T v in token-major notation
        y = (context @ q) * self.temperature
        return self.proj_drop(self.proj(self._tokens(self.attn_drop(y))))


class MultiHeadSelfAttention(nn.Module):
    """MobileViT's token-to-token attention: cost and memory grow with tokens squared."""

    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # split then a rank-4 reshape per operand: no rank-5 tensor, which CoreML and mobile NPUs handle badly
        q, k, v = (t.reshape(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)
                   for t in self.qkv(x).split(d, dim=-1))
        attn = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1))
        y = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(y))


ATTENTION_TYPES = {
    "xfa": CrossFeatureAttention,
    "xfa_linear": LinearCrossFeatureAttention,
    "mhsa": MultiHeadSelfAttention,
}


def create_attention(kind: str, dim: int, num_heads: int, **kwargs) -> nn.Module:
    if kind not in ATTENTION_TYPES:
        raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTION_TYPES)}")
    return ATTENTION_TYPES[kind](dim, num_heads=num_heads, **kwargs)
