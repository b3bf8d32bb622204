"""A detector's outputs, whatever their form, as boxes, scores and labels in the original image's pixels.

The one place every runtime's detector outputs are turned into detections (forms: export/detection_outputs.py):
raw maps are decoded with the file's anchors and strides and go through NMS, decoded boxes and scores go
through NMS, final detections are read as they are. Boxes then map back through the letterbox of the
preprocessing contract, so they land on the image the user gave.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..errors import ModelFileError
from ..models.detection import COCO_ANCHORS, STRIDES, Detections, NMSConfig, decode, postprocess
from ..preprocess import boxes_to_image, load_image

__all__ = ["DetectedBoxes", "detections_from_outputs", "nms_config", "output_form"]


def nms_config(metadata: dict, **overrides) -> NMSConfig:
    """The thresholds a file was exported with (mmdet's defaults for files that carry none), then `overrides`."""
    stored = metadata.get("detection", {})
    values = {f.name: stored[f.name] for f in fields(NMSConfig) if f.name in stored}
    return NMSConfig(**{**values, **overrides})


def output_form(arrays: list, strides: tuple[int, ...] = STRIDES) -> str | None:
    """Which output form (export/detection_outputs.py) these arrays have, by their shapes; None for none."""
    if len(arrays) == len(strides) and all(a.ndim == 4 for a in arrays):
        return "raw"
    if len(arrays) == 2 and arrays[0].ndim == 3 and arrays[0].shape[-1] == 4 and arrays[1].ndim == 3:
        return "decoded"
    if arrays and all(a.ndim == 2 and a.shape[-1] == 6 for a in arrays):
        return "nms"
    return None


def detections_from_outputs(outputs, metadata: dict, config: NMSConfig | None = None) -> list[Detections]:
    """A runtime's outputs for a batch -> per image the detections in input pixels.

    `outputs` is what `Runtime.run` returns: 3 raw maps, [boxes, scores], or (K, 6) rows (one image) of x1, y1, x2,
    y2, score, class; the form is the file's (metadata), or read from the shapes when the metadata names none (a
    PyTorch model's outputs). `config` overrides the file's thresholds (parity checks use a lower score threshold);
    a file with NMS in its graph has its own, fixed at export."""
    detection = metadata.get("detection", {})
    config = config or nms_config(metadata)
    arrays = [torch.as_tensor(np.asarray(o, np.float32)) for o in
              (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    strides = tuple(detection.get("strides", STRIDES))
    found = output_form(arrays, strides)
    form = detection.get("outputs", found)
    if form is None:
        raise ModelFileError(f"a detector's outputs must be 3 raw maps (B, A*(5+C), H, W), decoded [boxes (B, N, 4), "
                             f"scores (B, N, C)] or per-image (K, 6) detections; got shapes "
                             f"{[tuple(a.shape) for a in arrays]}")
    if found != form:
        raise ModelFileError(f"a detector with {form} outputs returned arrays of shapes "
                             f"{[tuple(a.shape) for a in arrays]}; re-export it with `xformer export`")
    if form == "raw":
        anchors = torch.tensor(detection.get("anchors", COCO_ANCHORS), dtype=torch.float32)
        return postprocess(*decode(arrays, anchors, strides), config)
    if form == "decoded":
        return postprocess(arrays[0], arrays[1], config)
    kept = [a[a[:, 4] >= config.score_threshold] for a in arrays]  # a higher threshold than the graph's
    return [Detections(a[:, :4], a[:, 4], a[:, 5].long()) for a in kept]


@dataclass(frozen=True)
class DetectedBoxes:
    """A detector's answer for one image: boxes (K, 4) x1y1x2y2 in the image's own pixels, best first."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    labels: list[str]  # the label of each box

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def from_detections(cls, found: Detections, image_size: tuple[int, int], spec, names: list[str]
                        ) -> DetectedBoxes:
        classes = found.labels.numpy().astype(np.int64)
        return cls(boxes_to_image(found.boxes.numpy(), image_size, spec), found.scores.numpy().astype(np.float32),
                   classes, [names[c] if c < len(names) else str(c) for c in classes])

    def draw(self, image, width: int = 3) -> Image.Image:
        """The image with every box outlined and captioned "label score", a colour per class."""
        canvas = load_image(image).copy()
        draw = ImageDraw.Draw(canvas)
        font = ImageFont.load_default(size=max(12, canvas.height // 40))
        for box, score, cls, label in zip(self.boxes.tolist(), self.scores.tolist(), self.classes.tolist(),
                                          self.labels):
            colour = _colour(cls)
            draw.rectangle(box, outline=colour, width=width)
            text = f"{label} {score:.2g}"
            left, top, right, bottom = draw.textbbox((box[0], box[1]), text, font=font)
            lift = min(bottom - top + 2, box[1])  # above the box, or inside it at the image's top edge
            draw.rectangle((left, top - lift, right + 2, bottom - lift), fill=colour)
            draw.text((box[0] + 1, box[1] - lift), text, fill=(255, 255, 255), font=font)
        return canvas


def _colour(index: int) -> tuple[int, int, int]:
    """A distinct, dark enough colour per class (golden-angle hues) for white captions."""
    import colorsys

    red, green, blue = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.85, 0.8)
    return int(red * 255), int(green * 255), int(blue * 255)
