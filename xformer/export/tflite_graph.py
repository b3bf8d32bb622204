"""What is inside a .tflite file: op histogram, tensor ranks, TRANSPOSE ops per attention layer, GPU delegate
compatibility.

The flatbuffer is read with the schema bindings that ship with ai-edge-litert (no TensorFlow). Tensor names
written by litert-torch carry the PyTorch module path of the op that produced them, e.g.
`.../Sequential_layer3/DeployXFormerBlock_1/Sequential_transformer/DeployTransformerLayer_0/DeployXFA_attn;18`,
which is how ops are attributed to attention layers (`layer3.1.transformer.0.attn`, the same keys the ONNX
report uses). onnx2tf names tensors after ONNX nodes, which carry no module path, so its files have no
per-layer attribution.

GPU compatibility comes from TFLite's model analyzer with `gpu_compatibility=True`. ai-edge-litert ships the
same analyzer (the C++ code behind `tf.lite.experimental.Analyzer.analyze`) and returns its report as a string,
so checking a file needs neither TensorFlow (a 10-40 s import) nor capturing stdout.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFileError, require

__all__ = ["GpuCompatibility", "TFLiteGraph", "gpu_compatibility", "module_path", "read_graph"]

_ATTENTION = re.compile(r"^(.*\.transformer\.\d+\.attn)$")
_ANALYZER_OP = re.compile(r"^\s*Op#(\d+) (\w+)\(")
_GPU_WARNING = "GPU COMPATIBILITY WARNING: "
_WRAPPERS = ("LogitsSignature", "ChannelsLastInput")  # modules that add no scope of the model's own


def module_path(tensor_name: str) -> str | None:
    """The module path ("layer3.1.transformer.0.attn") of the first location in a litert-torch tensor name.

    A name is one or more locations joined by ";" (fused ops keep all of theirs), each a "/"-separated chain of
    `package.Class_attribute` scopes under the root module's class, with a ";N" counter at the end. Our wrappers
    (the signature, the NHWC input) are dropped, so paths start at the model's own children.
    """
    for location in tensor_name.split(";"):
        scopes = location.split("/")
        if len(scopes) < 2:
            continue
        parent, parts = scopes[0].rsplit(".", 1)[-1], []
        for scope in scopes[1:]:
            class_name, _, attribute = scope.rsplit(".", 1)[-1].partition("_")
            if not attribute:
                break
            if parts or parent not in _WRAPPERS:
                parts.append(attribute)
            parent = class_name
        else:
            return ".".join(parts)
    return None


def _attention_layer(path: str | None) -> str | None:
    while path:
        if _ATTENTION.match(path):
            return path
        path = path.rpartition(".")[0]
    return None


@dataclass
class TFLiteGraph:
    """The main subgraph of a .tflite file: ops in execution order with their output tensor names."""

    ops: list[str]
    outputs: list[list[str]]  # output tensor names per op
    output_tensors: list[list[int]]  # output tensor indices per op
    tensor_ranks: list[int]
    activation_types: list[list[str]]  # element types ("INT8", "FLOAT32") of each op's non-constant inputs
    op_histogram: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.op_histogram = dict(sorted(collections.Counter(self.ops).items()))

    @property
    def max_rank(self) -> int:
        return max(self.tensor_ranks, default=0)

    @property
    def transposes(self) -> int:
        return self.op_histogram.get("TRANSPOSE", 0)

    def attention_layers(self) -> dict[str, dict]:
        """Ops and TRANSPOSE ops per attention layer, keyed like the ONNX report ("layer3.1.transformer.0.attn")."""
        layers: dict[str, dict] = {}
        for op, names in zip(self.ops, self.outputs):
            layer = next((a for a in (_attention_layer(module_path(n)) for n in names) if a), None)
            if layer is not None:
                entry = layers.setdefault(layer, {"nodes": 0, "transposes": 0})
                entry["nodes"] += 1
                entry["transposes"] += op == "TRANSPOSE"
        return layers


def read_graph(source: str | Path | bytes) -> TFLiteGraph:
    """Parse the main subgraph of a .tflite file or flatbuffer (trailing metadata bytes are ignored)."""
    schema = require("ai_edge_litert.schema_py_generated", "reading .tflite files", "tflite")
    data = Path(source).read_bytes() if isinstance(source, str | Path) else source
    try:
        model = schema.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        graph = model.Subgraphs(0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = code.CustomCode()
            codes.append(custom.decode() if builtin == schema.BuiltinOperator.CUSTOM and custom else
                         names.get(builtin, str(builtin)))
        ops, outputs, indices, activation_types = [], [], [], []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            ops.append(codes[op.OpcodeIndex()])
            inputs = [graph.Tensors(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
            activation_types.append([types.get(t.Type(), str(t.Type())) for t in inputs
                                     if not _is_constant(model.Buffers(t.Buffer()))])
            indices.append([op.Outputs(j) for j in range(op.OutputsLength()) if op.Outputs(j) >= 0])
            outputs.append([graph.Tensors(j).Name().decode(errors="replace") for j in indices[-1]])
        ranks = [graph.Tensors(i).ShapeLength() for i in range(graph.TensorsLength())]
    except Exception as err:  # flatbuffers raises struct/index errors on damaged data
        raise ModelFileError(f"not a readable TFLite flatbuffer ({type(err).__name__}: {err})") from err
    return TFLiteGraph(ops, outputs, indices, ranks, activation_types)


def _is_constant(buffer) -> bool:
    """A tensor is a constant when its buffer holds data (inline, or at an offset in files over 2 GB)."""
    return buffer.DataLength() > 0 or buffer.Offset() > 1


@dataclass
class GpuCompatibility:
    """The analyzer's verdict: incompatible ops (index, op name, reason) of the main subgraph."""

    incompatible: list[dict]
    analyzer: str

    @property
    def count(self) -> int:
        return len(self.incompatible)

    @property
    def incompatible_ops(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(op["op"] for op in self.incompatible).items()))

    def to_dict(self) -> dict:
        return {"incompatible": self.count, "incompatible_ops": self.incompatible_ops,
                "nodes": self.incompatible[:50], "analyzer": self.analyzer}


def parse_analyzer_report(text: str) -> list[dict]:
    """Incompatible ops from the analyzer's text: each warning follows the `Op#N NAME(...)` line it is about."""
    incompatible, current = [], None
    for line in text.splitlines():
        match = _ANALYZER_OP.match(line)
        if match:
            current = (int(match.group(1)), match.group(2))
        elif line.startswith(_GPU_WARNING) and current is not None and not line.startswith(_GPU_WARNING + "Subgraph"):
            incompatible.append({"index": current[0], "op": current[1], "reason": line[len(_GPU_WARNING):].strip()})
    return incompatible


def gpu_compatibility(source: str | Path | bytes) -> GpuCompatibility:
    """Run TFLite's model analyzer with the GPU delegate compatibility check on a .tflite file or flatbuffer."""
    wrapper = require("ai_edge_litert._pywrap_analyzer_wrapper", "the TFLite GPU compatibility check", "tflite")
    is_path = not isinstance(source, bytes)
    text = wrapper.ModelAnalyzer(str(source) if is_path else source, is_path, True)
    return GpuCompatibility(parse_analyzer_report(text), "ai_edge_litert ModelAnalyzer (gpu_compatibility=True)")
