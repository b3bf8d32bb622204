"""The runtime interface: every exported format (and the PyTorch reference) loads behind the same calls."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ModelFileError
from ..models.registry import ModelConfig
from ..preprocess import PreprocessSpec, load_image, preprocess

__all__ = ["Prediction", "Runtime", "SegmentationMask", "TensorInfo", "softmax", "top_k"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str | None = None  # "NCHW" / "NHWC" for image inputs
    scale: float | None = None  # quantisation parameters of integer tensors
    zero_point: int | None = None


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float  # softmax probability
    logit: float


@dataclass(frozen=True)
class SegmentationMask:
    """A segmenter's answer for one image: a class id per pixel of the image as given, and how to draw it."""

    mask: np.ndarray  # (height, width) class ids, at the image's own size
    labels: list[str]
    palette: list[tuple[int, int, int]]

    def areas(self) -> dict[str, float]:
        """Share of the image's pixels per class present, largest first."""
        counts = np.bincount(self.mask.reshape(-1), minlength=len(self.labels)) / self.mask.size
        order = np.argsort(-counts, kind="stable")
        return {self.labels[i]: float(counts[i]) for i in order if counts[i] > 0}

    def colour(self) -> Image.Image:
        """The mask in the palette's colours."""
        return Image.fromarray(np.asarray(self.palette, np.uint8)[self.mask])

    def overlay(self, image, alpha: float = 0.5) -> Image.Image:
        """The colour mask blended over the image (path, PIL image or HxWx3 uint8 array)."""
        return Image.blend(load_image(image), self.colour(), alpha)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, labels: list[str], k: int = 5) -> list[Prediction]:
    """Top-k of one row of logits; ties break towards the lower class index, as everywhere in the project."""
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    probs = softmax(row)
    order = np.lexsort((np.arange(row.size), -row))[:k]
    return [Prediction(int(i), labels[i] if i < len(labels) else str(i), float(probs[i]), float(row[i]))
            for i in order]


class Runtime(ABC):
    """Loads one model file; `run` takes a float image batch in NCHW or NHWC and returns float32 logits."""

    name: str = "runtime"
    path: Path
    metadata: dict
    inputs: list[TensorInfo]  # set by each runtime when it loads the file
    outputs: list[TensorInfo]
    version: str  # of the underlying runtime library

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.metadata)

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        """The contract with the layout this file takes."""
        return replace(self.config.preprocess, layout=self.input_layout)

    @property
    def input_layout(self) -> str:
        return self.inputs[0].layout or "NCHW"

    @abstractmethod
    def _run(self, array: np.ndarray) -> np.ndarray:
        """Run one batch already in the file's layout and dtype-agnostic float32: the output array, or the list of
        them for a file with several (a detector's, in the order its metadata names them)."""

    def run(self, array: np.ndarray) -> np.ndarray:
        array = np.asarray(array, dtype=np.float32)
        return self._run(self._to_input_layout(array))

    def predict(self, image, k: int = 5, score_threshold: float | None = None):
        """For one image (path, PIL image or HxWx3 uint8 array), using the embedded contract: the top-k classes of
        a classifier (list of Prediction), the mask of a segmenter (SegmentationMask) or the boxes of a detector
        (DetectedBoxes, in the image's pixels); `k` applies to classifiers only, `score_threshold` to detectors
        (default: the file's own; a file with NMS in its graph cannot go below the one it was exported with)."""
        logits = self.run(preprocess(image, self.preprocess_spec))
        if self.config.task == "segment":
            return self._mask(logits, load_image(image).size)
        if self.config.task == "detect":
            from .detection import DetectedBoxes, detections_from_outputs, nms_config

            overrides = {} if score_threshold is None else {"score_threshold": score_threshold}
            found = detections_from_outputs(logits, self.metadata, nms_config(self.metadata, **overrides))[0]
            return DetectedBoxes.from_detections(found, load_image(image).size, self.config.preprocess,
                                                 self.config.labels)
        return top_k(logits[0], self.config.labels, k)

    def _mask(self, logits: np.ndarray, size: tuple[int, int]) -> SegmentationMask:
        """Stride-4 logits -> argmax at the input size (bilinear, as scored) -> nearest-resized to the image's
        (width, height); the segmenters' contract resizes the whole image, so no crop needs undoing."""
        import torch

        from ..models.segmentation import palette, upsample_logits

        height, width = self.config.preprocess.input_size
        logits = np.asarray(logits, np.float32).reshape(1, self.config.num_classes, *np.shape(logits)[-2:])
        ids = upsample_logits(torch.from_numpy(logits), (height, width)).argmax(1)[0].numpy().astype(np.uint8)
        mask = np.asarray(Image.fromarray(ids).resize(size, Image.Resampling.NEAREST))
        return SegmentationMask(mask, list(self.config.labels), palette(self.config.labels))

    def _to_input_layout(self, array: np.ndarray) -> np.ndarray:
        expected = self.inputs[0].shape
        if array.ndim != 4:
            raise ModelFileError(f"{self.path.name}: expected a 4-D image batch, got shape {array.shape}")
        if self._fits(array.shape, expected):
            return array
        other = array.transpose(0, 2, 3, 1) if self.input_layout == "NHWC" else array.transpose(0, 3, 1, 2)
        if self._fits(other.shape, expected):
            return np.ascontiguousarray(other)
        raise ModelFileError(f"{self.path.name}: input shape {array.shape} does not fit the model's input "
                            f"{expected} ({self.input_layout}); preprocess with the embedded PreprocessSpec "
                            f"({self.config.preprocess.input_size[0]}x{self.config.preprocess.input_size[1]})")

    @staticmethod
    def _fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
        # Non-positive (dynamic) dims accept any size; the batch may vary when the file allows it.
        return len(shape) == len(expected) and all(e <= 0 or s == e for s, e in zip(shape, expected))
