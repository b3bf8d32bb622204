"""Detection data: COCO-format data sets (an images folder and an annotations JSON) and their training and
evaluation transforms.

Layouts (a data set root, or directly one split where only one is needed, as in `xformer val`):
- plain: `ROOT/SPLIT/images/*` with `ROOT/SPLIT/annotations.json` (what `xformer dataset shapes` writes);
- COCO: `ROOT/annotations/instances_SPLIT2017.json` with `ROOT/SPLIT2017/*` (SPLIT = train or val).
Class names are the categories' names, ordered by category id; class index i is the i-th category (COCO's
sparse ids 1..90 become 0..79, the order of its 80 names).

Everything is checked when the data set is opened, so a bad file stops a run before training rather than hours
in: an annotations file that does not parse, or annotations naming unknown images or category ids, is an
error. Boxes partly outside their image are clipped; boxes wholly outside or without area are dropped; images
missing on disk or unreadable are skipped (an error with --strict). What was fixed is counted in `note`.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .datasets import _unreadable
from .errors import DataError
from .preprocess import INTERPOLATIONS, PreprocessSpec, letterbox_geometry, load_image, preprocess
from .shapes import ANNOTATIONS_NAME

__all__ = ["CocoDetection", "DetEvalTransform", "DetTrainTransform", "collate_eval", "collate_train",
           "find_coco_split"]


def find_coco_split(root: str | Path, split: str) -> tuple[Path, Path]:
    """(images folder, annotations file) of one split."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}; give a folder with train/ and val/ splits of images/ and "
                        f"{ANNOTATIONS_NAME} (make one with `xformer dataset shapes DIR`) or COCO's annotations/ "
                        "and train2017/ val2017/")
    for folder in (root / split, root):
        if (folder / ANNOTATIONS_NAME).is_file() or (folder / "images").is_dir():
            annotations = folder / ANNOTATIONS_NAME
            if not annotations.is_file():
                raise DataError(f"{folder} has images/ but no {ANNOTATIONS_NAME}; add the COCO-format annotations")
            return folder / "images", annotations
    coco = sorted((root / "annotations").glob(f"instances_{split}*.json"))
    if coco:
        images = root / coco[0].stem.removeprefix("instances_")
        if not images.is_dir():
            raise DataError(f"{coco[0]} has no images folder {images}; put the {images.name} images there")
        return images, coco[0]
    raise DataError(f"{root} has no {split} split: expected {root}/{split}/images/ with {root}/{split}/"
                    f"{ANNOTATIONS_NAME}, or COCO's {root}/annotations/instances_{split}2017.json; "
                    "`xformer dataset shapes DIR` writes an example")


def _read_json(path: Path) -> dict:
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"annotations file {path} does not parse as JSON ({err}); fix or regenerate it") from err
    missing = [key for key in ("images", "annotations", "categories")
               if not isinstance(coco, dict) or not isinstance(coco.get(key), list)]
    if missing:
        raise DataError(f"annotations file {path} is not in COCO format: it needs lists 'images', 'annotations' "
                        f"and 'categories' (missing: {', '.join(missing)})")
    for key, fields in (("images", ("id", "file_name", "width", "height")), ("categories", ("id", "name"))):
        for entry in coco[key]:
            if not isinstance(entry, dict) or any(f not in entry for f in fields):
                raise DataError(f"annotations file {path}: an entry of '{key}' lacks one of {', '.join(fields)} "
                                f"({json.dumps(entry)[:80]}); COCO format needs them all")
    return coco


