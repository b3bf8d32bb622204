"""What a task plugs into the shared trainer and validator.

A task says how to read its data set, how to augment it, what loss to train with, and how to score outputs;
the trainer and validator do the rest (schedule, EMA, DDP, checkpoints, runtimes) the same way for every task.
The model's `ModelConfig.task` picks the task. Metrics objects keep running sums in tensors (so distributed
ranks can add theirs) and name one `fitness` key of their summary that decides the best checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from ..errors import DataError, XFormerError
from ..preprocess import PreprocessSpec

__all__ = ["ClassificationTask", "Metrics", "Task", "get_task"]


class Metrics(Protocol):
    def update(self, outputs, targets, reference=None) -> None: ...  # a batch (reference: PyTorch's outputs)
    def all_reduce(self) -> None: ...  # sum over torch.distributed ranks
    def summary(self, classes: list[str]) -> dict: ...  # "images", "loss", the task's columns, "per_class", ...


class Task(Protocol):
    name: str
    fitness: str  # summary key that picks the best checkpoint (higher is better)
    columns: tuple[str, ...]  # summary keys recorded per epoch
    collate: Any  # DataLoader collate_fn of evaluation batches (None: default)

    def train_data(self, data: str, strict: bool) -> Any: ...  # a dataset with .classes, .skipped, .transform
    def val_data(self, data: str, spec: PreprocessSpec, classes: list[str], strict: bool) -> Any: ...
    def train_transform(self, spec: PreprocessSpec, config) -> Any: ...
    def criterion(self, config) -> nn.Module: ...
    def metrics(self, num_classes: int) -> Metrics: ...


@dataclass(frozen=True)
class ClassificationTask:
    """Image folders of class folders; cross-entropy with label smoothing; top-1 picks the best checkpoint."""

    name: str = "classify"
    fitness: str = "top1"
    columns: tuple[str, ...] = ("top1", "top5")
    collate: Any = None

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

    def criterion(self, config) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def metrics(self, num_classes: int):
        from .validator import ClassificationMetrics

        return ClassificationMetrics(num_classes)


def get_task(name: str) -> Task:
    if name == "classify":
        return ClassificationTask()
    if name == "segment":
        from .segmentation import SegmentationTask

        return SegmentationTask()
    raise XFormerError(f"unknown task {name!r}; this version handles classify and segment")
