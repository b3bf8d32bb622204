"""LiteRT (the TFLite interpreter from `ai-edge-litert`) behind the runtime interface.

`ai-edge-litert` is the maintained interpreter; `tflite-runtime` stopped at 2.14, needs numpy < 2 and cannot
load int8 files from current converters. XNNPACK is on by default (the interpreter applies it unless the
resolver excludes default delegates). Integer inputs and outputs are quantised and dequantised here with the
file's own scale and zero point, so `run` and `predict` take and return floats for every precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFileError, require
from ..export.metadata import read_tflite_metadata
from .base import Runtime, TensorInfo

__all__ = ["LiteRTRuntime", "dequantize", "quantize", "tensor_info"]


def quantize(array: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """real -> stored integer: round(x / scale) + zero_point, saturated to the dtype's range."""
    info = np.iinfo(dtype)
    return np.clip(np.round(array / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(array: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((array.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def tensor_info(detail: dict, layout: str | None = None) -> TensorInfo:
    """An interpreter tensor detail as TensorInfo; scale and zero point only for quantised integer tensors."""
    dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail["quantization"]
    quantised = np.issubdtype(np.dtype(detail["dtype"]), np.integer) and scale > 0
    return TensorInfo(detail["name"], tuple(int(d) for d in detail["shape"]), dtype, layout,
                      float(scale) if quantised else None, int(zero_point) if quantised else None)


class LiteRTRuntime(Runtime):
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True):
        litert = require("ai_edge_litert.interpreter", "running .tflite files", "tflite")
        self.path = Path(path)
        resolver = litert.OpResolverType.AUTO if xnnpack else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = litert.Interpreter(model_path=str(self.path), num_threads=threads,
                                                  experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelFileError(f"{self.path.name} cannot be loaded by the LiteRT interpreter ({err}); "
                                 "re-export it with `xformer export ... --formats tflite`") from err
        self.metadata = read_tflite_metadata(self.path)
        layout = self.metadata["preprocess"].get("layout", "NHWC")
        self._input_details = self.interpreter.get_input_details()
        self._output_details = self._ordered_outputs()
        self.inputs = [tensor_info(d, layout) for d in self._input_details]
        self.outputs = [tensor_info(d) for d in self._output_details]
        self.threads, self.xnnpack = threads, xnnpack
        self.version = require("ai_edge_litert", "running .tflite files", "tflite").__version__

    def _ordered_outputs(self) -> list[dict]:
        """Output details in the order the metadata names them (a detector's several outputs; the interpreter's
        own order follows the converter's), else the interpreter's."""
        details = self.interpreter.get_output_details()
        names = self.metadata.get("detection", {}).get("output_names")
        if not names or len(details) < 2:
            return details
        signature = self.interpreter.get_signature_runner().get_output_details()
        by_index = {d["index"]: d for d in details}
        return [by_index[signature[name]["index"]] for name in names]

    def _run(self, array: np.ndarray) -> np.ndarray | list[np.ndarray]:
        image = self.inputs[0]
        if image.scale is not None:
            array = quantize(array, np.dtype(image.dtype), image.scale, image.zero_point)
        self.interpreter.set_tensor(self._input_details[0]["index"], array.astype(image.dtype, copy=False))
        self.interpreter.invoke()
        outputs = []
        for info, detail in zip(self.outputs, self._output_details):
            out = self.interpreter.get_tensor(detail["index"])
            outputs.append(dequantize(out, info.scale, info.zero_point) if info.scale is not None else
                           out.astype(np.float32, copy=False))
        return outputs[0] if len(outputs) == 1 else outputs
