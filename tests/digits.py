"""The digits data set as tests read it: the image folder `xformer dataset digits` writes (scikit-learn's 1,797
handwritten digits, split 1257/540 with a fixed seed), preprocessed by a model's own contract, so held-out top-1
of PyTorch and of each exported file compare like for like."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xformer import PreprocessSpec, preprocess

__all__ = ["DigitsData", "load_digits_folder", "top1"]


@dataclass
class DigitsData:
    spec: PreprocessSpec
    train_images: list[Image.Image]
    train_labels: np.ndarray
    test_images: list[Image.Image]
    test_labels: np.ndarray

    def arrays(self, images: list[Image.Image]) -> np.ndarray:
        """NCHW float32 batch through the contract."""
        return np.concatenate([preprocess(image, self.spec) for image in images])


def _split(folder: Path) -> tuple[list[Image.Image], np.ndarray]:
    files = sorted(folder.glob("*/*.png"))
    images = []
    for path in files:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images, np.array([int(p.parent.name) for p in files])


def load_digits_folder(root: Path, spec: PreprocessSpec) -> DigitsData:
    return DigitsData(spec, *_split(Path(root) / "train"), *_split(Path(root) / "val"))


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == labels).mean())
