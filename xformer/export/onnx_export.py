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
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ExportError, OptionError, require
from ..logs import quiet_python
from ..preprocess import PreprocessSpec
from .metadata import METADATA_KEY, dumps

__all__ = ["export_onnx", "onnx_graph_stats"]

MIN_OPSET = 18
SIMPLIFY_TOLERANCE = 1e-5
_float_graphs: dict[tuple, tuple[bytes, dict]] = {}
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
    names = getattr(model, "output_names", ["logits"])  # a detector's names its form's outputs
    # the dynamo exporter logs progress and torchvision notices at WARNING; users need none of it
    with quiet_python("torch.onnx", "torch.onnx._internal.exporter._registration"):
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, external_data=False,
                                    input_names=["image"], output_names=names, dynamic_shapes=dynamic_shapes,
                                    verbose=False, optimize=True)
    return program.model_proto


def _append_nms(model_proto, detection: dict) -> None:
    """Decoded boxes (1, N, 4) and scores (1, N, C) -> `detections` (K, 6): x1, y1, x2, y2, score, class, best
    first, by ONNX NonMaxSuppression per class with the metadata's thresholds, then the best `max_detections`."""
    onnx = require("onnx", "ONNX export", "onnx")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    graph = model_proto.graph
    boxes, scores = (o.name for o in graph.output)

    def const(name: str, values, dtype) -> str:
        graph.initializer.append(helper.make_tensor(f"nms_{name}", dtype, [len(values)], values))
        return f"nms_{name}"

    limit = const("max_detections", [detection["max_detections"]], TensorProto.INT64)
    nodes = [
        ("Transpose", [scores], ["nms_scores_cn"], {"perm": [0, 2, 1]}),
        ("NonMaxSuppression", [boxes, "nms_scores_cn", limit, const("iou", [detection["iou_threshold"]],
                                                                   TensorProto.FLOAT),
                               const("score", [detection["score_threshold"]], TensorProto.FLOAT)],
         ["nms_selected"], {}),
        ("GatherND", ["nms_scores_cn", "nms_selected"], ["nms_selected_scores"], {}),
        ("Gather", ["nms_selected", const("class_column", [1], TensorProto.INT64)], ["nms_class_col"], {"axis": 1}),
        ("Gather", ["nms_selected", const("box_column", [2], TensorProto.INT64)], ["nms_box_col"], {"axis": 1}),
        ("Squeeze", ["nms_box_col", const("axis1", [1], TensorProto.INT64)], ["nms_box_index"], {}),
        ("Squeeze", [boxes, const("axis0", [0], TensorProto.INT64)], ["nms_boxes_n4"], {}),
        ("Gather", ["nms_boxes_n4", "nms_box_index"], ["nms_selected_boxes"], {"axis": 0}),
        ("Shape", ["nms_selected_scores"], ["nms_count"], {}),
        ("Min", ["nms_count", limit], ["nms_k"], {}),
        ("TopK", ["nms_selected_scores", "nms_k"], ["nms_top_scores", "nms_top"], {"axis": 0}),
        ("Gather", ["nms_selected_boxes", "nms_top"], ["nms_top_boxes"], {"axis": 0}),
        ("Gather", ["nms_class_col", "nms_top"], ["nms_top_classes"], {"axis": 0}),
        ("Cast", ["nms_top_classes"], ["nms_top_classes_f"], {"to": TensorProto.FLOAT}),
        ("Unsqueeze", ["nms_top_scores", "nms_axis1"], ["nms_score_col"], {}),
        ("Concat", ["nms_top_boxes", "nms_score_col", "nms_top_classes_f"], ["detections"], {"axis": 1}),
    ]
    for op, inputs, outputs, attrs in nodes:
        graph.node.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["detections", 6]))


def _run(model_proto, array: np.ndarray) -> np.ndarray:
    """Every output of the graph, flattened into one array (for comparing two graphs)."""
    ort = require("onnxruntime", "ONNX export", "onnx")
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([o.reshape(-1) for o in session.run(None, {session.get_inputs()[0].name: array})])


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


