"""Object detection: an XFormer (or MobileNetV2) backbone with mmdetection's light YOLOv3 neck and head.

The paper's COCO result (33.2 AP, 6.3 M params, 3.8 GFLOPs) uses YOLOv3; the design notes (section 4.1) read it
as mmdet's `yolov3_mobilenetv2` configuration: backbone maps at strides 8/16/32, `YOLOV3Neck` (num_scales 3,
96 channels per level), `YOLOV3Head` with 3 anchors per level, input 320x320 letterboxed.

Raw-output contract (what `model(x)` returns, what exporters export and runtimes hand back):
    a list of 3 tensors, one per level in `model.strides` order (32, 16, 8 px: coarsest first, as mmdet), each
    (B, A*(5+C), H/stride, W/stride) with A = 3 anchors and C classes. Channel a*(5+C)+k of a cell holds, for
    anchor a: k=0,1 the x/y offset logits, k=2,3 the log-scale of w/h against the anchor, k=4 the objectness
    logit, k=5.. the class logits (independent sigmoids, not a softmax).
`decode(outputs, anchors, strides)` turns them into boxes (B, N, 4) x1, y1, x2, y2 in input pixels and scores
(B, N, C) = sigmoid(objectness) * sigmoid(class), N = A * sum(H*W) ordered level, anchor, row, column. It uses
only rank <= 4 tensors and shapes known from the input size, so it can sit inside an exported graph.
`nms`/`postprocess` then keep the boxes a user sees (thresholds in `NMSConfig`, mmdet's test_cfg) for PyTorch
inference and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..preprocess import PreprocessSpec
from .blocks import ConvNormAct
from .mobilenetv2 import MobileNetV2
from .registry import register_model
from .xformer import _ARCHS, XFormer

__all__ = ["COCO_ANCHORS", "Detections", "Detector", "NMSConfig", "YOLOv3Head", "YOLOv3Neck", "batched_nms",
           "box_iou", "decode", "nms", "postprocess"]

# mmdet's YOLOv3 anchors (width, height) in input pixels, per level in stride order 32, 16, 8.
COCO_ANCHORS = (((116, 90), (156, 198), (373, 326)), ((30, 61), (62, 45), (59, 119)), ((10, 13), (16, 30), (33, 23)))
STRIDES = (32, 16, 8)


class DetectionBlock(nn.Sequential):
    """mmdet's YOLOv3 DetectionBlock: 1x1 / 3x3 (twice the width) alternating, five convs, BN + LeakyReLU 0.1."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(ConvNormAct(in_ch, out_ch, 1, act="leaky"), ConvNormAct(out_ch, 2 * out_ch, 3, act="leaky"),
                         ConvNormAct(2 * out_ch, out_ch, 1, act="leaky"),
                         ConvNormAct(out_ch, 2 * out_ch, 3, act="leaky"),
                         ConvNormAct(2 * out_ch, out_ch, 1, act="leaky"))


class YOLOv3Neck(nn.Module):
    """mmdet's YOLOV3Neck: the deepest map through a detection block, then for each shallower map: 1x1 conv,
    2x nearest upsample, concat with the map, detection block. Outputs are ordered deepest first."""

    def __init__(self, in_channels: tuple[int, ...], width: int = 96):
        super().__init__()
        deepest, *shallower = in_channels
        self.detect = nn.ModuleList([DetectionBlock(deepest, width)])
        self.lateral = nn.ModuleList()
        for channels in shallower:
            self.lateral.append(ConvNormAct(width, width, 1, act="leaky"))
            self.detect.append(DetectionBlock(channels + width, width))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.detect[0](features[0])
        outs = [out]
        for lateral, detect, x in zip(self.lateral, self.detect[1:], features[1:]):
            out = detect(torch.cat([F.interpolate(lateral(out), scale_factor=2.0, mode="nearest"), x], dim=1))
            outs.append(out)
        return outs


class YOLOv3Head(nn.Module):
    """mmdet's YOLOV3Head: per level a 3x3 conv bridge and a 1x1 prediction of A*(5+C) channels."""

    def __init__(self, num_levels: int, width: int, num_classes: int, num_anchors: int = 3,
                 strides: tuple[int, ...] = STRIDES):
        super().__init__()
        self.num_attrib = 5 + num_classes
        self.bridge = nn.ModuleList(ConvNormAct(width, width, 3, act="leaky") for _ in range(num_levels))
        self.pred = nn.ModuleList(nn.Conv2d(width, num_anchors * self.num_attrib, 1) for _ in range(num_levels))
        for pred, stride in zip(self.pred, strides):
            # mmdet's (and Ultralytics') priors: about 8 objects per 608x608 image per level, 1% per class.
            nn.init.normal_(pred.weight, std=0.01)
            bias = pred.bias.data.view(num_anchors, self.num_attrib)
            bias.zero_()
            bias[:, 4] = _logit(8 / (608 / stride) ** 2)
            bias[:, 5:] = _logit(0.01)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [pred(bridge(x)) for bridge, pred, x in zip(self.bridge, self.pred, features)]


def _logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p)))


