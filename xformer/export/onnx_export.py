"""ONNX export.

Exporter: `torch.onnx.export(..., dynamo=True)` (the torch.export-based exporter). It is the supported path
in torch 2.13 (the TorchScript exporter is deprecated), its output matched PyTorch to 8e-6 here, and it
records each node's module scope, which the report uses to count nodes per attention layer. It cannot go
below opset 18, so that is the default and the minimum.

The graph is simplified with onnxsim (onnxslim when onnxsim fails); if the simplified graph's outputs move
beyond tolerance, the unsimplified graph is kept and a warning recorded. Node debug metadata (stack traces
with local paths) is stripped, our metadata document is embedded, and the file is checked with
`onnx.checker.check_model(full_check=True)`. Exporting the same model twice gives byte-identical files.
"""

from __future__ import annotations

import ast
import collections
import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ExportError, OptionError, require
from .metadata import METADATA_KEY, dumps

__all__ = ["export_onnx", "onnx_graph_stats"]

MIN_OPSET = 18
SIMPLIFY_TOLERANCE = 1e-5
_ATTENTION_SCOPE = re.compile(r"^(.*\.transformer\.\d+\.attn)$")
_SCOPE_KEY = "pkg.torch.onnx.name_scopes"


def _attention_layer(node) -> str | None:
    """The attention module a node was traced from (e.g. 'layer3.1.transformer.0.attn'), if any."""
    for prop in node.metadata_props:
        if prop.key == _SCOPE_KEY:
            for scope in reversed(ast.literal_eval(prop.value)):  # a Python list literal of strings
                if _ATTENTION_SCOPE.match(scope):
                    return scope.removeprefix("model.")  # NHWC wrapper
    return None


def _attention_layer_stats(model) -> dict[str, dict]:
    """Nodes and Transposes per attention layer, read from the exporter's node scopes."""
    layers: dict[str, dict] = {}
    for node in model.graph.node:
        layer = _attention_layer(node)
        if layer is not None:
            entry = layers.setdefault(layer, {"nodes": 0, "transposes": 0})
            entry["nodes"] += 1
            entry["transposes"] += node.op_type == "Transpose"
    return layers


def onnx_graph_stats(model) -> dict:
    """Node count, op histogram and the max tensor rank after shape inference."""
    onnx = require("onnx", "ONNX export", "onnx")

    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    ranks = [len(v.type.tensor_type.shape.dim) for v in values if v.type.HasField("tensor_type")]
    histogram = collections.Counter(n.op_type for n in model.graph.node)
    return {"nodes": len(model.graph.node), "op_histogram": dict(sorted(histogram.items())),
            "max_rank": max(ranks) if ranks else 0, "transposes": histogram.get("Transpose", 0)}


def _torch_export(model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool):
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, external_data=False,
                                    input_names=["image"], output_names=["logits"], dynamic_shapes=dynamic_shapes,
                                    verbose=False, optimize=True)
    return program.model_proto


class _quiet_exporter:
    """The dynamo exporter logs progress and torchvision notices at WARNING; users need none of it."""

    def __enter__(self):
        self.loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.onnx._internal.exporter._registration")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)


def _run(model_proto, array: np.ndarray) -> np.ndarray:
    ort = require("onnxruntime", "ONNX export", "onnx")
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def _simplify(model_proto, probe: np.ndarray) -> tuple[object, dict]:
    """Simplified graph if it still matches the unsimplified one, else the original and a warning."""
    info: dict = {"simplifier": None, "simplified": False}
    try:
        onnxsim = require("onnxsim", "ONNX simplification", "onnx")
        candidate, ok = onnxsim.simplify(model_proto)
        info["simplifier"] = "onnxsim"
        if not ok:
            raise RuntimeError("onnxsim could not validate its result")
    except Exception as err:  # onnxsim fails on some graphs; onnxslim is the fallback
        try:
            onnxslim = require("onnxslim", "ONNX simplification", "onnx")
            candidate = onnxslim.slim(model_proto)
            info["simplifier"] = "onnxslim"
            info["onnxsim_error"] = str(err)[:200]
        except Exception as err2:
            info["warning"] = f"simplification failed ({err2}); kept the unsimplified graph"
            return model_proto, info
    before, after = _run(model_proto, probe), _run(candidate, probe)
    drift = float(np.abs(before - after).max())
    info["simplify_drift"] = drift
    if drift > SIMPLIFY_TOLERANCE:
        info["warning"] = f"simplified graph drifted by {drift:.1e}; kept the unsimplified graph"
        return model_proto, info
    info["simplified"] = True
    return candidate, info


def export_onnx(model: nn.Module, path: Path, *, input_size: tuple[int, int], channels_last_io: bool,
                metadata: dict, opset: int = MIN_OPSET, dynamic_batch: bool = False, simplify: bool = True,
                reference: nn.Module | None = None, compare_naive: bool = True, **_) -> dict:
    """Export `model` (already in the form to ship) to `path`; returns details for the report.

    With `compare_naive`, the training-form `reference` is exported too (in memory) so the report shows
    how many nodes each attention layer lowers to in both forms.
    """
    onnx = require("onnx", "ONNX export", "onnx")

    if opset < MIN_OPSET:
        raise OptionError(f"opset {opset} is too old: the dynamo exporter needs opset >= {MIN_OPSET}")
    height, width = input_size
    batch = 2 if dynamic_batch else 1  # torch.export specialises a dimension traced at size 1
    shape = (batch, height, width, 3) if channels_last_io else (batch, 3, height, width)
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    proto = _torch_export(model, example, opset, dynamic_batch)
    details: dict = {"exporter": "torch.onnx (dynamo)", "opset": opset, "dynamic_batch": dynamic_batch}
    # Per-layer counts come from the graph as exported: simplifiers drop the node scopes they are read from.
    attention_layers = _attention_layer_stats(proto)
    if simplify:
        proto, info = _simplify(proto, example.numpy())
        details.update(info)
    details.update(onnx_graph_stats(proto), attention_layers=attention_layers)
    if compare_naive and reference is not None and attention_layers:
        # Counted as exported, not simplified: simplifying a second graph only for its counts cost export time.
        naive = _torch_export(reference, torch.rand(1, 3, height, width), opset, False)
        naive_layers = _attention_layer_stats(naive)
        naive_stats = onnx_graph_stats(naive)
        details["naive"] = {**{k: naive_stats[k] for k in ("nodes", "max_rank", "transposes")},
                            "attention_layers": naive_layers}

    for node in proto.graph.node:  # stack traces carry local paths and change with every edit
        del node.metadata_props[:]
    del proto.metadata_props[:]
    proto.metadata_props.add(key=METADATA_KEY, value=dumps(metadata))
    proto.producer_name, proto.producer_version = "xformer-mobile", metadata["xformer_version"]
    proto.doc_string = f"{metadata['arch']} exported by xformer-mobile"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported ONNX graph is invalid: {err}") from err
    buffer = io.BytesIO()
    onnx.save_model(proto, buffer)
    path.write_bytes(buffer.getvalue())
    return details

