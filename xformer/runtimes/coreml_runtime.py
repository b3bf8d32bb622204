"""CoreML behind the runtime interface: `MLModel.predict` on macOS, with a choice of compute units.

CoreML prediction exists only on macOS. Elsewhere loading raises a clear error; `xformer export` checks
.mlpackage files on Linux by evaluating their MIL program instead (see xformer/export/mil_eval.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ModelFileError
from ..export.metadata import METADATA_KEY
from ..preprocess import PreprocessSpec
from .base import Runtime, TensorInfo

__all__ = ["COMPUTE_UNITS", "CoreMLRuntime"]

# Our names -> coremltools.ComputeUnit members. "cpu_ne" is what the Neural Engine is measured with.
COMPUTE_UNITS = {"all": "ALL", "cpu": "CPU_ONLY", "cpu_gpu": "CPU_AND_GPU", "cpu_ne": "CPU_AND_NE"}


class CoreMLRuntime(Runtime):
    name = "coreml"

    def __init__(self, path: str | Path, compute_units: str = "all"):
        self.path = Path(path)
        if sys.platform != "darwin":
            raise ModelFileError(f"CoreML prediction needs macOS, so {self.path.name} cannot run here; on Linux "
                                 "`xformer export` checks it by evaluating its MIL program (see export_report.json)")
        if compute_units not in COMPUTE_UNITS:
            raise ModelFileError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, got {compute_units!r}")
        from ..export.coreml_export import import_coremltools

        ct = import_coremltools()
        try:
            self.model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit[COMPUTE_UNITS[compute_units]])
        except Exception as err:  # coremltools raises its own and Objective-C errors for a broken package
            raise ModelFileError(f"{self.path.name} cannot be loaded by CoreML ({err})") from err
        description = self.model.get_spec().description
        user = dict(description.metadata.userDefined)
        if METADATA_KEY not in user:
            raise ModelFileError(f"{self.path.name} carries no xformer metadata (labels, preprocessing); "
                                 "export it with `xformer export`")
        self.metadata = json.loads(user[METADATA_KEY])
        self.compute_units = compute_units
        self.version = ct.__version__
        feature = description.input[0]
        self.image_input = feature.type.WhichOneof("Type") == "imageType"
        if self.image_input:
            shape = (1, 3, feature.type.imageType.height, feature.type.imageType.width)
            self.inputs = [TensorInfo(feature.name, shape, "uint8", "NCHW")]
        else:
            shape = tuple(feature.type.multiArrayType.shape)
            self.inputs = [TensorInfo(feature.name, shape, "float32", self.metadata["preprocess"]["layout"])]
        self.detection = self.metadata.get("detection")
        if self.detection is None:
            self.outputs = [TensorInfo("logits", (1, self.metadata["num_classes"]), "float32")]
        else:
            names = ["confidence", "coordinates"] if self.detection["outputs"] == "nms" else \
                self.detection["output_names"]
            self.outputs = [TensorInfo(name, (), "float32") for name in names]

    def _pixels(self, array: np.ndarray) -> Image.Image:
        """One preprocessed CHW float image back to the pixel buffer an ImageType input takes."""
        spec = PreprocessSpec.from_dict(self.metadata["preprocess"])
        mean = np.asarray(spec.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(spec.std, np.float32).reshape(3, 1, 1)
        pixels = np.clip(np.round((array * std + mean) / np.float32(spec.scale)), 0, 255).astype(np.uint8)
        if spec.channel_order == "BGR":  # PIL images are RGB; CoreML reorders for a BGR ImageType itself
            pixels = pixels[::-1]
        return Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), mode="RGB")

    def _detections(self, outputs: dict) -> np.ndarray:
        """The NMS pipeline's `confidence` (K, C) and `coordinates` (K, 4, centre and size as fractions of the
        input) -> (K, 6) rows x1, y1, x2, y2, score, class in input pixels, best first (the `nms` form)."""
        confidence = np.asarray(outputs["confidence"], np.float32).reshape(-1, self.metadata["num_classes"])
        height, width = self.metadata["preprocess"]["input_size"]
        coordinates = np.asarray(outputs["coordinates"], np.float32).reshape(-1, 4) * [width, height, width, height]
        centre, size = coordinates[:, :2], coordinates[:, 2:]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        rows = np.concatenate([boxes, confidence.max(1, keepdims=True), confidence.argmax(1)[:, None]], axis=1)
        return rows[np.argsort(-rows[:, 4], kind="stable")].astype(np.float32)

    def _run(self, array: np.ndarray) -> np.ndarray | list[np.ndarray]:
        if self.detection is not None:  # one image per call, as a detector's files take
            value = self._pixels(array[0]) if self.image_input else array
            outputs = self.model.predict({self.inputs[0].name: value})
            if self.detection["outputs"] == "nms":
                return self._detections(outputs)
            return [np.asarray(outputs[info.name], np.float32) for info in self.outputs]
        rows = []
        for row in array:
            value = self._pixels(row) if self.image_input else row[None]
            logits = self.model.predict({self.inputs[0].name: value})["logits"]
            logits = np.asarray(logits, np.float32)
            rows.append(logits.reshape(1, *logits.shape[-3:]) if logits.ndim == 4 else logits.reshape(1, -1))
        return np.concatenate(rows)
