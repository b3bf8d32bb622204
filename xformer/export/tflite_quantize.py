"""Quantisation applied to a float .tflite flatbuffer, the same for both converter routes.

ai-edge-quantizer rewrites the float file in about a second, so fp16, dynamic-int8 and w8a16 reuse the one
float conversion (minutes) instead of converting again:

- fp16: weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED stored as float16 with a DEQUANTIZE in
  front (the layout the GPU delegate and XNNPACK expect); activations and I/O stay float32.
- dynamic-int8: int8 per-channel weights; activations quantised on the fly by the kernels.
- w8a16: int8 weights and int16 activations, calibrated. DIV stays float: XFA divides by the L2 norm of q/k,
  and int16 DIV aborts at run time whenever a quantised divisor rounds to zero ("data[i] != zero_point").

`with_float_io` wraps a file with integer input/output in QUANTIZE/DEQUANTIZE ops, so a static int8 or w8a16
file takes and returns float32 unless the user asks for integer I/O.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from ..errors import ExportError, require

__all__ = ["quantize_flatbuffer", "tensor_io", "with_float_io"]

_FP16_RECIPE = [{
    "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
    "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"}, "compute_precision": "FLOAT",
                  "explicit_dequantize": True},
}]
_KEEP_FLOAT_W8A16 = ("DIV",)


def _recipe(precision: str):
    recipe = require("ai_edge_quantizer.recipe", "TFLite quantisation", "tflite")
    if precision == "fp16":
        return _FP16_RECIPE
    if precision == "dynamic-int8":
        return recipe.dynamic_wi8_afp32()
    if precision == "w8a16":
        return recipe.static_wi8_ai16() + [{"regex": ".*", "operation": op, "algorithm_key": "no_quantize",
                                            "op_config": {}} for op in _KEEP_FLOAT_W8A16]
    raise ExportError(f"no ai-edge-quantizer recipe for {precision!r}")


def quantize_flatbuffer(flatbuffer: bytes, precision: str, calibration: np.ndarray | None = None) -> bytes:
    """The float `flatbuffer` quantised to `precision` (calibration: a batch of inputs in the file's layout)."""
    quantizer = require("ai_edge_quantizer.quantizer", "TFLite quantisation", "tflite")
    q = quantizer.Quantizer(flatbuffer, _recipe(precision))
    # The quantizer draws a progress bar for every step and warns that calibration keeps all tensors.
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = None
        if q.need_calibration:
            if calibration is None:
                raise ExportError(f"{precision} needs calibration images")
            samples = [{"image": x[None].astype(np.float32)} for x in calibration]
            result = q.calibrate({_signature_key(flatbuffer): samples})
        return bytes(q.quantize(result, enable_progress_bar=False, enable_progress_report=False).quantized_model)


def _signature_key(flatbuffer: bytes) -> str:
    litert = require("ai_edge_litert.interpreter", "TFLite quantisation", "tflite")
    signatures = list(litert.Interpreter(model_content=flatbuffer).get_signature_list())
    if not signatures:
        raise ExportError("the converted file has no signature; calibration needs one")
    return signatures[0]


def tensor_io(flatbuffer: bytes) -> tuple[dict, dict]:
    """Input and output description for the metadata: dtype, and scale/zero point for integer tensors."""
    litert = require("ai_edge_litert.interpreter", "reading .tflite files", "tflite")
    interpreter = litert.Interpreter(model_content=flatbuffer)

    from ..runtimes.litert_runtime import tensor_info

    def describe(detail: dict) -> dict:
        info = tensor_info(detail)
        return {"dtype": info.dtype, "scale": info.scale, "zero_point": info.zero_point}

    return describe(interpreter.get_input_details()[0]), describe(interpreter.get_output_details()[0])


def with_float_io(flatbuffer: bytes) -> bytes:
    """Give a file with integer I/O float32 I/O: QUANTIZE after the input, DEQUANTIZE before the output."""
    schema = require("ai_edge_litert.schema_py_generated", "TFLite quantisation", "tflite")
    utils = require("ai_edge_litert.tools.flatbuffer_utils", "TFLite quantisation", "tflite")
    model = utils.read_model_from_bytearray(flatbuffer)
    graph = model.subgraphs[0]

    def opcode(builtin: int) -> int:
        for i, code in enumerate(model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def float_twin(index: int) -> int:
        """A float32 tensor with the shape and name of tensor `index`, which is renamed."""
        original = graph.tensors[index]
        twin = schema.TensorT()
        twin.shape, twin.shapeSignature, twin.type = original.shape, original.shapeSignature, schema.TensorType.FLOAT32
        twin.name, original.name = original.name, original.name + b"_quantized"
        empty = schema.BufferT()
        model.buffers.append(empty)
        twin.buffer = len(model.buffers) - 1
        graph.tensors.append(twin)
        return len(graph.tensors) - 1

    def operator(builtin: int, inputs: list[int], outputs: list[int]):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = opcode(builtin), inputs, outputs
        return op

    remap = {}
    for position, index in enumerate(graph.inputs):
        if graph.tensors[index].type != schema.TensorType.FLOAT32:
            twin = float_twin(index)
            graph.operators.insert(0, operator(schema.BuiltinOperator.QUANTIZE, [twin], [index]))
            graph.inputs[position] = remap[index] = twin
    for position, index in enumerate(graph.outputs):
        if graph.tensors[index].type != schema.TensorType.FLOAT32:
            twin = float_twin(index)
            graph.operators.append(operator(schema.BuiltinOperator.DEQUANTIZE, [index], [twin]))
            graph.outputs[position] = remap[index] = twin
    for signature in model.signatureDefs or []:
        for tensor_map in (signature.inputs or []) + (signature.outputs or []):
            tensor_map.tensorIndex = remap.get(tensor_map.tensorIndex, tensor_map.tensorIndex)
    return bytes(utils.convert_object_to_bytearray(model))
