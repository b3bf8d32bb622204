"""The accuracy column of `xformer bench --data`: top-1 of every benchmarked file on an image folder, next to
PyTorch's, with rows that lose more than a set margin flagged, so one run gives a latency table and an accuracy
table (as Ultralytics' benchmark does).

Each artifact is evaluated once, whatever the thread counts, through the same validator as `xformer val`.
"""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from ..datasets import EvalTransform, ImageFolder, find_split
from ..errors import XFormerError
from ..runtimes import load
from ..runtimes.torch_runtime import TorchRuntime
from ..train.validator import evaluate_runtime
from .record import BenchResult
from .sources import Artifact

__all__ = ["QUANTISED_MARKERS", "add_accuracy", "margin_for"]

# Precisions judged with the quantised margin: anything with integer or palettised weights or activations.
QUANTISED_MARKERS = ("int", "w8", "palette")


def margin_for(precision: str, float_margin: float, int8_margin: float) -> float:
    return int8_margin if any(m in precision for m in QUANTISED_MARKERS) else float_margin


def _key(model: str, fmt: str, precision: str, size, file) -> tuple:
    return model, fmt, precision, tuple(size), file


def _evaluate(artifact: Artifact, data: str, threads: int, console: Console | None) -> dict:
    if artifact.module is not None:
        runtime = TorchRuntime(artifact.module, threads=threads)
        spec = artifact.module.model_config.preprocess
        if tuple(spec.input_size) != tuple(artifact.input_size):
            spec = spec.with_input_size(tuple(artifact.input_size))
    else:
        runtime = load(artifact.path, threads=threads)
        spec = runtime.preprocess_spec
    if runtime.config.task != "classify":
        raise XFormerError(f"--data adds top-1 for classifiers; {artifact.model} is a {runtime.config.task} model: "
                           f"score it with `xformer val FILE --data {data}` (mIoU)")
    dataset = ImageFolder(find_split(data, "val"), EvalTransform(replace(spec, layout="NCHW")),
                          classes=runtime.config.labels)
    return evaluate_runtime(runtime, dataset, progress=console)


def add_accuracy(results: list[BenchResult], artifacts: list[Artifact], data: str, float_margin: float = 0.3,
                 int8_margin: float = 1.0, threads: int = 1, console: Console | None = None) -> None:
    """Fill `accuracy` of every result from its artifact's top-1 on `data`; flag rows below PyTorch by more than
    the margin (percentage points; `int8_margin` for quantised precisions)."""
    measured: dict[tuple, dict] = {}
    for artifact in artifacts:
        if artifact.error:
            continue
        key = _key(artifact.model, artifact.format, artifact.precision, artifact.input_size,
                   str(artifact.path) if artifact.path else None)
        try:
            measured[key] = _evaluate(artifact, data, threads, console)
        except Exception as err:  # one file failing to evaluate must not hide the others' accuracy
            measured[key] = {"error": f"{type(err).__name__}: {err}"}
    # PyTorch's top-1 for each model and size: the eager row when benchmarked, else the reference weights.
    baseline: dict[tuple, float] = {}
    for artifact in artifacts:
        key = (artifact.model, tuple(artifact.input_size))
        if key in baseline or artifact.reference is None:
            continue
        torch_key = next((k for k in measured if k[:2] == (artifact.model, "torch") and k[3] == key[1]), None)
        if torch_key is not None and "top1" in measured[torch_key]:
            baseline[key] = measured[torch_key]["top1"]
        else:
            reference = Artifact(artifact.model, artifact.source, "torch", "fp32", artifact.input_size,
                                 module=artifact.reference)
            baseline[key] = _evaluate(reference, data, threads, console)["top1"]
    for r in results:
        entry = measured.get(_key(r.model, r.format, r.precision, r.input_size, r.file))
        if entry is None:
            continue
        if "error" in entry:
            r.accuracy = {"error": entry["error"]}
            r.warnings.append(f"accuracy not measured: {entry['error']}")
            continue
        reference = baseline.get((r.model, tuple(r.input_size)))
        margin = margin_for(r.precision, float_margin, int8_margin)
        delta = None if reference is None else 100 * (entry["top1"] - reference)
        flagged = delta is not None and delta < -margin
        r.accuracy = {"data": data, "images": entry["images"], "top1": entry["top1"], "top5": entry["top5"],
                      "pytorch_top1": reference, "delta_pt": delta, "margin_pt": margin, "flagged": flagged}
        if flagged:
            r.warnings.append(f"top-1 {entry['top1']:.2%} is {-delta:.2f} pt below PyTorch's {reference:.2%} "
                              f"(margin {margin:g} pt)")
