"""PyTorch -> TFLite with litert-torch: torch.export, then LiteRT's MLIR converter, no TensorFlow.

The deploy form for target "tflite" is written for this route: token-major XFA with transposed matmul
operands as BATCH_MATMUL adj flags, NHWC 2x2 fold, so the graph has no TRANSPOSE. Static int8 is PT2E:
torchao's prepare_pt2e/convert_pt2e with litert-torch's PT2EQuantizer (per-channel symmetric int8 weights,
int8 activations) on conv, linear, add, mul, sigmoid, concat and pooling (the deploy form writes SiLU as x *
sigmoid(x) so it is covered); everything else (LayerNorm's statistics, XFA's L2 norm, softmax, matmuls) stays float
between DEQUANTIZE/QUANTIZE pairs, which is why it keeps accuracy where full-integer conversion does not.
litert-torch folds the input/output quantisation into the signature (int8 I/O).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import require
from ..logs import quiet_python
from .calibration import one_thread

__all__ = ["LogitsSignature", "convert_float", "convert_int8", "export_signature", "quantize_pt2e"]


class LogitsSignature(nn.Module):
    """Names the file's signature: input "image", output "logits" (a detector's: its form's output names)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = getattr(model, "output_names", None)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.names is None:
            return {"logits": self.model(image)}
        return dict(zip(self.names, self.model(image)))


@contextlib.contextmanager
def _quiet():
    """litert-torch prints a progress line per conversion step, torchao and torch.export warn about internals."""
    config = require("litert_torch._config", "TFLite export", "tflite").config
    shown = config.show_progress
    config.show_progress = False
    try:
        with quiet_python():
            yield
    finally:
        config.show_progress = shown


def convert_float(model: nn.Module, example: torch.Tensor) -> bytes:
    """The float32 flatbuffer of `model` traced at `example`'s shape."""
    litert_torch = require("litert_torch", "TFLite export", "tflite")
    with _quiet():
        edge = litert_torch.convert(LogitsSignature(model).eval(), (), sample_kwargs={"image": example})
        return bytes(edge.model_content())


def export_signature(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """`model` traced by torch.export at `example`'s shape, with the file's signature names."""
    with _quiet():
        return torch.export.export(LogitsSignature(model).eval(), (), {"image": example}).module()


def _annotate_residual_adds(model: torch.fx.GraphModule, config) -> None:
    """int8 for adds of two activations (residual connections). litert-torch's add annotator finds adds by their
    source function, which torch.export no longer records for `x + y`, so every residual add stayed float between
    DEQUANTIZE and QUANTIZE."""
    utils = require("litert_torch.quantize.pt2e_quantizer_utils", "int8 TFLite export", "tflite")
    for node in model.graph.nodes:
        if node.target != torch.ops.aten.add.Tensor or "quantization_annotation" in node.meta:
            continue
        inputs = node.args[:2]
        if all(isinstance(a, torch.fx.Node) and a.op != "get_attr" for a in inputs):
            node.meta["quantization_annotation"] = utils.QuantizationAnnotation(
                input_qspec_map={a: utils.get_input_act_qspec(config) for a in inputs},
                output_qspec=utils.get_output_act_qspec(config), _annotated=True)


def quantize_pt2e(graph: torch.fx.GraphModule, calibration: np.ndarray,
                  keep_float: Callable[[list[str]], bool] | None = None, batch: int = 1):
    """A copy of the traced `graph` through PT2E static int8, calibrated on `calibration` in batches of `batch`
    (the traced batch): the quantised reference graph (int8 scales and rounding, run in PyTorch) and the quantizer.

    `keep_float(paths)` takes the module paths a graph node was traced in ("model.<name>", outermost first) and
    says whether the node stays float: its quantisation annotation is dropped before observers are placed, so
    its inputs and outputs are dequantised around it (litert-torch's own set_module_name filter does not parse
    torch.export's module names)."""
    pt2e = require("litert_torch.quantize.pt2e_quantizer", "int8 TFLite export", "tflite")
    torchao = require("torchao.quantization.pt2e.quantize_pt2e", "int8 TFLite export", "tflite")

    class Quantizer(pt2e.PT2EQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            _annotate_residual_adds(model, self.global_config)
            if keep_float is not None:
                for node in model.graph.nodes:
                    if keep_float([path for path, _ in node.meta.get("nn_module_stack", {}).values()]):
                        node.meta.pop("quantization_annotation", None)
            return model

    quantizer = Quantizer().set_global(pt2e.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    with _quiet():
        prepared = torchao.prepare_pt2e(copy.deepcopy(graph), quantizer)
        with torch.no_grad(), one_thread():
            for start in range(0, len(calibration) - batch + 1, batch):
                prepared(image=torch.from_numpy(calibration[start:start + batch]))
        return torchao.convert_pt2e(prepared, fold_quantize=False), quantizer


def convert_int8(model: nn.Module, example: torch.Tensor, calibration: np.ndarray,
                 keep_float: Callable[[list[str]], bool] | None = None) -> bytes:
    """Static int8 through PT2E, calibrated on `calibration` (a batch in the model's input layout); nodes for which
    `keep_float` holds stay float (see `quantize_pt2e`)."""
    litert_torch = require("litert_torch", "TFLite export", "tflite")
    quant_config = require("litert_torch.quantize.quant_config", "int8 TFLite export", "tflite")
    quantized, quantizer = quantize_pt2e(export_signature(model, example), calibration, keep_float)
    with _quiet():
        edge = litert_torch.convert(quantized, (), sample_kwargs={"image": example},
                                    quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
        return bytes(edge.model_content())
