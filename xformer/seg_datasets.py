"""Segmentation data: image + label-map pairs in Cityscapes' layout or as a plain images/masks folder pair, and
their training and evaluation transforms.

Layouts (a data set root, or directly one split where only one is needed, as in `xformer val`):
- Cityscapes: `ROOT/leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png` with
  `ROOT/gtFine/SPLIT/CITY/NAME_gtFine_labelTrainIds.png` (train ids 0..18, 255 ignored);
- plain: `ROOT/SPLIT/images/NAME.*` with `ROOT/SPLIT/masks/NAME.png`.
Labels are single-channel PNGs of class ids; 255 marks pixels that are not scored. Class names come from
`ROOT/classes.txt` (one per line), else Cityscapes' 19 for its layout. Every pair is checked when the data set is
opened (sizes from the headers, ids from the pixels), so a wrong label stops a run before training, not hours in.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .datasets import IMAGE_SUFFIXES, _unreadable
from .errors import DataError
from .models.registry import CITYSCAPES_CLASSES
from .models.segmentation import IGNORE_INDEX
from .preprocess import INTERPOLATIONS, PreprocessSpec, load_image, preprocess

__all__ = ["SegEvalTransform", "SegTrainTransform", "SegmentationFolder", "collate_masks", "find_pairs",
           "read_classes"]

CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelTrainIds.png"


def read_classes(root: str | Path) -> list[str] | None:
    """Class names of a data set: ROOT/classes.txt, Cityscapes' 19 for its layout, else None."""
    root = Path(root)
    for folder in (root, root.parent):
        if (folder / "classes.txt").is_file():
            return [line.strip() for line in (folder / "classes.txt").read_text().splitlines() if line.strip()]
    if (root / "leftImg8bit").is_dir() or root.parent.name == "leftImg8bit":
        return list(CITYSCAPES_CLASSES)
    return None


def find_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) paths of one split, in a stable order; every image must have its label."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}; give a folder with train/ and val/ splits of images/ and "
                        "masks/ (make one with `xformer dataset scenes DIR`) or Cityscapes' leftImg8bit/ and gtFine/")
    if (root / "leftImg8bit").is_dir():
        images_dir, labels_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        if not images_dir.is_dir():
            raise DataError(f"{root} has no leftImg8bit/{split}/ split")
        pairs = []
        for image in sorted(images_dir.rglob(f"*{CITYSCAPES_IMAGE_SUFFIX}.png")):
            stem = image.name[: -len(CITYSCAPES_IMAGE_SUFFIX) - len(".png")]
            label = labels_dir / image.parent.relative_to(images_dir) / f"{stem}{CITYSCAPES_LABEL_SUFFIX}"
            pairs.append((image, label))
    else:
        folder = root / split if (root / split).is_dir() else root
        images_dir, labels_dir = folder / "images", folder / "masks"
        if not images_dir.is_dir() or not labels_dir.is_dir():
            raise DataError(f"{folder} needs images/ and masks/ folders (plain layout) or {root} Cityscapes' "
                            f"leftImg8bit/{split} and gtFine/{split}; `xformer dataset scenes DIR` writes an example")
        pairs = [(image, labels_dir / f"{image.stem}.png") for image in sorted(images_dir.iterdir())
                 if image.suffix.lower() in IMAGE_SUFFIXES]
    if not pairs:
        raise DataError(f"no images found for split {split!r} under {root}")
    missing = [image for image, label in pairs if not label.is_file()]
    if missing:
        raise DataError(f"{len(missing)} image(s) have no label map, first {missing[0]} (expected "
                        f"{dict(pairs)[missing[0]]}); add the label PNGs or remove those images")
    return pairs


