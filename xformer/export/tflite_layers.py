"""Per-layer error of a .tflite file against the float PyTorch model: where a quantised file loses accuracy.

The file runs on LiteRT's reference kernels with every intermediate tensor kept; the deploy form of the
reference model runs in PyTorch with a hook on every module. A module's output is the last tensor produced
under its path (litert-torch names tensors after module paths) with the module's output shape. Each row is one
such tensor in execution order, labelled with the innermost module that holds every op since the previous
row, so the error a row adds (its relative error minus the previous row's) belongs to that module: an
activation (`layer2.0.conv.0.act`, SiLU), a whole attention (`layer3.1.transformer.0.attn`, XFA), a conv.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelFileError, require
from .tflite_graph import module_path, read_graph

__all__ = ["LayerError", "PerLayerReport", "per_layer_report"]


@dataclass
class LayerError:
    layer: str  # innermost module holding every op since the previous row; "" is the model (the logits row)
    kind: str  # that module's class
    output_of: str  # the module whose output tensor this row compares
    rel_error: float  # ||file - torch|| / ||torch|| over all inputs
    cosine: float
    added: float  # rel_error minus the previous row's: the error this layer adds


@dataclass
class PerLayerReport:
    rows: list[LayerError]
    by_kind: dict[str, float] = field(default_factory=dict)  # error added per module class (positive parts)

    @property
    def worst(self) -> LayerError:
        return max(self.rows, key=lambda r: r.added)

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "by_kind": self.by_kind, "worst": asdict(self.worst)}


def _common_prefix(paths: list[str]) -> str:
    split = [p.split(".") if p else [] for p in paths]
    prefix = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix)


def _as_file_layout(reference: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A PyTorch output in the file's layout: LiteRT keeps 4-D feature maps NHWC (checked first, so a map whose
    channels equal its height and width is still compared channel for channel)."""
    if reference.ndim == 4 and reference.transpose(0, 2, 3, 1).shape == shape:
        return reference.transpose(0, 2, 3, 1)
    return reference if reference.shape == shape else None


def _torch_outputs(model: nn.Module, images: np.ndarray) -> dict[str, list[np.ndarray]]:
    outputs: dict[str, list[np.ndarray]] = {}
    hooks = []
    for name, module in model.named_modules():
        def hook(_, __, output, name=name):
            if isinstance(output, torch.Tensor):
                outputs.setdefault(name, []).append(output.detach().numpy().copy())

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for x in images:
                model(torch.from_numpy(x[None]))
    finally:
        for h in hooks:
            h.remove()
    return outputs


def per_layer_report(path: str | Path, reference: nn.Module, images: np.ndarray) -> PerLayerReport:
    """Per-layer error of the .tflite file at `path` against `reference`, on `images` (NCHW, preprocessed)."""
    from ..runtimes.litert_runtime import dequantize, quantize
    from .deploy import deploy_model, has_deploy_form

    litert = require("ai_edge_litert.interpreter", "per-layer TFLite errors", "tflite")
    interpreter = litert.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                                     experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    graph = read_graph(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    model = deploy_model(reference, target="tflite") if has_deploy_form(reference) else reference
    expected = _torch_outputs(model, images)

    # (op position, tensor index, module path) in execution order; QUANTIZE/DEQUANTIZE pairs that PT2E inserts
    # carry no module path and belong to no module.
    produced = [(position, index, path)
                for position, (indices, names) in enumerate(zip(graph.output_tensors, graph.outputs))
                for index, name in zip(indices, names)
                if index in tensors and (path := module_path(name)) is not None]
    matches: dict[int, tuple[int, str]] = {}  # op position -> (tensor, a module whose output it is)
    for name, _ in model.named_modules():  # outer modules first: a shared tensor is named after the outermost
        outs = expected.get(name)
        if not name or outs is None:
            continue
        candidates = [(pos, idx) for pos, idx, p in produced
                      if (p == name or p.startswith(name + "."))
                      and _as_file_layout(outs[0], tuple(tensors[idx]["shape"])) is not None]
        if candidates:
            pos, idx = candidates[-1]
            matches.setdefault(pos, (idx, name))
    output = interpreter.get_output_details()[0]["index"]  # the logits: named after the signature, not a module
    matches[len(graph.ops) - 1] = (output, "")
    if len(matches) == 1:
        raise ModelFileError(f"{Path(path).name} has no tensors named after modules of {reference.model_config.arch}"
                             "; per-layer errors need a file exported with the litert-torch converter")

    detail = interpreter.get_input_details()[0]
    sums = {pos: [0.0, 0.0, 0.0] for pos in matches}  # |diff|^2, |ref|^2, <file, ref>, summed over images
    file_sq = {pos: 0.0 for pos in matches}
    layout_nhwc = len(detail["shape"]) == 4 and detail["shape"][-1] == 3
    for i, x in enumerate(images):
        array = x[None].transpose(0, 2, 3, 1) if layout_nhwc else x[None]
        scale, zero_point = detail["quantization"]
        if np.issubdtype(detail["dtype"], np.integer):
            array = quantize(array, np.dtype(detail["dtype"]), scale, zero_point)
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=detail["dtype"]))
        interpreter.invoke()
        for pos, (idx, name) in matches.items():
            t = tensors[idx]
            value = interpreter.get_tensor(idx)
            scale, zero_point = t["quantization"]
            value = dequantize(value, scale, zero_point) if scale > 0 else value.astype(np.float32)
            ref = _as_file_layout(expected[name][i], value.shape).astype(np.float64)
            value = value.astype(np.float64)
            sums[pos][0] += float(((value - ref) ** 2).sum())
            sums[pos][1] += float((ref ** 2).sum())
            sums[pos][2] += float((value * ref).sum())
            file_sq[pos] += float((value ** 2).sum())

    rows, previous_error, previous_pos = [], 0.0, -1
    modules = dict(model.named_modules())
    for pos in sorted(matches):
        paths = [p for q, _, p in produced if previous_pos < q <= pos]
        label = _common_prefix(paths) if paths and matches[pos][1] else matches[pos][1]
        diff, ref, dot = sums[pos]
        error = (diff ** 0.5) / (ref ** 0.5 + 1e-30)
        cosine = dot / ((ref * file_sq[pos]) ** 0.5 + 1e-30)
        kind = type(modules.get(label, model)).__name__
        rows.append(LayerError(label, kind, matches[pos][1], error, cosine, error - previous_error))
        previous_error, previous_pos = error, pos
    by_kind: dict[str, float] = {}
    for row in rows:
        by_kind[row.kind] = by_kind.get(row.kind, 0.0) + max(row.added, 0.0)
    return PerLayerReport(rows, dict(sorted(by_kind.items(), key=lambda kv: -kv[1])))
