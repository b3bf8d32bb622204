"""The segmentation task: image/label-map pairs, random scale/crop/flip, per-pixel cross-entropy that skips the
ignore id, and mIoU from a confusion matrix (the number the best checkpoint is chosen by).

Outputs are stride-4 logits; both the loss and the scores upsample them bilinearly to the label map's own
resolution first (SegFormer's protocol), so a file exported at any input size is scored on the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from ..models.registry import ModelConfig
from ..models.segmentation import IGNORE_INDEX, upsample_logits
from ..preprocess import PreprocessSpec

__all__ = ["SegmentationLoss", "SegmentationMetrics", "SegmentationTask"]


class SegmentationLoss(nn.Module):
    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.ce(upsample_logits(logits, masks.shape[-2:]), masks)


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


class SegmentationMetrics:
    """Running confusion matrix (rows: truth, columns: prediction) over labelled pixels, plus the loss and the
    pixel agreement of the argmax with a reference model's."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        # loss sum, images, agreeing pixels, compared pixels, max abs logit difference to the reference
        self.totals = torch.zeros(5, dtype=torch.float64)

    def update(self, outputs, targets, reference=None) -> None:
        outputs = _as_tensor(outputs).detach().float().cpu()
        k = self.num_classes
        for i, target in enumerate(targets):
            target = _as_tensor(target).long().cpu()
            logits = upsample_logits(outputs[i: i + 1], tuple(target.shape))
            prediction = logits.argmax(1)[0]
            valid = target != IGNORE_INDEX
            self.totals[0] += F.cross_entropy(logits, target[None], ignore_index=IGNORE_INDEX, reduction="sum").item()
            self.totals[1] += 1
            self.confusion += torch.bincount(target[valid] * k + prediction[valid], minlength=k * k).reshape(k, k)
            if reference is not None:
                expected = _as_tensor(reference).float()[i: i + 1]
                agreeing = upsample_logits(expected, tuple(target.shape)).argmax(1)[0] == prediction
                self.totals[2] += float(agreeing.sum())
                self.totals[3] += prediction.numel()
                self.totals[4] = max(float(self.totals[4]), float((expected - outputs[i: i + 1]).abs().max()))

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.confusion)
            torch.distributed.all_reduce(self.totals)

    def summary(self, classes: list[str]) -> dict:
        confusion = self.confusion
        truth, predicted, hits = confusion.sum(1), confusion.sum(0), confusion.diag()
        union = truth + predicted - hits
        iou = torch.where(union > 0, hits / union.clamp_min(1), torch.full_like(hits, float("nan")))
        labelled = max(float(truth.sum()), 1.0)
        scored = ~torch.isnan(iou)
        return {"images": int(self.totals[1]),
                "miou": float(iou[scored].mean()) if scored.any() else 0.0,
                "pixel_acc": float(hits.sum() / labelled),
                "loss": float(self.totals[0] / labelled),
                "agreement": float(self.totals[2] / self.totals[3]) if self.totals[3] else None,
                "max_logit_err": float(self.totals[4]) if self.totals[3] else None,
                "per_class": {name: {"pixels": int(truth[i]), "iou": None if torch.isnan(iou[i]) else float(iou[i])}
                              for i, name in enumerate(classes)},
                "confusion": confusion.long().tolist()}


@dataclass(frozen=True)
class SegmentationTask:
    """Cityscapes-style or images/masks folder pairs; mIoU picks the best checkpoint."""

    name: str = "segment"
    fitness: str = "miou"
    columns: tuple[str, ...] = ("miou", "pixel_acc")
    train_collate: Any = None
    loss_reduction: str = "mean"
    defaults: dict = field(default_factory=dict)

    @property
    def collate(self) -> Any:
        from ..seg_datasets import collate_masks

        return collate_masks

    def train_data(self, data: str, strict: bool):
        from ..seg_datasets import SegmentationFolder, read_classes

        classes = read_classes(data)
        if classes is None:
            raise DataError(f"{data} does not name its classes: write {data}/classes.txt with one class name per "
                            "line, in label id order")
        return SegmentationFolder(data, "train", classes, strict=strict)

    def val_data(self, data: str, spec: PreprocessSpec, classes: list[str], strict: bool):
        from ..seg_datasets import SegEvalTransform, SegmentationFolder

        return SegmentationFolder(data, "val", classes, SegEvalTransform(spec), strict=strict)

    def train_transform(self, spec: PreprocessSpec, config):
        from ..seg_datasets import SegTrainTransform

        return SegTrainTransform(spec, scale=(config.scale_min, config.scale_max), hflip=config.hflip)

    def criterion(self, config, model_config: ModelConfig) -> nn.Module:
        return SegmentationLoss(config.label_smoothing)

    def metrics(self, model_config: ModelConfig) -> SegmentationMetrics:
        return SegmentationMetrics(model_config.num_classes)