class CocoDetection(torch.utils.data.Dataset):
    """Images of one split with their boxes; `transform(image, target) -> (CHW float tensor, target)` where the
    target given is {"image_id", "size": (w, h), "boxes": (n, 4) float32 x1y1x2y2 image pixels, "labels": (n,)
    class indices, "area": (n,), "iscrowd": (n,)}."""

    def __init__(self, root: str | Path, split: str, classes: list[str] | None = None, transform=None,
                 strict: bool = False):
        images_dir, annotations_path = find_coco_split(root, split)
        self.root = images_dir.parent
        coco = _read_json(annotations_path)
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        names = [str(c["name"]) for c in categories]
        index = {c["id"]: i for i, c in enumerate(categories)}
        images = {im["id"]: im for im in coco["images"]}
        if classes is not None and list(classes) != names:
            raise DataError(f"{annotations_path} names the classes {', '.join(names[:6])}... but the model was "
                            f"trained on {', '.join(list(classes)[:6])}...; evaluate on data with the model's classes")
        self.classes, self.category_ids = names, [c["id"] for c in categories]
        self.transform = transform
        per_image: dict = {image_id: [] for image_id in images}
        unknown_categories, unknown_images = set(), set()
        for ann in coco["annotations"]:
            if ann.get("category_id") not in index:
                unknown_categories.add(ann.get("category_id"))
            elif ann.get("image_id") not in images:
                unknown_images.add(ann.get("image_id"))
            else:
                per_image[ann["image_id"]].append(ann)
        if unknown_categories:
            raise DataError(f"{annotations_path}: annotations use category id(s) "
                            f"{', '.join(map(str, sorted(unknown_categories, key=str)[:8]))} that 'categories' does "
                            f"not define (it has {', '.join(map(str, self.category_ids[:12]))}); add those categories "
                            "or remove their annotations")
        if unknown_images:
            raise DataError(f"{annotations_path}: annotations refer to image id(s) "
                            f"{', '.join(map(str, sorted(unknown_images, key=str)[:8]))} that 'images' does not list; "
                            "add the images or remove their annotations")
        self.samples: list[tuple[Path, dict]] = []
        self.skipped: list[tuple[Path, str]] = []
        self.clipped = self.dropped = 0
        for image_id, info in sorted(images.items(), key=lambda item: str(item[1]["file_name"])):
            path = images_dir / info["file_name"]
            problem = "missing" if not path.is_file() else _unreadable(path)
            if problem is None:
                with Image.open(path) as im:
                    if im.size != (info["width"], info["height"]):
                        problem = (f"it is {im.size[0]}x{im.size[1]} but {annotations_path.name} says "
                                   f"{info['width']}x{info['height']}")
            if problem is not None:
                if strict:
                    raise DataError(f"cannot use {path} ({problem}); fix or remove it, or drop --strict to skip it")
                self.skipped.append((path, problem))
                continue
            self.samples.append((path, self._target(image_id, info, per_image[image_id], index, annotations_path)))
        if not self.samples:
            raise DataError(f"no usable image in {images_dir} ({len(self.skipped)} listed in {annotations_path.name} "
                            "are missing or unreadable); check the images folder")

    def _target(self, image_id, info: dict, annotations: list[dict], index: dict, path: Path) -> dict:
        width, height = info["width"], info["height"]
        boxes, labels, areas, crowd = [], [], [], []
        for ann in annotations:
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (KeyError, TypeError, ValueError) as err:
                raise DataError(f"{path}: annotation {ann.get('id')} has no usable bbox [x, y, width, height] "
                                f"({err})") from err
            x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
            if x2 - x1 < 1 or y2 - y1 < 1:  # wholly outside the image, or no area
                self.dropped += 1
                continue
            self.clipped += (x1, y1, x2, y2) != (x, y, x + w, y + h)
            boxes.append((x1, y1, x2, y2))
            labels.append(index[ann["category_id"]])
            areas.append(float(ann.get("area", (x2 - x1) * (y2 - y1))))
            crowd.append(int(ann.get("iscrowd", 0)))
        return {"image_id": image_id, "size": (width, height),
                "boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "labels": np.asarray(labels, np.int64),
                "area": np.asarray(areas, np.float32), "iscrowd": np.asarray(crowd, np.int64)}

    @property
    def note(self) -> str | None:
        """What was fixed on reading, for the user to see (None when nothing was)."""
        if not (self.clipped or self.dropped):
            return None
        return (f"{self.root.name}: clipped {self.clipped} box(es) partly outside their image and dropped "
                f"{self.dropped} wholly outside or without area")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        return self.transform(load_image(path), target)


def collate_train(batch):
    """Images stacked; boxes as one (M, 6) tensor of [image index, class, x1, y1, x2, y2] in input pixels."""
    images = torch.stack([image for image, _ in batch])
    rows = [torch.cat([torch.full((len(t), 1), float(i)), t], dim=1) for i, (_, t) in enumerate(batch)]
    return images, torch.cat(rows) if rows else torch.zeros(0, 6)


def collate_eval(batch):
    """Images stacked; targets kept as a list of dicts (each scored in its own image's pixels)."""
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


class DetEvalTransform:
    """The whole image through the model's contract (letterbox); the target gains where the image sits in the
    input ("letterbox": a `Letterbox`), so detections map back to the image's pixels."""

    def __init__(self, spec: PreprocessSpec):
        self.spec = replace(spec, layout="NCHW")

    def __call__(self, image: Image.Image, target: dict):
        pixels = torch.from_numpy(preprocess(image, self.spec)[0])
        return pixels, {**target, "letterbox": letterbox_geometry(image.size, self.spec.input_size)}


class DetTrainTransform:
    """Letterbox at a random scale (of the fitting size) and a random offset (a fraction of the input, cropping
    what leaves the input), then a left-right flip. Boxes follow the image; a box keeping under a fifth of its
    area or under 2 px of width or height after the crop is dropped. Returns (image, (n, 5) [class, x1, y1, x2,
    y2] in input pixels)."""

    def __init__(self, spec: PreprocessSpec, scale: tuple[float, float] = (0.5, 1.5), translate: float = 0.1,
                 hflip: float = 0.5):
        self.spec = replace(spec, resize_size=None, resize_mode="crop", layout="NCHW")
        self.pad = (spec.pad_value,) * 3
        self.scale, self.translate, self.hflip = scale, translate, hflip

    def __call__(self, image: Image.Image, target: dict):
        rng = random.Random(torch.randint(0, 2**62, ()).item())  # follows torch's seed in every worker
        height, width = self.spec.input_size
        fit = min(width / image.width, height / image.height) * rng.uniform(*self.scale)
        new_w, new_h = max(1, round(image.width * fit)), max(1, round(image.height * fit))
        left = round((width - new_w) / 2 + rng.uniform(-self.translate, self.translate) * width)
        top = round((height - new_h) / 2 + rng.uniform(-self.translate, self.translate) * height)
        canvas = Image.new("RGB", (width, height), self.pad)
        canvas.paste(image.resize((new_w, new_h), INTERPOLATIONS[self.spec.interpolation]), (left, top))
        keep = target["iscrowd"] == 0
        boxes = target["boxes"][keep] * np.array([new_w / image.width, new_h / image.height] * 2, np.float32)
        boxes += np.array([left, top, left, top], np.float32)
        clipped = np.clip(boxes, 0, [width, height, width, height])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        kept_w, kept_h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        good = (kept_w >= 2) & (kept_h >= 2) & (kept_w * kept_h >= 0.2 * area)
        boxes, labels = clipped[good], target["labels"][keep][good]
        if rng.random() < self.hflip:
            canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
        pixels = torch.from_numpy(preprocess(canvas, self.spec)[0])
        rows = np.concatenate([labels[:, None].astype(np.float32), boxes.reshape(-1, 4)], axis=1)
        return pixels, torch.from_numpy(rows)