def _check_label(image: Path, label: Path, num_classes: int) -> str | None:
    """Why this pair cannot be used, or None."""
    with Image.open(image) as im, Image.open(label) as lab:
        if im.size != lab.size:
            return (f"label {label} is {lab.size[0]}x{lab.size[1]} but its image {image.name} is "
                    f"{im.size[0]}x{im.size[1]}; a label map must have the image's size (one class id per pixel)")
        if lab.mode not in ("L", "P", "I", "I;16"):
            return (f"label {label} is a {lab.mode} image; labels must be single-channel PNGs of class ids "
                    "(not colour-coded masks)")
        values = np.asarray(lab)
        ids = np.flatnonzero(np.bincount(values.reshape(-1))) if values.dtype == np.uint8 else np.unique(values)
    bad = ids[(ids >= num_classes) & (ids != IGNORE_INDEX)]
    if bad.size:
        return (f"label {label} holds class id(s) {', '.join(map(str, bad[:8].tolist()))} outside 0..{num_classes - 1} "
                f"({num_classes} classes; {IGNORE_INDEX} = ignored); write train ids (for Cityscapes the "
                "*_labelTrainIds.png files, not *_labelIds.png) or list every class in classes.txt")
    return None


class SegmentationFolder(torch.utils.data.Dataset):
    """Image/label pairs of one split; `transform(image, label) -> (CHW float tensor, HW int64 tensor)`."""

    def __init__(self, root: str | Path, split: str, classes: list[str], transform=None, strict: bool = False):
        self.root = Path(root)
        self.classes = list(classes)
        self.transform = transform
        self.samples: list[tuple[Path, Path]] = []
        self.skipped: list[tuple[Path, str]] = []
        for image, label in find_pairs(root, split):
            problem = _unreadable(image) or _unreadable(label)
            if problem is not None:
                if strict:
                    raise DataError(f"cannot read {image} or its label ({problem}); fix or remove it, or drop "
                                    "--strict to skip unreadable images")
                self.skipped.append((image, problem))
                continue
            wrong = _check_label(image, label, len(self.classes))
            if wrong is not None:
                raise DataError(wrong)
            self.samples.append((image, label))
        if not self.samples:
            raise DataError(f"no readable image/label pair in split {split!r} of {root}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image, label = self.samples[index]
        with Image.open(label) as lab:
            mask = np.asarray(lab, dtype=np.uint8 if lab.mode in ("L", "P") else np.int64)
        return self.transform(load_image(image), mask)


def collate_masks(batch):
    """Images stacked; label maps kept as a list, since evaluation scores each at its own resolution."""
    return torch.stack([image for image, _ in batch]), [mask for _, mask in batch]


class SegEvalTransform:
    """The whole image through the model's contract; the label map untouched (scored at full resolution)."""

    def __init__(self, spec: PreprocessSpec):
        self.spec = replace(spec, layout="NCHW")

    def __call__(self, image: Image.Image, mask: np.ndarray):
        return torch.from_numpy(preprocess(image, self.spec)[0]), torch.from_numpy(mask.astype(np.int64))


class SegTrainTransform:
    """Random scale (of the contract's input size), random crop of the input size (padded with the ignore id
    where the scaled image is smaller), left-right flip; image bilinear (the contract's interpolation), labels
    nearest so no id is invented."""

    def __init__(self, spec: PreprocessSpec, scale: tuple[float, float] = (0.5, 2.0), hflip: float = 0.5):
        self.spec = replace(spec, resize_size=None, layout="NCHW")
        self.scale, self.hflip = scale, hflip

    def __call__(self, image: Image.Image, mask: np.ndarray):
        rng = random.Random(torch.randint(0, 2**62, ()).item())  # follows torch's seed in every worker
        height, width = self.spec.input_size
        s = rng.uniform(*self.scale)
        size = (max(1, round(width * s)), max(1, round(height * s)))
        image = image.resize(size, INTERPOLATIONS[self.spec.interpolation])
        label = Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)
        pad_w, pad_h = max(0, width - size[0]), max(0, height - size[1])
        if pad_w or pad_h:
            canvas, labels = Image.new("RGB", (size[0] + pad_w, size[1] + pad_h)), \
                Image.new(label.mode, (size[0] + pad_w, size[1] + pad_h), IGNORE_INDEX)
            canvas.paste(image)
            labels.paste(label)
            image, label = canvas, labels
        left, top = rng.randint(0, image.size[0] - width), rng.randint(0, image.size[1] - height)
        box = (left, top, left + width, top + height)
        image, label = image.crop(box), label.crop(box)
        if rng.random() < self.hflip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            label = label.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(preprocess(image, self.spec)[0])
        return pixels, torch.from_numpy(np.asarray(label, dtype=np.int64))
