"""What an exported detector returns: its output form, chosen per file with `--det-outputs`.

- `raw`: the head's maps, one per level (stride 32, 16, 8), as `Detector.forward` returns them; the app decodes
  with the anchors and strides in the metadata and runs NMS itself. Smallest graph, any runtime.
- `decoded`: boxes (1, N, 4) x1y1x2y2 in input pixels and scores (1, N, C) (objectness x class), computed in the
  graph by `models.detection.decode`; the app runs NMS only.
- `nms`: final detections, the NMS in the graph: ONNX ends in NonMaxSuppression and returns `detections` (K, 6)
  x1, y1, x2, y2, score, class. (CoreML detectors, a pipeline ending in coremltools' NonMaximumSuppression
  model that Xcode previews as a detector, are not exported yet.)

The formats table lists the forms each format can hold (default first); the metadata records the form, the
output names, anchors, strides and NMS thresholds so runtimes (`xformer.runtimes.detection`) and the Android app
decode any file the same way.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from ..errors import OptionError
from ..models.detection import NMSConfig, decode

__all__ = ["DET_OUTPUTS", "DetectorOutputs", "detection_metadata", "output_names", "resolve_det_outputs"]

DET_OUTPUTS = ("raw", "decoded", "nms")


def output_names(form: str, strides: tuple[int, ...]) -> list[str]:
    if form == "raw":
        return [f"stride{s}" for s in strides]
    return ["boxes", "scores"] if form == "decoded" else ["detections"]


def resolve_det_outputs(fmt, requested: str | None) -> str:
    """The output form of a detector's file in `fmt`: the one asked for, or the format's default."""
    if not fmt.det_outputs:
        raise OptionError(f"{fmt.name} export of detectors is not available yet; export them to "
                          f"{', '.join(n for n, f in _formats().items() if f.det_outputs)}")
    if requested is None:
        return fmt.det_outputs[0]
    if requested not in DET_OUTPUTS:
        raise OptionError(f"--det-outputs must be one of {', '.join(DET_OUTPUTS)}, got {requested!r}")
    if requested not in fmt.det_outputs:
        raise OptionError(f"{fmt.name} files of detectors hold {' or '.join(fmt.det_outputs)} outputs, not "
                          f"{requested}: pass --det-outputs {fmt.det_outputs[0]} or export this form to "
                          f"{', '.join(n for n, f in _formats().items() if requested in f.det_outputs)}")
    return requested


def _formats() -> dict:
    from .formats import FORMATS

    return FORMATS


def detection_metadata(model: nn.Module, form: str, nms: NMSConfig | None = None) -> dict:
    """The `detection` entry of a file's metadata: everything an app needs to turn the outputs into boxes."""
    nms = nms or NMSConfig()
    return {"outputs": form, "output_names": output_names(form, model.strides),
            "anchors": model.anchors.tolist(), "strides": list(model.strides),
            "box_format": "x1y1x2y2 in input pixels", **asdict(nms)}


class DetectorOutputs(nn.Module):
    """The deploy form of a detector with its outputs in one form (`nms` computes `decoded`: the format's
    exporter appends its own NMS), as a tuple named by `output_names`."""

    def __init__(self, model: nn.Module, detector: nn.Module, form: str):
        super().__init__()
        self.model, self.form = model, form
        self.strides = detector.strides
        self.register_buffer("anchors", detector.anchors.clone(), persistent=False)
        self.output_names = output_names("decoded" if form == "nms" else form, detector.strides)
        self.model_config = detector.model_config

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.model(image)
        if self.form == "raw":
            return tuple(maps)
        # Float strides: PT2E observes the scalar of every mul it quantises, and has no histogram for integers.
        return decode(maps, self.anchors, tuple(float(s) for s in self.strides))
