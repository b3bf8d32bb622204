"""Classification accuracy on an image folder, for a checkpoint or any exported file.

One validator serves `xformer val`, the accuracy column of `xformer bench --data` and the trainer's evaluation
after every epoch: the images go through the preprocessing contract embedded in the model (the same
`preprocess()` every runtime and the Android app reproduce), into a `Runtime`, and the hits are summed per
class. The sums are plain tensors so distributed ranks can add theirs before anything is divided.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from ..checkpoint import load_model, weights_sha256
from ..datasets import EvalTransform, ImageFolder, find_split
from ..errors import CheckpointError
from ..models import create_model
from ..runtimes import Runtime, load
from ..runtimes.torch_runtime import TorchRuntime

__all__ = ["ClassificationMetrics", "ValResult", "evaluate_runtime", "reference_for", "validate"]


class ClassificationMetrics:
    """Running sums of top-1 and top-5 hits per class (and of the loss and of agreement with a reference)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        # per class: images, top-1 hits, top-5 hits; then loss sum, agreeing predictions, compared predictions
        self.per_class = torch.zeros(num_classes, 3, dtype=torch.float64)
        self.totals = torch.zeros(3, dtype=torch.float64)

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: float = 0.0,
               reference: torch.Tensor | None = None) -> None:
        logits, labels = logits.detach().float().cpu(), labels.cpu()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit1 = (top[:, 0] == labels).double()
        hit5 = (top == labels[:, None]).any(1).double()
        for column, values in enumerate((torch.ones_like(hit1), hit1, hit5)):
            self.per_class[:, column].index_add_(0, labels, values)
        self.totals[0] += loss_sum
        if reference is not None:
            self.totals[1] += float((reference.argmax(1).cpu() == top[:, 0]).sum())
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


@dataclass
class ValResult:
    """Accuracy of one model file on one image folder; `agreement` is top-1 agreement with the PyTorch weights."""

    source: str
    format: str
    precision: str
    runtime: str
    data: str
    images: int
    top1: float
    top5: float
    per_class: dict = field(default_factory=dict)
    agreement: float | None = None
    reference: str | None = None
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


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


def evaluate_runtime(runtime: Runtime, dataset: ImageFolder, reference: nn.Module | None = None, batch: int = 32,
                     workers: int = 0, progress: Console | None = None) -> dict:
    """Metrics summary of `runtime` on `dataset` (built with the runtime's own contract)."""
    fixed = runtime.inputs[0].shape[0]
    loader = torch.utils.data.DataLoader(dataset, batch_size=fixed if fixed > 0 else batch, num_workers=workers)
    classes = runtime.config.labels
    metrics = ClassificationMetrics(len(classes))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=progress, transient=True, disable=progress is None) as bar:
        task = bar.add_task(f"val {runtime.path.name}", total=len(dataset))
        for images, labels in loader:
            logits = torch.from_numpy(np.asarray(runtime.run(images.numpy())))
            loss = nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
            expected = None
            if reference is not None:
                with torch.inference_mode():
                    expected = reference(images)
            metrics.update(logits, labels, loss, expected)
            bar.update(task, advance=len(labels))
    return metrics.summary(classes)


def validate(source: str | Path, data: str | Path, *, ckpt: str | None = None, model_name: str | None = None,
             batch: int = 32, threads: int | None = None, workers: int = 0, strict: bool = False,
             progress: Console | None = None) -> ValResult:
    """Top-1/top-5 and per-class accuracy of a checkpoint or exported file on `data` (a data set root, whose
    val/ split is used, or a folder of class folders), with agreement against the PyTorch weights when known."""
    start = time.perf_counter()
    runtime = load(source, threads=threads, **({"model_name": model_name} if model_name else {}))
    reference = reference_for(runtime, ckpt, model_name)
    folder = find_split(data, "val")
    dataset = ImageFolder(folder, EvalTransform(runtime.preprocess_spec), strict=strict, classes=runtime.config.labels)
    summary = evaluate_runtime(runtime, dataset, reference, batch=batch, workers=workers, progress=progress)
    export_info = runtime.metadata.get("export", {})
    return ValResult(source=str(source), format=export_info.get("format", "torch"),
                     precision=export_info.get("precision", "fp32"), runtime=runtime.name, data=str(folder),
                     images=summary["images"], top1=summary["top1"], top5=summary["top5"],
                     per_class=summary["per_class"], agreement=summary["agreement"],
                     reference=ckpt or ("seeded weights" if reference is not None else None),
                     skipped=[str(p) for p, _ in dataset.skipped], seconds=time.perf_counter() - start)