def _float_graph(model: nn.Module, input_size: tuple[int, int], channels_last_io: bool, metadata: dict, opset: int,
                 dynamic_batch: bool, simplify: bool, reference: nn.Module | None, compare_naive: bool):
    """The simplified float32 graph and its details; every precision of one model in one process starts from
    the same export (the dynamo exporter takes most of a minute for XFormer-S)."""
    onnx = require("onnx", "ONNX export", "onnx")
    key = (metadata["arch"], metadata["weights_sha256"], metadata["export"].get("deploy"), input_size,
           channels_last_io, opset, dynamic_batch, simplify, compare_naive and reference is not None,
           metadata.get("detection", {}).get("outputs"))  # a detector's output form changes the graph
    if key in _float_graphs:
        proto_bytes, details = _float_graphs[key]
        return onnx.load_model_from_string(proto_bytes), {**details, "conversion": "reused in this process"}
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
    detection = metadata.get("detection")
    if detection is not None and detection["outputs"] == "nms":
        _append_nms(proto, detection)
        details["nms"] = "ONNX NonMaxSuppression in the graph"
    details.update(onnx_graph_stats(proto), attention_layers=attention_layers)
    if compare_naive and reference is not None and attention_layers:
        # Counted as exported, not simplified: simplifying a second graph only for its counts cost export time.
        naive = _torch_export(reference, torch.rand(1, 3, height, width), opset, False)
        naive_layers = _attention_layer_stats(naive)
        naive_stats = onnx_graph_stats(naive)
        details["naive"] = {**{k: naive_stats[k] for k in ("nodes", "max_rank", "transposes")},
                            "attention_layers": naive_layers}
    _float_graphs.clear()  # one model's graph at a time: they are megabytes each
    _float_graphs[key] = (proto.SerializeToString(), details)
    return proto, dict(details)


def _quantize(proto, precision: str, calib: str | Path | None, metadata: dict, details: dict):
    from .calibration import load_calibration
    from .formats import FORMATS
    from .onnx_quantize import ONNX_QUANT_FORMS, quantize_onnx

    calibration = None
    if precision in FORMATS["onnx"].calibrated:
        spec = PreprocessSpec.from_dict(metadata["preprocess"])
        calibration = load_calibration(calib, spec)
        details["calibration"] = calibration.to_dict()
        calibration = calibration.in_layout(spec.layout)
    quantized = quantize_onnx(proto, precision, calibration)
    details["quantizer"] = ("onnxruntime.quantization, static " + ONNX_QUANT_FORMS[precision]
                            if precision in ONNX_QUANT_FORMS else "onnxruntime.transformers.float16")
    details["float_nodes"] = details["nodes"]
    details.update(onnx_graph_stats(quantized))
    return quantized


def export_onnx(model: nn.Module, path: Path, *, input_size: tuple[int, int], channels_last_io: bool,
                metadata: dict, precision: str = "fp32", opset: int = MIN_OPSET, dynamic_batch: bool = False,
                simplify: bool = True, reference: nn.Module | None = None, compare_naive: bool = True,
                calib: str | Path | None = None, **_) -> dict:
    """Export `model` (already in the form to ship) to `path`; returns details for the report.

    With `compare_naive`, the training-form `reference` is exported too (in memory) so the report shows
    how many nodes each attention layer lowers to in both forms. Other precisions than fp32 quantise the
    simplified float graph (`onnx_quantize.py`); int8 forms are calibrated on `calib` (or the sample photos).
    """
    onnx = require("onnx", "ONNX export", "onnx")

    if opset < MIN_OPSET:
        raise OptionError(f"opset {opset} is too old: the dynamo exporter needs opset >= {MIN_OPSET}")
    proto, details = _float_graph(model, input_size, channels_last_io, metadata, opset, dynamic_batch, simplify,
                                  reference, compare_naive)
    if precision != "fp32":
        proto = _quantize(proto, precision, calib, metadata, details)

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

