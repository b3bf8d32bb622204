"""Deploy form: a numerically equivalent rewrite of a trained model that mobile compilers handle well.

Every exporter converts this form, so improvements here help ONNX, TFLite and CoreML at once:

- BatchNorm is folded into the preceding convolution; LayerNorm affines are folded into the next linear layer.
- The transformer runs channels-first on (groups, d, h, w) maps, so every projection is a 1x1 convolution,
  heads are a free reshape to (groups, heads, c, tokens), and no tensor has rank above 4.
- Fused XFA: one qkv convolution; q and k normalised together by one op chain that also applies the
  per-head temperature; softmax over the last axis; the output projection adds straight onto the residual.
- The 2x2 patch unfold is four strided slices and a concat, the fold a split, concats and reshapes, all
  rank <= 4 (MobileViT's rank-6 reshape/permute is the usual cause of CoreML and TFLite failures).
- Optional NHWC image input (`channels_last_io`) so apps feed pixels without a transpose.

`target="tflite"` lays attention out token-major (NHWC, as LiteRT stores tensors) and expresses transposed
matmul operands as BATCH_MATMUL adj flags, so the TFLite graph has no TRANSPOSE inside attention, and writes SiLU
as x * sigmoid(x), which static int8 runs in int8 (a SiLU op stays float); the
default "generic" target keeps heads channel-major (one transpose of k per layer, which ONNX Runtime and
CoreML fold into their matmul kernels). `target="coreml"` is the generic form with LayerNorm written as
`centred * rsqrt(var + eps)`: coremltools fuses exactly that pattern into one `layer_norm` op on the channel
axis (7 MIL ops become 1, and the Neural Engine computes the variance internally instead of squaring fp16
activations, which overflow above 256), and with an XFA normalisation floor that fp16 can represent.
`target="pte"` is the generic form written in ops ExecuTorch's XNNPACK partitioner takes, so the whole graph
runs in one delegate: channel means as 1x1 convolutions (XNNPACK averages over H and W only), the L2 norm's
sum over tokens as such an average, matmuls as 3-D bmm (4-D matmul brings expand ops), slices instead of
split, and the 2x2 unfold as reshapes and permutes instead of stride-2 slices.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import require
from ..models.attention import L2_EPS, CrossFeatureAttention, LinearCrossFeatureAttention, MultiHeadSelfAttention
from ..models.blocks import ConvNormAct, InvertedResidual, TransformerLayer, XFormerBlock

__all__ = ["DeployXFA", "deploy_model", "fold_batchnorm", "has_deploy_form"]

TARGETS = ("generic", "tflite", "coreml", "pte")
FP16_TINY = 2.0**-14  # smallest normal fp16 number


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> nn.Conv2d:
    """A new conv (with bias) computing bn(conv(x)) in eval mode."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True)
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = (bias - bn.running_mean.double()) * scale + bn.bias.detach().double()
    fused.weight.data.copy_(weight.float())
    fused.bias.data.copy_(bias.float())
    return fused


def _linear_as_conv(weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.LayerNorm | None = None) -> nn.Conv2d:
    """A 1x1 conv computing linear(layernorm_affine(x)): the LayerNorm's gamma/beta folded into the weights."""
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if norm is not None:
        b = b + w @ norm.bias.detach().double()
        w = w * norm.weight.detach().double()
    conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=True)
    conv.weight.data.copy_(w.float().reshape(*w.shape, 1, 1))
    conv.bias.data.copy_(b.float())
    return conv


