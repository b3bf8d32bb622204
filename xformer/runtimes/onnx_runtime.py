"""ONNX Runtime (CPU execution provider) behind the runtime interface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, require
from ..export.metadata import METADATA_KEY
from .base import Runtime, TensorInfo

__all__ = ["OnnxRuntime"]

_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = require("onnxruntime", "running .onnx files", "onnx")
        self.path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own Fail/InvalidProtobuf types
            raise ModelFileError(f"{self.path.name} cannot be loaded by onnxruntime ({err})") from err
        custom = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in custom:
            raise ModelFileError(f"{self.path.name} carries no xformer metadata (labels, preprocessing); "
                                 "export it with `xformer export`")
        self.metadata = json.loads(custom[METADATA_KEY])
        layout = self.metadata["preprocess"].get("layout", "NCHW")
        self.inputs = [TensorInfo(i.name, tuple(d if isinstance(d, int) else -1 for d in i.shape),
                                   _DTYPES.get(i.type, i.type), layout) for i in self.session.get_inputs()]
        self.outputs = [TensorInfo(o.name, tuple(d if isinstance(d, int) else -1 for d in o.shape),
                                    _DTYPES.get(o.type, o.type)) for o in self.session.get_outputs()]
        self.version = ort.__version__

    def _run(self, array: np.ndarray) -> np.ndarray:
        outputs = self.session.run(None, {self.inputs[0].name: array})
        return outputs[0] if len(outputs) == 1 else outputs
