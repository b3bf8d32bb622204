"""What a task plugs into the shared trainer and validator.

A task says how to read its data set, how to augment it, what loss to train with, and how to score outputs;
the trainer and validator do the rest (schedule, EMA, DDP, checkpoints, runtimes) the same way for every task.
The model's `ModelConfig.task` picks the task. Metrics objects keep running sums in tensors (so distributed
ranks can add theirs) and name one `fitness` key of their summary that decides the best checkpoint. A task may
bring its own recipe (`defaults`: TrainConfig values used where the user gave none) and reduce its loss over the
batch by mean (the loss of an average image) or by sum (detection, as mmdetection does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import DataError, XFormerError
from ..models.registry import ModelConfig
from ..preprocess import PreprocessSpec

__all__ = ["ClassificationMetrics", "ClassificationTask", "Metrics", "Task", "get_task"]


class ClassificationMetrics:
    """Running sums of top-1 and top-5 hits per class (and of the loss and of agreement with a reference)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        # per class: images, top-1 hits, top-5 hits; then loss sum, agreeing predictions, compared predictions
        self.per_class = torch.zeros(num_classes, 3, dtype=torch.float64)
        self.totals = torch.zeros(3, dtype=torch.float64)

    def update(self, logits, labels: torch.Tensor, reference=None) -> None:
        logits, labels = torch.as_tensor(logits).detach().float().cpu(), labels.cpu()
        loss_sum = nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit1 = (top[:, 0] == labels).double()
        hit5 = (top == labels[:, None]).any(1).double()
        for column, values in enumerate((torch.ones_like(hit1), hit1, hit5)):
            self.per_class[:, column].index_add_(0, labels, values)
        self.totals[0] += loss_sum
        if reference is not None:
            self.totals[1] += float((torch.as_tensor(reference).argmax(1).cpu() == top[:, 0]).sum())
            self.totals[2] += len(labels)

    def all_reduce(self) -> None:
        """Sum every rank's counts (no-op outside torch.distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for tensor in (self.per_class, self.totals):
                torch.distributed.all_reduce(tensor)

    @property
    def count(self) -> int:
        return int(self.per_class[:, 0].sum())

    def summary(self, classes: list[str]) -> dict:
        n = self.per_class[:, 0]
        total = max(float(n.sum()), 1.0)
        per_class = {name: {"images": int(n[i]), "top1": float(self.per_class[i, 1] / n[i]) if n[i] else None}
                     for i, name in enumerate(classes) if n[i]}
        return {"images": int(n.sum()), "top1": float(self.per_class[:, 1].sum() / total),
                "top5": float(self.per_class[:, 2].sum() / total), "loss": float(self.totals[0] / total),
                "agreement": float(self.totals[1] / self.totals[2]) if self.totals[2] else None,
                "per_class": per_class}


class Metrics(Protocol):
    def update(self, outputs, targets, reference=None) -> None: ...  # a batch (reference: PyTorch's outputs)
    def all_reduce(self) -> None: ...  # sum over torch.distributed ranks
    def summary(self, classes: list[str]) -> dict: ...  # "images", "loss", the task's columns, "per_class", ...


class Task(Protocol):
    name: str
    fitness: str  # summary key that picks the best checkpoint (higher is better)
    columns: tuple[str, ...]  # summary keys recorded per epoch
    collate: Any  # DataLoader collate_fn of evaluation batches (None: default)
    train_collate: Any  # DataLoader collate_fn of training batches (None: default)
    loss_reduction: str  # "mean" or "sum" over the images of a batch
    defaults: dict  # TrainConfig values of the task's recipe, used where the user gave none

    # a dataset with .classes, .skipped, .transform, and optionally .note (what was fixed on reading)
    def train_data(self, data: str, strict: bool) -> Any: ...
    def val_data(self, data: str, spec: PreprocessSpec, classes: list[str], strict: bool) -> Any: ...
    def train_transform(self, spec: PreprocessSpec, config) -> Any: ...
    def criterion(self, config, model_config: ModelConfig) -> nn.Module: ...
    def metrics(self, model_config: ModelConfig) -> Metrics: ...


@dataclass(frozen=True)
class ClassificationTask:
    """Image folders of class folders; cross-entropy with label smoothing; top-1 picks the best checkpoint."""

    name: str = "classify"
    fitness: str = "top1"
    columns: tuple[str, ...] = ("top1", "top5")
    collate: Any = None
    train_collate: Any = None
    loss_reduction: str = "mean"
    defaults: dict = field(default_factory=dict)

    def train_data(self, data: str, strict: bool):
        from ..datasets import ImageFolder, find_split

        train_root, val_root = find_split(data, "train"), find_split(data, "val")
        if train_root == val_root:
            raise DataError(f"{data} needs train/ and val/ splits of class folders to train on "
                            f"({data}/train/CLASS/image.jpg); `xformer dataset digits DIR` writes an example")
        return ImageFolder(train_root, strict=strict)

    def val_data(self, data: str, spec: PreprocessSpec, classes: list[str], strict: bool):
        from ..datasets import EvalTransform, ImageFolder, find_split

        return ImageFolder(find_split(data, "val"), EvalTransform(spec), strict=strict, classes=classes)

    def train_transform(self, spec: PreprocessSpec, config):
        from ..datasets import RandomResizedCropFlip

        return RandomResizedCropFlip(spec, scale=(config.crop_scale, 1.0), hflip=config.hflip)

    def criterion(self, config, model_config: ModelConfig) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def metrics(self, model_config: ModelConfig):
        return ClassificationMetrics(model_config.num_classes)


def get_task(name: str) -> Task:
    if name == "classify":
        return ClassificationTask()
    if name == "segment":
        from .segmentation import SegmentationTask

        return SegmentationTask()
    if name == "detect":
        from .detection import DetectionTask

        return DetectionTask()
    raise XFormerError(f"unknown task {name!r}; this version handles classify, segment and detect")
