"""Scores of a checkpoint or any exported file on a data set: classification accuracy, segmentation mIoU,
detection COCO AP.

One validator serves `xformer val`, the accuracy column of `xformer bench --data` and the trainer's evaluation
after every epoch: the images go through the preprocessing contract embedded in the model (the same
`preprocess()` every runtime and the Android app reproduce), into a `Runtime`, and the hits are summed per
class. The sums are plain tensors so distributed ranks can add theirs before anything is divided.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from ..checkpoint import load_model, weights_sha256
from ..errors import CheckpointError
from ..models import create_model
from ..runtimes import Runtime, load
from ..runtimes.torch_runtime import TorchRuntime
from .tasks import get_task

__all__ = ["ValResult", "evaluate_runtime", "reference_for", "validate"]


@dataclass
class ValResult:
    """Scores of one model file on one data set. `metrics` is the task's summary (classification: top1, top5,
    per_class; segmentation: miou, pixel_acc, per-class IoU, confusion); its keys also read as attributes.
    `agreement` is top-1 (or argmax pixel) agreement with the PyTorch weights."""

    source: str
    format: str
    precision: str
    runtime: str
    data: str
    task: str
    images: int
    metrics: dict = field(default_factory=dict)
    agreement: float | None = None
    reference: str | None = None
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __getattr__(self, name: str):
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {**{k: v for k, v in d.items() if k != "metrics"}, **self.metrics}


def reference_for(runtime: Runtime, ckpt: str | None = None, model_name: str | None = None) -> nn.Module | None:
    """The PyTorch model with the file's own weights: `ckpt` when given (its weights must be the file's), else
    the seeded model of the same architecture when the weights hash says the file was exported from it."""
    if isinstance(runtime, TorchRuntime):
        return None
    expected = runtime.metadata.get("weights_sha256")
    if ckpt is not None:
        model, _ = load_model(ckpt, model_name)
        if expected and weights_sha256(model) != expected:
            raise CheckpointError(f"{ckpt} holds other weights than {runtime.path.name} was exported from "
                                  "(weights sha256 differs); pass the checkpoint it was exported from")
        return model
    config = runtime.config
    model = create_model(config.arch, num_classes=config.num_classes, labels=config.labels or None,
                         preprocess=config.preprocess, **config.options)
    return model if weights_sha256(model) == expected else None


def evaluate_runtime(runtime: Runtime, dataset, reference: nn.Module | None = None, batch: int = 32,
                     workers: int = 0, progress: Console | None = None) -> dict:
    """Metrics summary of `runtime` on `dataset` (built with the runtime's own contract), by the file's task."""
    task = get_task(runtime.config.task)
    fixed = runtime.inputs[0].shape[0]
    loader = torch.utils.data.DataLoader(dataset, batch_size=fixed if fixed > 0 else batch, num_workers=workers,
                                         collate_fn=task.collate)
    classes = runtime.config.labels
    metrics = task.metrics(runtime.config)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=progress, transient=True, disable=progress is None) as bar:
        bar_task = bar.add_task(f"val {runtime.path.name}", total=len(dataset))
        for images, targets in loader:
            outputs = runtime.run(images.numpy())  # an array, or a list of arrays (a detector's levels)
            expected = None
            if reference is not None:
                with torch.inference_mode():
                    expected = reference(images)
            metrics.update(outputs, targets, expected)
            bar.update(bar_task, advance=len(images))
    return metrics.summary(classes)


def validate(source: str | Path, data: str | Path, *, ckpt: str | None = None, model_name: str | None = None,
             batch: int = 32, threads: int | None = None, workers: int = 0, strict: bool = False,
             progress: Console | None = None) -> ValResult:
    """Scores of a checkpoint or exported file on `data` (a data set root, whose val/ split is used, or one
    split), by the file's task, with agreement against the PyTorch weights when known."""
    start = time.perf_counter()
    runtime = load(source, threads=threads, **({"model_name": model_name} if model_name else {}))
    reference = reference_for(runtime, ckpt, model_name)
    task = get_task(runtime.config.task)
    dataset = task.val_data(str(data), runtime.preprocess_spec, runtime.config.labels, strict)
    summary = evaluate_runtime(runtime, dataset, reference, batch=batch, workers=workers, progress=progress)
    export_info = runtime.metadata.get("export", {})
    folder = getattr(dataset, "root", data)
    agreement = summary.pop("agreement")
    images = summary.pop("images")
    return ValResult(source=str(source), format=export_info.get("format", "torch"),
                     precision=export_info.get("precision", "fp32"), runtime=runtime.name, data=str(folder),
                     task=task.name, images=images, metrics=summary, agreement=agreement,
                     reference=ckpt or ("seeded weights" if reference is not None else None),
                     skipped=[str(p) for p, _ in dataset.skipped], seconds=time.perf_counter() - start)
