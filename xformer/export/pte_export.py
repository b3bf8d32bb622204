"""ExecuTorch export (.pte): torch.export, then lowering to a delegate, with no ONNX or TensorFlow in between.

Backends (`--pte-backend`):
- `xnnpack` (default): the CPU delegate of every ExecuTorch build, with int8 kernels. It lowers the "pte"
  deploy form (`deploy.py`), written so the partitioner takes every node: on XFormer the whole graph is one
  XNNPACK delegate and no op runs on ExecuTorch's portable (reference) kernels;
- `coreml`: the Core ML delegate (fp32 compute precision), lowered from the generic deploy form (the "coreml"
  form's fp16-safe XFA floor moved fp32 logits by 2e-3 at 64x64, beyond fp32 parity). Lowering runs on Linux;
  running the file needs an Apple device, so here the ML program inside the delegate is unpacked and evaluated
  op by op against PyTorch (`mil_eval`, as for .mlpackage files), and the graph must sit in one Core ML
  delegate with no portable op: that is its parity.

Precisions: fp32, and int8 (XNNPACK only): PT2E static quantisation with ExecuTorch's XNNPACKQuantizer
(per-channel symmetric int8 weights, int8 activations), calibrated like the TFLite int8 file on `--calib DIR`
or the sample photos. Inputs and outputs stay float32: the quantise and dequantise steps are in the graph.

Every node of the lowered program is counted: the report's `delegation` lists the partitions, the ops each
delegate took and every op left to portable kernels, by name. XNNPACK files are loaded and run once in
ExecuTorch's runtime before they are written. The metadata document is appended as a zip archive, as for
TFLite (`metadata.py`): ExecuTorch locates the program and its segments through offsets in the file's header,
so trailing bytes are never read, and an app reads labels and preprocessing with any zip library.
"""

from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ExportError, require
from ..logs import quiet_python
from ..preprocess import PreprocessSpec
from .calibration import load_calibration, one_thread
from .formats import FORMATS
from .metadata import write_tflite_metadata

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "export_pte", "lowered_graph_stats"]

BACKENDS = ("xnnpack", "coreml")
DEFAULT_BACKEND = "xnnpack"
PRECISIONS = FORMATS["pte"].precisions
# What a .pte's input and output are: float32 tensors for every precision (int8 quantises inside the graph).
FLOAT_IO = {"dtype": "float32", "scale": None, "zero_point": None}
_SKIPPED_NODES = ("getitem", "executorch_call_delegate")


def _op_name(node: torch.fx.Node) -> str:
    """'aten.convolution.default' for an edge op, the target's own name otherwise."""
    op = getattr(node.target, "_op", node.target)  # EdgeOpOverload wraps the aten overload
    return str(op) if isinstance(op, torch._ops.OpOverload) else getattr(op, "__name__", str(op))


def _count_ops(graph_module: torch.fx.GraphModule) -> collections.Counter:
    return collections.Counter(_op_name(n) for n in graph_module.graph.nodes
                               if n.op == "call_function" and not any(s in str(n.target) for s in _SKIPPED_NODES))


def lowered_graph_stats(program) -> dict:
    """Partitions, ops inside each delegate and ops left outside (on portable kernels) of a lowered program.

    `program` is the ExportedProgram of an EdgeProgramManager after lowering; each delegate call's lowered
    module keeps the graph it took (`original_module`), which is where its ops are counted.
    """
    graph_module = program.graph_module
    portable = _count_ops(graph_module)
    delegated: collections.Counter = collections.Counter()
    backends: collections.Counter = collections.Counter()
    partitions = 0
    max_rank = 0
    for node in graph_module.graph.nodes:
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            max_rank = max(max_rank, value.dim())
        if node.op == "call_function" and "executorch_call_delegate" in str(node.target):
            lowered = getattr(graph_module, node.args[0].target)
            partitions += 1
            backends[lowered.backend_id] += 1
            delegated += _count_ops(lowered.original_module.graph_module)
            for inner in lowered.original_module.graph_module.graph.nodes:
                inner_value = inner.meta.get("val")
                if isinstance(inner_value, torch.Tensor):
                    max_rank = max(max_rank, inner_value.dim())
    total = sum(delegated.values()) + sum(portable.values())
    return {"partitions": partitions, "backends": dict(backends), "delegated_ops": sum(delegated.values()),
            "portable_ops": dict(sorted(portable.items())),
            "coverage": sum(delegated.values()) / total if total else 0.0,
            "op_histogram": dict(sorted((delegated + portable).items())), "max_rank": max_rank}


