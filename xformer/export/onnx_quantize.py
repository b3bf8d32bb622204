"""Quantisation of a float ONNX graph with onnxruntime's own tools, so ORT and its mobile execution providers read
the result as they expect.

- fp16: every float initializer and activation stored as float16 (`onnxruntime.transformers.float16`), with
  float32 input and output kept, so apps feed the same tensors as to the fp32 file.
- int8: static, QDQ form (QuantizeLinear/DequantizeLinear pairs around float ops): the form NNAPI, QNN, XNNPACK
  and CoreML execution providers take, and which ORT's CPU provider fuses into integer kernels where it can.
- int8-qop: static, QOperator form (QLinearConv, QLinearMatMul, ... in the graph itself): ORT CPU's own
  integer operators, measured beside QDQ.

Both int8 forms: uint8 activations and per-channel int8 weights (ORT's recommended U8S8), MinMax ranges from the
calibration images (the same set the TFLite int8 file is calibrated on), after ORT's quantisation
pre-processing (shape inference and constant folding).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import ExportError, require

__all__ = ["ONNX_QUANT_FORMS", "quantize_onnx"]

ONNX_QUANT_FORMS = {"int8": "QDQ", "int8-qop": "QOperator"}
_RANGE_EVERY = 16  # the calibrator keeps every activation of every image until it reduces them: bound the memory


@contextlib.contextmanager
def _quiet():
    """The quantiser logs advice through the root logger on every call ("run pre-processing first", ...)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def quantize_onnx(proto, precision: str, calibration: np.ndarray | None = None):
    """`proto` (float32) in `precision`; calibration is a batch of inputs in the graph's input layout."""
    onnx = require("onnx", "ONNX quantisation", "onnx")
    if precision == "fp16":
        float16 = require("onnxruntime.transformers.float16", "ONNX fp16", "onnx")
        onnx_model = require("onnxruntime.transformers.onnx_model", "ONNX fp16", "onnx")
        with _quiet():
            half = onnx_model.OnnxModel(float16.convert_float_to_float16(proto, keep_io_types=True))
            half.topological_sort()  # the converter appends the input/output casts at the end of the node list
            return half.model
    if precision not in ONNX_QUANT_FORMS:
        raise ExportError(f"no ONNX quantisation for {precision!r}")
    if calibration is None or not len(calibration):
        raise ExportError(f"ONNX {precision} needs calibration images")
    quantization = require("onnxruntime.quantization", "ONNX int8", "onnx")
    name = proto.graph.input[0].name

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.samples = iter(calibration)

        def get_next(self):
            sample = next(self.samples, None)
            return None if sample is None else {name: sample[None].astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        source, prepared, quantized = (Path(tmp) / n for n in ("float.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save_model(proto, source)
        quantization.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(
            str(prepared), str(quantized), Reader(),
            quant_format=getattr(quantization.QuantFormat, ONNX_QUANT_FORMS[precision]), per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            extra_options={"CalibMaxIntermediateOutputs": _RANGE_EVERY})
        return onnx.load_model(quantized)
