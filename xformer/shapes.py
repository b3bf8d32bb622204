"""A generator of rendered shapes with exact boxes, in COCO's format: a detection set that needs no download and
whose labels are right by construction.

Each image holds 1-4 filled shapes of five classes (circle, square, triangle, cross, star) in random colours that
stand out from what they cover, random sizes (over a quarter to over half of the short side: smaller shapes are
hard to tell apart at 96 px, and slow a short training run) and positions, on a noisy gradient with unlabelled
clutter lines. Shapes may overlap, but a placement that would hide more than half of an
earlier shape is redrawn, so every labelled object stays recognisable. A shape's box is the bounding box of its
own pixels (drawn without anti-aliasing into its own mask), so boxes are exact. Image sizes vary (square,
landscape and portrait) to exercise the letterbox. Every image comes from its own seeded generator, so any
machine writes the same files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .checkpoint import atomic_path
from .errors import DataError

__all__ = ["ANNOTATIONS_NAME", "SHAPE_CLASSES", "render_shapes", "write_shapes"]

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
ANNOTATIONS_NAME = "annotations.json"  # per split: DIR/SPLIT/annotations.json beside DIR/SPLIT/images/


def _outline(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    """Polygon of a shape of radius r (None: a circle, drawn as an ellipse)."""
    if kind == "circle":
        return None
    if kind == "square":
        points = [(math.cos(angle + k * math.pi / 2), math.sin(angle + k * math.pi / 2)) for k in range(4)]
    elif kind == "triangle":
        points = [(math.cos(angle + k * 2 * math.pi / 3), math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
    elif kind == "star":
        points = [((1.0 if k % 2 == 0 else 0.45) * math.cos(angle + k * math.pi / 5),
                   (1.0 if k % 2 == 0 else 0.45) * math.sin(angle + k * math.pi / 5)) for k in range(10)]
    else:  # cross: a plus sign of arms a third of the size wide
        t = 1 / 3
        points = [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t),
                  (-t, -t)]
        c, s = math.cos(angle), math.sin(angle)
        points = [(x * c - y * s, x * s + y * c) for x, y in points]
    return [(cx + r * x, cy + r * y) for x, y in points]


def _draw(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    outline = _outline(kind, cx, cy, r, angle)
    if outline is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(outline, fill=fill)


def render_shapes(seed: int, size: int = 96) -> tuple[Image.Image, list[dict]]:
    """One image and its objects: [{"category": index in SHAPE_CLASSES, "bbox": [x, y, w, h], "area": pixels}]."""
    rng = np.random.default_rng(seed)
    width, height = [(size, size), (size, size * 3 // 4), (size * 3 // 4, size)][int(rng.integers(0, 3))]
    top, bottom = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    pixels = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4))):  # clutter: lines, not objects
        xy = rng.uniform(0, [width, height, width, height])
        draw.line(list(xy), fill=tuple(int(c) for c in rng.uniform(0, 255, 3)), width=int(rng.integers(1, 3)))
    masks, objects = [], []
    short = min(width, height)
    for _ in range(int(rng.integers(1, 5))):
        for _attempt in range(20):
            kind = int(rng.integers(0, len(SHAPE_CLASSES)))
            r = rng.uniform(0.14, 0.3) * short
            cx, cy = rng.uniform(r * 0.6, width - r * 0.6), rng.uniform(r * 0.6, height - r * 0.6)
            mask = Image.new("L", (width, height))
            _draw(ImageDraw.Draw(mask), SHAPE_CLASSES[kind], cx, cy, r, rng.uniform(0, 2 * math.pi), 255)
            own = np.asarray(mask) > 0
            if own.sum() < 16 or any((m & own).sum() > 0.5 * m.sum() for m in masks):
                continue  # too small once clipped by the border, or hiding most of an earlier shape
            under = np.asarray(image)[own].mean(0)
            colour = rng.uniform(0, 255, 3)
            while np.abs(colour - under).sum() < 150:  # a shape the colour of what it covers would be invisible
                colour = rng.uniform(0, 255, 3)
            image.paste(Image.new("RGB", (width, height), tuple(int(c) for c in colour)), mask=mask)
            x0, y0, x1, y1 = mask.getbbox()
            masks.append(own)
            objects.append({"category": kind, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(own.sum())})
            break
    noisy = np.asarray(image, np.float32) + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), objects


def write_shapes(root: str | Path, train: int = 600, val: int = 150, size: int = 96, seed: int = 0) -> Path:
    """`train` + `val` images as DIR/{train,val}/images/NNNN.png with DIR/{train,val}/annotations.json (COCO
    format: category ids 1..5 in SHAPE_CLASSES order), written to a temporary folder and renamed into place."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not empty; pick a new folder or delete it")
    if size < 64:
        raise DataError(f"shapes size {size}: give at least 64 pixels")
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)]
    with atomic_path(root, suffix="", directory=True) as tmp:
        for split_id, (split, count) in enumerate((("train", train), ("val", val))):
            (tmp / split / "images").mkdir(parents=True)
            images, annotations = [], []
            for i in range(count):
                image, objects = render_shapes(int(np.random.SeedSequence([seed, split_id, i]).generate_state(1)[0]),
                                               size)
                name = f"{i:04d}.png"
                image.save(tmp / split / "images" / name)
                images.append({"id": i + 1, "file_name": name, "width": image.width, "height": image.height})
                for obj in objects:
                    annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                        "category_id": obj["category"] + 1, "bbox": obj["bbox"], "area": obj["area"],
                                        "iscrowd": 0})
            coco = {"info": {"description": f"xformer rendered shapes, {split} split, seed {seed}"},
                    "images": images, "annotations": annotations, "categories": categories}
            (tmp / split / ANNOTATIONS_NAME).write_text(json.dumps(coco))
    return root
