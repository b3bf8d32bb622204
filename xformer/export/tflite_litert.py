"""PyTorch -> TFLite with litert-torch: torch.export, then LiteRT's MLIR converter, no TensorFlow.

The deploy form for target "tflite" is written for this route: a token-major transformer, every attention head
of a layer in one op chain with transposed matmul operands as BATCH_MATMUL adj flags, NHWC 2x2 fold, so the graph
has no TRANSPOSE. Static int8 is PT2E:
torchao's prepare_pt2e/convert_pt2e with litert-torch's PT2EQuantizer (per-channel symmetric int8 weights,
int8 activations) on conv, linear, add, mul, concat and pooling; everything else (XFA's L2 norm, softmax,
matmuls) stays float between DEQUANTIZE/QUANTIZE pairs, which is why it keeps accuracy where full-integer
conversion does not. litert-torch folds the input/output quantisation into the signature (int8 I/O).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import torch
from torch import nn

from ..errors import require

__all__ = ["LogitsSignature", "convert_float", "convert_int8"]


class LogitsSignature(nn.Module):
    """Names the file's signature: input "image", output "logits"."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.model(image)}


@contextlib.contextmanager
def _quiet():
    """litert-torch prints a progress line per conversion step, torchao and torch.export warn about internals."""
    config = require("litert_torch._config", "TFLite export", "tflite").config
    shown = config.show_progress
    config.show_progress = False
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        config.show_progress = shown
        root.setLevel(level)


@contextlib.contextmanager
def _one_thread():
    """Observed graphs are thousands of tiny ops: with two OpenMP threads on a busy two-core machine every op
    waits on a barrier, and calibration ran 27x slower than on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def convert_float(model: nn.Module, example: torch.Tensor) -> bytes:
    """The float32 flatbuffer of `model` traced at `example`'s shape."""
    litert_torch = require("litert_torch", "TFLite export", "tflite")
    with _quiet():
        edge = litert_torch.convert(LogitsSignature(model).eval(), (), sample_kwargs={"image": example})
        return bytes(edge.model_content())


def convert_int8(model: nn.Module, example: torch.Tensor, calibration: np.ndarray) -> bytes:
    """Static int8 through PT2E, calibrated on `calibration` (a batch in the model's input layout)."""
    litert_torch = require("litert_torch", "TFLite export", "tflite")
    pt2e = require("litert_torch.quantize.pt2e_quantizer", "int8 TFLite export", "tflite")
    quant_config = require("litert_torch.quantize.quant_config", "int8 TFLite export", "tflite")
    torchao = require("torchao.quantization.pt2e.quantize_pt2e", "int8 TFLite export", "tflite")
    signature = LogitsSignature(model).eval()
    with _quiet():
        quantizer = pt2e.PT2EQuantizer().set_global(
            pt2e.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        graph = torch.export.export(signature, (), {"image": example}).module()
        prepared = torchao.prepare_pt2e(graph, quantizer)
        with torch.no_grad(), _one_thread():
            for x in calibration:
                prepared(image=torch.from_numpy(x[None]))
        quantized = torchao.convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(quantized, (), sample_kwargs={"image": example},
                                    quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
        return bytes(edge.model_content())