class ConvAct(nn.Module):
    """A BN-folded convolution with its activation."""

    def __init__(self, conv_norm_act: ConvNormAct | nn.Conv2d):
        super().__init__()
        if isinstance(conv_norm_act, nn.Conv2d):
            self.conv, self.act = fold_batchnorm(conv_norm_act, None), nn.Identity()
        else:
            layers = list(conv_norm_act)
            self.conv = fold_batchnorm(layers[0], layers[1])
            self.act = layers[2] if len(layers) > 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DeployInvertedResidual(nn.Module):
    def __init__(self, block: InvertedResidual):
        super().__init__()
        self.conv = nn.Sequential(*[ConvAct(layer) for layer in block.conv])
        self.use_residual = block.use_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map, without affine (folded into the next conv).

    For CoreML it multiplies by rsqrt, the pattern coremltools fuses into one `layer_norm(axes=[1])`; elsewhere
    it divides by sqrt (ONNX has no Rsqrt, so rsqrt would cost an extra Reciprocal node).

    For ExecuTorch ("pte") the channel means are 1x1 convolutions with weights 1/C, which XNNPACK runs;
    its mean op averages over H and W only.
    """

    def __init__(self, eps: float, target: str = "generic", channels: int | None = None):
        super().__init__()
        self.eps = eps
        self.rsqrt = target == "coreml"
        self.conv_mean = target == "pte"
        if self.conv_mean:
            self.register_buffer("mean_weight", torch.full((1, channels, 1, 1), 1.0 / channels))

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.mean_weight) if self.conv_mean else x.mean(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - self._mean(x)
        variance = self._mean(centred * centred) + self.eps
        return centred * torch.rsqrt(variance) if self.rsqrt else centred / torch.sqrt(variance)


def _matmul(a: torch.Tensor, b: torch.Tensor, target: str, adj_a: bool = False, adj_b: bool = False) -> torch.Tensor:
    """a @ b over the last two axes, either operand transposed first. For TFLite the transposes become
    BATCH_MATMUL's adj_x/adj_y flags instead of TRANSPOSE ops."""
    if target == "tflite" and (adj_a or adj_b):
        require("litert_torch.backend.experimental.torch_tfl._ops", "the TFLite deploy form", "tflite")  # torch.ops.tfl
        return torch.ops.tfl.batch_matmul(a, b, adj_a, adj_b)
    a, b = (a.transpose(-2, -1) if adj_a else a), (b.transpose(-2, -1) if adj_b else b)
    if target == "pte" and a.dim() > 3:  # a 4-D matmul decomposes with expand ops XNNPACK does not take
        out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
        return out.reshape(*a.shape[:-1], b.shape[-1])
    return a @ b


def _split_heads(x: torch.Tensor, sizes: list[int], target: str) -> tuple[torch.Tensor, ...]:
    """x.split(sizes, dim=1); for "pte" as slices, which XNNPACK runs (it has no split)."""
    if target != "pte":
        return x.split(sizes, dim=1)
    starts = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return tuple(x[:, a:b] for a, b in zip(starts, starts[1:]))


