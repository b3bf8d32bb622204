"""Which layers static int8 hurts, and which to keep in float: `--int8-float-layers auto|NAMES` for TFLite int8.

Sweep: each quantisable layer (every Conv2d and Linear of the form being exported) is quantised ALONE, the rest of
the network float, and its logits are compared with the float model's on held-out calibration images (mean cosine,
top-1 agreement). One at a time, rather than all-but-one, because the error each layer adds on its own ranks
layers cleanly: with all-but-one every measurement carries the rest of the network's int8 error, and the
differences between layers drown in it.

The numbers come from PT2E's quantised reference graph (the same quantiser, scales and rounding as the .tflite
file, run in PyTorch at a batch of 32) rather than from a .tflite per layer: a conversion per layer would take
minutes each. Observers see float values during calibration, so a layer's ranges do not depend on which other
layers are quantised, and the sweep calibrates on a subset (SWEEP_CALIBRATION images).

`auto`: the whole network int8 but the K most sensitive layers, K = 0, 1, 2, 4, ... up to MAX_FLOAT_LAYERS,
calibrated on the full calibration set like the file, until top-1 agreement with the float model on the judged
images reaches AGREEMENT_GATE (0.99: at most 1 point of top-1 accuracy can move). The file then written is judged
by parity like every other file, and the report records the sweep, each step and the layers kept in float.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from ..console import err_console as console
from ..errors import OptionError

__all__ = ["AGREEMENT_GATE", "Int8Plan", "LayerSensitivity", "choose_float_layers", "float_layer_filter",
           "parse_float_layers", "quantisable_layers", "sweep"]

AGREEMENT_GATE = 0.99
MAX_FLOAT_LAYERS = 8
SWEEP_CALIBRATION = 64
JUDGED_IMAGES = 128
BATCH = 32
_ROOT = "model."  # LogitsSignature's child: the names in a traced graph start with it


@dataclass
class LayerSensitivity:
    layer: str
    cosine: float  # mean over the judged images, only this layer int8
    top1_agreement: float


@dataclass
class Int8Plan:
    float_layers: list[str]
    gate: str
    passed: bool
    judged_images: int
    sweep: list[LayerSensitivity] = field(default_factory=list)  # most sensitive first
    steps: list[dict] = field(default_factory=list)  # float layers tried: count, cosine, top-1 agreement
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _prefix(form: nn.Module) -> str:
    """Where the model's own modules start inside the exported form (the NHWC wrapper adds one level)."""
    from .deploy import ChannelsLastInput

    return "model." if isinstance(form, ChannelsLastInput) else ""


def quantisable_layers(form: nn.Module) -> list[str]:
    """Every Conv2d and Linear of `form`, named as in the model (no wrapper prefix), in graph order."""
    prefix = _prefix(form)
    return [name.removeprefix(prefix) for name, module in form.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))]


def parse_float_layers(form: nn.Module, names: str | list[str]) -> list[str]:
    """`names` (comma-separated or a list) checked against the model's modules: a layer or a whole block."""
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    prefix = _prefix(form)
    known = {name.removeprefix(prefix) for name, _ in form.named_modules() if name and name != prefix.rstrip(".")}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        example = ", ".join(quantisable_layers(form)[:3])
        raise OptionError(f"--int8-float-layers: {', '.join(unknown) or 'no names'} not a module of the model; "
                          f"give module names such as {example} (the sweep of `auto` lists them all), or auto")
    return wanted


def float_layer_filter(form: nn.Module, names: list[str], keep: bool = True) -> Callable[[list[str]], bool]:
    """The `keep_float` test of `quantize_pt2e`: true for nodes inside `names` (keep=True) or outside them."""
    paths = {_ROOT + _prefix(form) + n for n in names}

    def inside(stack: list[str]) -> bool:  # a node's stack lists every enclosing module, so a block matches too
        return any(p in paths for p in stack)

    return inside if keep else (lambda stack: not inside(stack))