class Detector(nn.Module):
    """Backbone maps at strides 8/16/32 -> YOLOv3 neck -> YOLOv3 head -> raw maps (see the module docstring)."""

    stride = 32  # inputs must divide by this

    def __init__(self, backbone: nn.Module, num_classes: int = 80, width: int = 96,
                 anchors: tuple = COCO_ANCHORS):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.strides = STRIDES
        # Non-persistent: the anchors are architecture (a builder option), not weights.
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.neck = YOLOv3Neck(tuple(reversed(backbone.feature_channels[1:])), width)
        self.head = YOLOv3Head(len(STRIDES), width, num_classes, self.anchors.shape[1], STRIDES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[-2:]
        if height % self.stride or width % self.stride:
            raise ValueError(f"input {height}x{width} is not a multiple of {self.stride} (the backbone's stride); "
                             f"resize to e.g. {max(32, round(height / 32) * 32)}x{max(32, round(width / 32) * 32)}")
        features = self.backbone.forward_features(x)[1:]  # strides 8, 16, 32
        return self.head(self.neck(features[::-1]))

    def decode(self, outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return decode(outputs, self.anchors, self.strides)


def decode(outputs: list[torch.Tensor], anchors: torch.Tensor, strides: tuple[int, ...] = STRIDES
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head maps -> boxes (B, N, 4) x1y1x2y2 in input pixels and scores (B, N, C), objectness times class.

    As mmdet's YOLOBBoxCoder: centre = (cell + sigmoid(txy)) * stride, size = anchor * exp(twh). Every tensor is
    rank <= 4 and every shape follows from the input size, so the function exports as a static graph."""
    anchors = torch.as_tensor(anchors, dtype=torch.float32)
    all_boxes, all_scores = [], []
    for p, level_anchors, stride in zip(outputs, anchors, strides):
        batch, channels, height, width = p.shape
        num_anchors = level_anchors.shape[0]
        p = p.float().reshape(batch, num_anchors, channels // num_anchors, height * width)
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1)]).reshape(1, 1, 2, height * width).to(p.device)
        centre = (grid + p[:, :, 0:2].sigmoid()) * stride
        size = p[:, :, 2:4].exp() * level_anchors.to(p.device).reshape(1, num_anchors, 2, 1)
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=2)  # (B, A, 4, HW)
        scores = p[:, :, 4:5].sigmoid() * p[:, :, 5:].sigmoid()  # (B, A, C, HW)
        all_boxes.append(boxes.permute(0, 1, 3, 2).reshape(batch, num_anchors * height * width, 4))
        all_scores.append(scores.permute(0, 1, 3, 2).reshape(batch, num_anchors * height * width, -1))
    return torch.cat(all_boxes, dim=1), torch.cat(all_scores, dim=1)


@dataclass(frozen=True)
class NMSConfig:
    """Post-processing thresholds (mmdet's YOLOv3 test_cfg)."""

    score_threshold: float = 0.05  # objectness * class probability a box needs to be kept
    iou_threshold: float = 0.45  # same-class boxes overlapping more than this are suppressed
    pre_nms: int = 1000  # best candidates per image considered by NMS
    max_detections: int = 100  # boxes per image after NMS


@dataclass
class Detections:
    """One image's boxes (K, 4) x1y1x2y2, scores (K,) and class indices (K,), best first."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.scores)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix (N, M) of x1y1x2y2 boxes."""
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp_min(0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS (torchvision.ops.nms semantics): indices of the kept boxes, highest score first."""
    order = torch.argsort(scores, descending=True, stable=True)
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    suppressed = [False] * len(order)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in overlaps[i, i + 1:].nonzero()[0]:
            suppressed[i + 1 + j] = True
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
                ) -> torch.Tensor:
    """NMS within each class: boxes of different classes are shifted apart so they never overlap."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset, scores, iou_threshold)


def postprocess(boxes: torch.Tensor, scores: torch.Tensor, config: NMSConfig = NMSConfig()) -> list[Detections]:
    """Decoded boxes (B, N, 4) and scores (B, N, C) -> per image the boxes kept by class-wise NMS.

    Like mmdet's multiclass_nms, a box may be kept for several classes when it scores for each."""
    results = []
    for image_boxes, image_scores in zip(boxes.float(), scores.float()):
        candidates, classes = (image_scores > config.score_threshold).nonzero(as_tuple=True)
        values = image_scores[candidates, classes]
        if len(values) > config.pre_nms:
            values, top = values.topk(config.pre_nms)
            candidates, classes = candidates[top], classes[top]
        picked = image_boxes[candidates]
        keep = batched_nms(picked, values, classes, config.iou_threshold)[:config.max_detections]
        results.append(Detections(picked[keep], values[keep], classes[keep]))
    return results


# Letterboxed into 320x320 (the paper's size, inferred from its FLOPs), RGB in [0, 1] as the backbone expects.
_DET_PREPROCESS = PreprocessSpec(input_size=(320, 320), resize_size=None, interpolation="bilinear",
                                 resize_mode="letterbox", pad_value=114)


def _create_detector(backbone: str, num_classes: int = 80, width: int = 96, anchors: tuple = COCO_ANCHORS,
                     **kwargs) -> Detector:
    if backbone == "mobilenetv2":
        net = MobileNetV2(features_only=True, **kwargs)
    else:
        kwargs.setdefault("attention", "xfa")
        net = XFormer(_ARCHS[backbone], features_only=True, **kwargs)
    return Detector(net, num_classes, width, anchors)


def _register(name: str, backbone: str, attention: str, description: str) -> None:
    def builder(**kwargs) -> Detector:
        return _create_detector(backbone, **kwargs)

    builder.__name__ = name
    register_model(_DET_PREPROCESS, description, attention=attention, task="detect", num_classes=80)(builder)


_register("xformer_xxs_yolov3", "xxs", "xfa", "XFormer-XXS + YOLOv3 neck/head (detection)")
_register("xformer_xs_yolov3", "xs", "xfa", "XFormer-XS + YOLOv3 neck/head (detection)")
_register("xformer_s_yolov3", "s", "xfa", "XFormer-S + YOLOv3: the paper's COCO detector")
_register("mobilenetv2_yolov3", "mobilenetv2", "-", "MobileNetV2 + YOLOv3: the paper's detection baseline")