class DeployAttention(nn.Module):
    """Shared plumbing of the fused attentions on a channels-first (groups, d, h, w) map.

    Input is the LayerNorm-normalised map (LayerNorm affine folded into `qkv`); the caller adds the output to
    the residual. Two layouts of the same arithmetic:
    - targets "generic" (ONNX) and "coreml": channel-major heads, a free reshape to (groups, heads, c, tokens);
    - target "tflite": token-major (groups, tokens, d), which is NHWC as LiteRT stores it, so no TRANSPOSE is
      needed; heads are split along channels and every transposed operand is an adj flag of BATCH_MATMUL.
    """

    def __init__(self, qkv_weight: torch.Tensor, qkv_bias: torch.Tensor, attn: nn.Module, norm: nn.LayerNorm,
                 target: str):
        super().__init__()
        self.num_heads = attn.num_heads
        self.target = target
        self.qkv = _linear_as_conv(qkv_weight, qkv_bias, norm)
        self.proj = _linear_as_conv(attn.proj.weight, attn.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape
        qkv = self.qkv(x)
        if self.target == "tflite":
            y = self._attend_tokens_last(qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * d))
            y = y.reshape(b, h, w, d).permute(0, 3, 1, 2)
        else:
            y = self._attend_channels_first(qkv.reshape(b, 3 * self.num_heads, d // self.num_heads, h * w))
        return self.proj(y.reshape(b, d, h, w))


class DeployXFA(DeployAttention):
    """Fused cross feature attention (both readings). q and k are L2-normalised over tokens by one op chain
    that also applies the per-head temperature: dividing q by ||q|| / t equals multiplying the logits by t
    (reading A) or the output by t (reading B).

    For CoreML, which computes in fp16, the norm itself is clamped, at fp16's smallest normal number: the
    floor 1e-24 under the sum of squares flushes to 0 in fp16, so a channel that is zero over all tokens (an
    all-black frame with seeded weights) gave 0 / 0 = NaN. Only channels with ||q|| < 6e-5 see the floor.
    """

    def __init__(self, attn: CrossFeatureAttention | LinearCrossFeatureAttention, norm: nn.LayerNorm,
                 target: str = "generic"):
        super().__init__(attn.qkv.weight, attn.qkv.bias, attn, norm, target)
        self.linear = isinstance(attn, LinearCrossFeatureAttention)
        heads, c = attn.num_heads, attn.qkv.in_features // attn.num_heads
        divisor = torch.cat([1.0 / attn.temperature.detach().reshape(-1), torch.ones(heads)])  # q heads, k heads
        if target == "tflite":
            self.register_buffer("norm_scale", divisor.repeat_interleave(c).reshape(1, 1, -1))
        else:
            self.register_buffer("norm_scale", divisor.reshape(1, -1, 1, 1))

    def _normalise(self, qk: torch.Tensor, token_axis: int) -> torch.Tensor:
        if self.target == "pte":  # XNNPACK has no sum: the mean over tokens, as a 4-D mean over H and W, times T
            g, groups, c, tokens = qk.shape
            sumsq = (qk * qk).reshape(g, groups * c, tokens, 1).mean(dim=(2, 3), keepdim=True) * float(tokens)
            sumsq = sumsq.reshape(g, groups, c, 1)
        else:
            sumsq = (qk * qk).sum(dim=token_axis, keepdim=True)
        if self.target == "coreml":
            norm = torch.clamp_min(torch.sqrt(sumsq), FP16_TINY)
        else:
            norm = torch.sqrt(torch.clamp_min(sumsq, L2_EPS * L2_EPS))
        return qk / (norm * self.norm_scale)

    def _attend_channels_first(self, qkv: torch.Tensor) -> torch.Tensor:
        heads = self.num_heads
        qk, v = _split_heads(qkv, [2 * heads, heads], self.target)  # (b, heads, c, tokens) each head
        q, k = _split_heads(self._normalise(qk, -1), [heads, heads], self.target)
        if self.linear:
            return _matmul(_matmul(v, k, self.target, adj_b=True), q, self.target)  # (v k^T) q: k^T v token-major
        return _matmul(_matmul(q, k, self.target, adj_b=True).softmax(dim=-1), v, self.target)

    def _attend_tokens_last(self, qkv: torch.Tensor) -> torch.Tensor:
        d = qkv.shape[-1] // 3
        c = d // self.num_heads
        qk, v = qkv.split([2 * d, d], dim=-1)
        qk = self._normalise(qk, 1).split(c, dim=-1)
        q, k, v = qk[: self.num_heads], qk[self.num_heads:], v.split(c, dim=-1)
        outputs = []
        for q_h, k_h, v_h in zip(q, k, v):  # (b, tokens, c) each
            if self.linear:
                outputs.append(q_h @ _matmul(k_h, v_h, self.target, adj_a=True))
            else:
                attn = _matmul(q_h, k_h, self.target, adj_a=True).softmax(dim=-1)  # (c x c)
                outputs.append(_matmul(v_h, attn, self.target, adj_b=True))
        return torch.cat(outputs, dim=-1)


class DeployMHSA(DeployAttention):
    """MobileViT's token-to-token attention with 1/sqrt(c) folded into q."""

    def __init__(self, attn: MultiHeadSelfAttention, norm: nn.LayerNorm, target: str = "generic"):
        d = attn.qkv.in_features
        weight, bias = attn.qkv.weight.detach().clone(), attn.qkv.bias.detach().clone()
        weight[:d] *= attn.scale
        bias[:d] *= attn.scale
        super().__init__(weight, bias, attn, norm, target)

    def _attend_channels_first(self, qkv: torch.Tensor) -> torch.Tensor:
        q, k, v = _split_heads(qkv, [self.num_heads] * 3, self.target)  # (b, heads, c, tokens)
        attn = _matmul(q, k, self.target, adj_a=True).softmax(dim=-1)  # (tokens x tokens)
        return _matmul(v, attn, self.target, adj_b=True)

    def _attend_tokens_last(self, qkv: torch.Tensor) -> torch.Tensor:
        c = qkv.shape[-1] // 3 // self.num_heads
        pieces = qkv.split(c, dim=-1)
        q, k, v = pieces[: self.num_heads], pieces[self.num_heads: 2 * self.num_heads], pieces[2 * self.num_heads:]
        outputs = [_matmul(q_h, k_h, self.target, adj_b=True).softmax(dim=-1) @ v_h for q_h, k_h, v_h in zip(q, k, v)]
        return torch.cat(outputs, dim=-1)


class DeployTransformerLayer(nn.Module):
    def __init__(self, layer: TransformerLayer, target: str):
        super().__init__()
        attn_cls = DeployMHSA if isinstance(layer.attn, MultiHeadSelfAttention) else DeployXFA
        dim = layer.norm1.normalized_shape[0]
        self.norm1 = ChannelLayerNorm(layer.norm1.eps, target, dim)
        self.attn = attn_cls(layer.attn, layer.norm1, target)
        self.norm2 = ChannelLayerNorm(layer.norm2.eps, target, dim)
        fc1, act, _, fc2, _ = layer.ffn
        self.fc1 = _linear_as_conv(fc1.weight, fc1.bias, layer.norm2)
        self.act = copy.deepcopy(act)
        self.fc2 = _linear_as_conv(fc2.weight, fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def unfold_groups(x: torch.Tensor, target: str = "generic") -> torch.Tensor:
    """(B, d, H, W) -> (4B, d, H/2, W/2): group p = (i, j) holds pixel (i, j) of every 2x2 patch, groups outermost.

    For "pte" the same order comes from rank-5 reshapes and permutes (columns, then rows): XNNPACK slices with
    stride 1 only.
    """
    if target == "pte":
        b, d, h, w = x.shape
        x = x.reshape(b, d, h, w // 2, 2).permute(4, 0, 1, 2, 3).reshape(2 * b, d, h, w // 2)  # j outer
        return x.reshape(2 * b, d, h // 2, 2, w // 2).permute(3, 0, 1, 2, 4).reshape(4 * b, d, h // 2, w // 2)
    return torch.cat([x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)], dim=0)


def fold_groups(x: torch.Tensor, target: str = "generic") -> torch.Tensor:
    """Inverse of unfold_groups: interleave columns, then rows, with rank <= 4 concats and reshapes.

    The interleave runs on the axis order the target stores: NCHW for "generic", NHWC for "tflite" (the
    permutes around it cancel against LiteRT's own layout), so neither graph needs a TRANSPOSE here. For
    "tflite" the map is permuted once, before the batch slices: permuting each slice instead left litert-torch
    with four TRANSPOSE ops per block.
    """
    b = x.shape[0] // 4
    if target == "tflite":
        x = x.permute(0, 2, 3, 1)
    g00, g01, g10, g11 = x[:b], x[b: 2 * b], x[2 * b: 3 * b], x[3 * b:]  # slices keep a dynamic batch symbolic
    if target == "tflite":
        b, h, w, d = g00.shape
        row0 = torch.cat([g00.reshape(b * h, w, 1, d), g01.reshape(b * h, w, 1, d)], dim=2).reshape(b * h, 1, 2 * w, d)
        row1 = torch.cat([g10.reshape(b * h, w, 1, d), g11.reshape(b * h, w, 1, d)], dim=2).reshape(b * h, 1, 2 * w, d)
        return torch.cat([row0, row1], dim=1).reshape(b, 2 * h, 2 * w, d).permute(0, 3, 1, 2)
    b, d, h, w = g00.shape
    row0 = torch.cat([g00.reshape(b * d, h, w, 1), g01.reshape(b * d, h, w, 1)], dim=3).reshape(b * d, h, 1, 2 * w)
    row1 = torch.cat([g10.reshape(b * d, h, w, 1), g11.reshape(b * d, h, w, 1)], dim=3).reshape(b * d, h, 1, 2 * w)
    return torch.cat([row0, row1], dim=2).reshape(b, d, 2 * h, 2 * w)


class DeployXFormerBlock(nn.Module):
    def __init__(self, block: XFormerBlock, target: str):
        super().__init__()
        if block.patch_size != 2:
            raise ValueError(f"the deploy form supports 2x2 patches, got {block.patch_size}")
        self.local = nn.Sequential(ConvAct(block.local[0]), ConvAct(block.local[1]))
        self.transformer = nn.Sequential(*[DeployTransformerLayer(layer, target) for layer in block.transformer])
        self.norm = ChannelLayerNorm(block.norm.eps, target, block.norm.normalized_shape[0])
        # The transformer's final LayerNorm affine folds into the 1x1 projection (which also absorbs its BN).
        proj_conv = fold_batchnorm(block.proj[0], block.proj[1])
        folded = _linear_as_conv(proj_conv.weight.reshape(proj_conv.out_channels, -1), proj_conv.bias, block.norm)
        self.proj, self.proj_act = folded, copy.deepcopy(block.proj[2])
        self.fusion = ConvAct(block.fusion)
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)
        _, _, h, w = y.shape
        ph, pw = math.ceil(h / 2) * 2, math.ceil(w / 2) * 2
        resized = (ph, pw) != (h, w)  # static: depends on the traced input size only
        if resized:
            y = F.interpolate(y, size=(ph, pw), mode="bilinear", align_corners=False)
        y = fold_groups(self.norm(self.transformer(unfold_groups(y, self.target))), self.target)
        if resized:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return self.fusion(torch.cat([x, self.proj_act(self.proj(y))], dim=1))


class ChannelsLastInput(nn.Module):
    """Takes NHWC images (as an Android Bitmap or a decoded JPEG is laid out) and runs the NCHW model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image.permute(0, 3, 1, 2))


class SigmoidGate(nn.Module):
    """SiLU written as x * sigmoid(x): the int8 quantiser annotates sigmoid and mul (and LiteRT runs both in int8),
    while a SiLU op is left float between DEQUANTIZE and QUANTIZE."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _gate_silu(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.SiLU):
            setattr(module, name, SigmoidGate())
        else:
            _gate_silu(child)


def _convert(module: nn.Module, target: str) -> nn.Module:
    if isinstance(module, XFormerBlock):
        return DeployXFormerBlock(module, target)
    if isinstance(module, InvertedResidual):
        return DeployInvertedResidual(module)
    if isinstance(module, ConvNormAct):
        return ConvAct(module)
    for name, child in module.named_children():
        setattr(module, name, _convert(child, target))
    return module


def has_deploy_form(model: nn.Module) -> bool:
    """Models built from our convolutional blocks have a deploy form; plain ViTs export as they are."""
    return any(isinstance(m, (XFormerBlock, InvertedResidual)) for m in model.modules())


@torch.no_grad()
def deploy_model(model: nn.Module, channels_last_io: bool = False, target: str = "generic") -> nn.Module:
    """The deploy form of `model` (a new module in eval mode; the original is untouched)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    deployed = _convert(copy.deepcopy(model).eval(), target)
    if target == "tflite":
        _gate_silu(deployed)
    deployed.model_config = model.model_config
    if channels_last_io:
        wrapped = ChannelsLastInput(deployed).eval()
        wrapped.model_config = model.model_config
        return wrapped
    return deployed.eval()