def _example(input_size: tuple[int, int], channels_last_io: bool) -> torch.Tensor:
    shape = (1, *input_size, 3) if channels_last_io else (1, 3, *input_size)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _quantized_program(model: nn.Module, example: torch.Tensor, calibration: np.ndarray):
    """PT2E static int8 with ExecuTorch's XNNPACK quantizer, calibrated on `calibration` (the model's layout)."""
    xnnpack_quantizer = require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", "int8 .pte export",
                                "executorch")
    pt2e = require("torchao.quantization.pt2e.quantize_pt2e", "int8 .pte export", "executorch")
    quantizer = xnnpack_quantizer.XNNPACKQuantizer().set_global(
        xnnpack_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    prepared = pt2e.prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
    with torch.no_grad(), one_thread():
        for x in calibration:
            prepared(torch.from_numpy(x[None]))
    return torch.export.export(pt2e.convert_pt2e(prepared), (example,))


def _partitioner(backend: str):
    if backend == "coreml":
        ct = require("coremltools", "Core ML .pte export", "coreml")
        partition = require("executorch.backends.apple.coreml.partition", "Core ML .pte export", "executorch")
        compiler = require("executorch.backends.apple.coreml.compiler", "Core ML .pte export", "executorch")
        specs = compiler.CoreMLBackend.generate_compile_specs(compute_precision=ct.precision.FLOAT32)
        return partition.CoreMLPartitioner(compile_specs=specs)
    partition = require("executorch.backends.xnnpack.partition.xnnpack_partitioner", ".pte export", "executorch")
    return partition.XnnpackPartitioner()


def _coreml_parity(program, stats: dict, reference: nn.Module, spec: PreprocessSpec, precision: str) -> dict:
    """Parity of a program lowered to Core ML, off Apple devices: its delegate's ML program evaluated op by op
    (`mil_eval`) on the parity inputs, plus the structure (one Core ML delegate, no portable op)."""
    from .mil_eval import MILEvaluator, load_program
    from .parity import compare, parity_inputs, reference_logits

    coreml = require("executorch.backends.apple.coreml.executorchcoreml", "Core ML .pte export", "executorch")
    failures = []
    if stats["backends"] != {"CoreMLBackend": 1}:
        failures.append(f"delegates {stats['backends'] or 'none'} instead of one CoreMLBackend")
    if stats["portable_ops"]:
        failures.append(f"ops left to portable kernels: {', '.join(stats['portable_ops'])}")
    graph_module = program.graph_module
    delegates = [getattr(graph_module, n.args[0].target) for n in graph_module.graph.nodes
                 if n.op == "call_function" and "executorch_call_delegate" in str(n.target)]
    if not delegates:
        raise ExportError("the Core ML partitioner took no part of the graph; nothing to run on Core ML")
    lowered = delegates[0]
    batch, photos = parity_inputs(spec)
    expected = reference_logits(reference, batch)
    with tempfile.TemporaryDirectory() as tmp:
        if not coreml.unflatten_directory_contents(bytes(lowered.processed_bytes), tmp):
            raise ExportError("the Core ML delegate's payload could not be unpacked; the .pte was not written")
        root = next(Path(tmp).rglob("model.mlpackage"))
        names = json.loads((root.parent / "metadata.json").read_text())
        evaluator = MILEvaluator(load_program(root))
        inputs = np.ascontiguousarray(batch.transpose(0, 2, 3, 1)) if spec.layout == "NHWC" else batch
        (image,) = names["inputNames"]
        logits = np.concatenate([evaluator(**{image: x[None]})[names["outputNames"][0]].reshape(1, -1)
                                 for x in inputs])
    report = compare(expected, logits, photos, precision).to_dict()
    report["failures"] = report["failures"] + failures
    report["passed"] = report["passed"] and not failures
    return {**report, "evaluator": "ML program of the Core ML delegate, evaluated op by op with torch "
                                   "(xformer.export.mil_eval); one Core ML delegate, no portable op"}


def _check_runs(program: bytes, example: torch.Tensor, precision: str) -> None:
    """Load and run the program once in ExecuTorch's runtime: a file it cannot run is never written."""
    runtime = require("executorch.runtime", ".pte export", "executorch")
    try:
        method = runtime.Runtime.get().load_program(program).load_method("forward")
        method.execute([torch.zeros_like(example)])
    except (RuntimeError, ValueError) as err:
        raise ExportError(f"the {precision} .pte does not run in the ExecuTorch runtime ({err}); not written") from err


def export_pte(model: nn.Module, path: Path, *, input_size: tuple[int, int], channels_last_io: bool,
               metadata: dict, precision: str = "fp32", reference: nn.Module | None = None,
               pte_backend: str = DEFAULT_BACKEND, calib: str | Path | None = None, **_) -> dict:
    """Lower `model` (the "pte" deploy form) to an ExecuTorch program at `path`; returns details for the report."""
    if pte_backend not in BACKENDS:
        raise ExportError(f"unknown ExecuTorch backend {pte_backend!r}; choose from: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ExportError(f".pte precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if pte_backend == "coreml" and precision != "fp32":
        raise ExportError("the Core ML backend lowers fp32 programs (Core ML picks its own compute precision on "
                          "the device); use --pte-backend xnnpack for int8")
    if pte_backend == "coreml" and reference is not None:
        from .deploy import deploy_model, has_deploy_form

        if has_deploy_form(reference) and not has_deploy_form(model):  # a deploy form: the generic one instead
            model = deploy_model(reference, channels_last_io, target="generic")
    details: dict = {"backend": pte_backend, "input": FLOAT_IO, "output": FLOAT_IO}
    example = _example(input_size, channels_last_io)
    with quiet_python():  # importing torchao logs a warning per CUDA library it cannot load
        exir = require("executorch.exir", ".pte export", "executorch")
        if precision == "int8":
            calibration = load_calibration(calib, PreprocessSpec.from_dict(metadata["preprocess"]))
            details["calibration"] = calibration.to_dict()
            details["quantizer"] = "PT2E (torchao + ExecuTorch XNNPACKQuantizer, per-channel symmetric)"
            layout = "NHWC" if channels_last_io else "NCHW"
            exported = _quantized_program(model, example, calibration.in_layout(layout))
        else:
            exported = torch.export.export(model, (example,))
        edge = exir.to_edge_transform_and_lower(exported, partitioner=[_partitioner(pte_backend)])
        stats = lowered_graph_stats(edge.exported_program())
        if pte_backend == "coreml":
            spec = PreprocessSpec.from_dict(metadata["preprocess"])
            details["mil_parity"] = _coreml_parity(edge.exported_program(), stats, reference or model, spec,
                                                   precision)
        program = edge.to_executorch().buffer
    if pte_backend == "xnnpack":
        _check_runs(program, example, precision)
    metadata = {**metadata, "export": {**metadata["export"], "backend": pte_backend, "input": FLOAT_IO,
                                       "output": FLOAT_IO}}
    path.write_bytes(write_tflite_metadata(program, metadata))
    details.update(op_histogram=stats.pop("op_histogram"), max_rank=stats.pop("max_rank"), delegation=stats)
    return details
