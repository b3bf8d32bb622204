"""Datasets: image folders in the ImageFolder layout, the training augmentation, and generators of data sets
whose labels are exact (scikit-learn's handwritten digits written out as an image folder).

A data set root holds `train/CLASS/*` and `val/CLASS/*`; a folder of class folders is accepted wherever only
one split is needed (`xformer val`). Class names come from the folder names, sorted, and become the
checkpoint's labels. Unreadable images are counted and skipped (or refused with `strict=True`), so one broken
file in ten thousand does not stop a run, but a folder with no usable image does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .checkpoint import atomic_path
from .errors import DataError, require
from .preprocess import INTERPOLATIONS, PreprocessSpec, load_image, preprocess

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "RandomResizedCropFlip", "find_split", "write_digits"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def find_split(root: str | Path, split: str) -> Path:
    """`root/split` when the root is a data set, else `root` itself when it directly holds class folders."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}; give a folder with train/ and val/ splits of class "
                        "folders (make one with `xformer dataset digits DIR`)")
    if (root / split).is_dir():
        return root / split
    if any(p.is_dir() and p.name in ("train", "val") for p in root.iterdir()):
        raise DataError(f"{root} has no {split}/ split; expected {root}/{split}/CLASS/image.jpg")
    return root


@dataclass(frozen=True)
class _Sample:
    path: Path
    label: int


class ImageFolder(torch.utils.data.Dataset):
    """Images under `root/CLASS/`, labelled by folder; `transform(image) -> CHW float tensor`.

    Every file with an image suffix is opened once up front (header only) so unreadable files are found before
    training starts: `skipped` lists them, and `strict=True` turns the first one into an error.
    """

    def __init__(self, root: str | Path, transform=None, strict: bool = False, classes: list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"image folder not found: {self.root}")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise DataError(f"{self.root} holds no class folders; expected {self.root}/CLASS/image.jpg")
        self.classes = list(classes) if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DataError(f"{self.root} has class folders the model does not know: {', '.join(unknown[:10])}; "
                            f"the model's classes are {', '.join(self.classes[:10])}"
                            f"{' ...' if len(self.classes) > 10 else ''}")
        self.transform = transform
        self.samples: list[_Sample] = []
        self.skipped: list[tuple[Path, str]] = []
        for name in found:
            files = sorted(p for p in (self.root / name).rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"class folder {self.root / name} holds no images "
                                f"({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder")
            label = self.classes.index(name)
            for path in files:
                problem = _unreadable(path)
                if problem is None:
                    self.samples.append(_Sample(path, label))
                elif strict:
                    raise DataError(f"cannot read {path} as an image ({problem}); fix or remove it, "
                                    "or drop --strict to skip unreadable images")
                else:
                    self.skipped.append((path, problem))
        present = {s.label for s in self.samples}
        empty = [n for n in found if self.classes.index(n) not in present]
        if empty:
            raise DataError(f"no readable image in class folder(s) {', '.join(empty)} under {self.root}")

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        return self.transform(load_image(sample.path)), sample.label


def _unreadable(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return str(err) or type(err).__name__
    return None


class EvalTransform:
    """The contract's reference preprocessing, as a CHW tensor: what every exported file is fed."""

    def __init__(self, spec: PreprocessSpec):
        self.spec = replace(spec, layout="NCHW")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(preprocess(image, self.spec)[0])


class RandomResizedCropFlip:
    """Training augmentation without torchvision: a random crop of `scale` of the area and an aspect ratio in
    `ratio`, resized to the contract's input size with its interpolation, flipped left-right with probability
    `hflip`, then scaled and normalised exactly as the contract says (so train and eval inputs match)."""

    def __init__(self, spec: PreprocessSpec, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: float = 0.5):
        self.spec = replace(spec, resize_size=None, layout="NCHW")
        self.scale, self.ratio, self.hflip = scale, ratio, hflip

    def crop_box(self, width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left, top = rng.randint(0, width - w), rng.randint(0, height - h)
                return left, top, left + w, top + h
        side = min(width, height)  # fall back to the central square, as torchvision does
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side

    def __call__(self, image: Image.Image) -> torch.Tensor:
        rng = random.Random(torch.randint(0, 2**62, ()).item())  # follows torch's seed in every worker
        height, width = self.spec.input_size
        image = image.resize((width, height), INTERPOLATIONS[self.spec.interpolation],
                             box=self.crop_box(*image.size, rng))
        if rng.random() < self.hflip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return torch.from_numpy(preprocess(image, self.spec)[0])


def write_digits(root: str | Path, size: int = 32, val_fraction: float = 0.3, seed: int = 0) -> Path:
    """scikit-learn's 1,797 handwritten digits (8x8, bundled, no download) as an image folder at `root`:
    train/0..9 and val/0..9, PNGs upsampled to `size` pixels, split stratified with a fixed seed so every
    machine gets the same 1,257 / 540 images. Written to a temporary folder and renamed into place."""
    load_digits = require("sklearn.datasets", "the digits data set", "train").load_digits
    train_test_split = require("sklearn.model_selection", "the digits data set", "train").train_test_split
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not empty; pick a new folder or delete it")
    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 ink levels -> 8-bit grey
    index = np.arange(len(pixels))
    train, val = train_test_split(index, test_size=val_fraction, random_state=seed, stratify=digits.target)
    with atomic_path(root, suffix="", directory=True) as tmp:
        for split, members in (("train", train), ("val", val)):
            for i in sorted(members):
                folder = tmp / split / str(digits.target[i])
                folder.mkdir(parents=True, exist_ok=True)
                image = Image.fromarray(pixels[i]).resize((size, size), Image.Resampling.BICUBIC)
                image.convert("RGB").save(folder / f"{i:04d}.png")
    return root