def _batches(images: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` images, evenly spaced (the folder is sorted by class), a whole number of batches (the
    quantised graph has a fixed batch)."""
    count = min(limit, len(images)) // BATCH * BATCH
    return images[np.linspace(0, len(images) - 1, count).round().astype(int)] if count else images[:0]


@torch.no_grad()
def _logits(graph, images: np.ndarray) -> np.ndarray:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tflite_litert._one_thread: thousands of tiny ops
    try:
        return np.concatenate([graph(image=torch.from_numpy(images[i:i + BATCH]))["logits"].numpy()
                               for i in range(0, len(images), BATCH)])
    finally:
        torch.set_num_threads(threads)


def _agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    cosine = (reference * candidate).sum(1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
                                               + 1e-30)
    return float(cosine.mean()), float((reference.argmax(1) == candidate.argmax(1)).mean())


class _Quantised:
    """The form traced once at batch BATCH; quantised copies of it with some layers float, and their agreement."""

    def __init__(self, form: nn.Module, judged: np.ndarray):
        from .tflite_litert import LogitsSignature, export_signature

        self.form, self.judged = form, judged
        self.graph = export_signature(form, torch.from_numpy(judged[:BATCH]))
        self.reference = _logits(LogitsSignature(form).eval(), judged)

    def measure(self, calibration: np.ndarray, keep_float: Callable[[list[str]], bool]) -> tuple[float, float]:
        from .tflite_litert import quantize_pt2e

        quantised, _ = quantize_pt2e(self.graph, calibration, keep_float, batch=BATCH)
        return _agreement(self.reference, _logits(quantised, self.judged))


def sweep(form: nn.Module, calibration: np.ndarray, layers: list[str] | None = None,
          quantised: _Quantised | None = None) -> list[LayerSensitivity]:
    """Sensitivity of each layer quantised alone (all quantisable layers unless `layers`), most sensitive first.
    `calibration`: the calibration images in the form's input layout; the judged images are taken from them."""
    quantised = quantised or _Quantised(form, _batches(calibration[1::2], JUDGED_IMAGES))
    subset = _batches(calibration[::2], SWEEP_CALIBRATION)
    layers = quantisable_layers(form) if layers is None else layers
    results = []
    columns = (TextColumn("int8 sensitivity sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("sweep", total=len(layers))
        for layer in layers:
            cosine, top1 = quantised.measure(subset, float_layer_filter(form, [layer], keep=False))
            results.append(LayerSensitivity(layer, cosine, top1))
            bar.advance(task)
    return sorted(results, key=lambda r: (r.top1_agreement, r.cosine))


def choose_float_layers(form: nn.Module, calibration: np.ndarray) -> Int8Plan:
    """`auto`: the fewest most-sensitive layers to keep float for the agreement gate (see the module docstring)."""
    start = time.perf_counter()
    if len(calibration) < 2 * BATCH:
        raise OptionError(f"--int8-float-layers auto judges int8 on held-out calibration images and needs at least "
                          f"{2 * BATCH}, not {len(calibration)}: pass --calib DIR with {2 * BATCH}+ images "
                          "(100+ recommended)")
    quantised = _Quantised(form, _batches(calibration[1::2], JUDGED_IMAGES))
    ranking = sweep(form, calibration, quantised=quantised)
    full = _batches(calibration, len(calibration))
    plan = Int8Plan([], f"top-1 agreement with float >= {AGREEMENT_GATE:.0%} on {len(quantised.judged)} calibration "
                        "images", False, len(quantised.judged), ranking)
    count = 0
    while True:
        names = [r.layer for r in ranking[:count]]
        cosine, top1 = quantised.measure(full, float_layer_filter(form, names))
        plan.steps.append({"float_layers": count, "cosine": cosine, "top1_agreement": top1})
        console.print(f"  int8 with {count} layer(s) in float: top-1 agreement {top1:.2%}, cosine {cosine:.5f}",
                      highlight=False)
        plan.float_layers, plan.passed = names, top1 >= AGREEMENT_GATE
        if plan.passed or count >= min(MAX_FLOAT_LAYERS, len(ranking)):
            break
        count = min(max(1, 2 * count), MAX_FLOAT_LAYERS, len(ranking))
    plan.seconds = time.perf_counter() - start
    if not plan.passed:
        console.print(f"[yellow]warning:[/] int8 misses the gate ({plan.gate}) even with the {len(plan.float_layers)} "
                      "most sensitive layers in float; the file keeps them float, parity judges it", highlight=False)
    return plan
