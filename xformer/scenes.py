"""A generator of street-like scenes with exact segmentation masks: a data set that needs no download and whose
labels are right by construction.

Each scene is drawn shape by shape into the image and, with the class id instead of a colour, into the mask, with
no anti-aliasing, so every pixel's label is exactly the shape that painted it last. Classes differ in colour
range, texture and shape (sky gradient, buildings with window grids, road with lane marks, round trees, cars on
wheels, people), and each image gets sensor noise and a few unlabelled "clutter" shapes marked with the ignore id
255, as Cityscapes marks its void regions. Every image comes from its own seeded generator, so any machine writes
the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .checkpoint import atomic_path
from .errors import DataError

__all__ = ["SCENE_CLASSES", "render_scene", "write_scenes"]

SCENE_CLASSES = ("sky", "building", "road", "tree", "car", "person")
IGNORE = 255


class _Canvas:
    """An RGB image and its label map, painted together."""

    def __init__(self, height: int, width: int):
        self.image = Image.new("RGB", (width, height))
        self.mask = Image.new("L", (width, height), IGNORE)
        self.draw, self.label = ImageDraw.Draw(self.image), ImageDraw.Draw(self.mask)

    def paint(self, shape: str, xy, colour, class_id: int) -> None:
        getattr(self.draw, shape)(xy, fill=tuple(int(c) for c in colour))
        getattr(self.label, shape)(xy, fill=class_id)


def _jitter(rng: np.random.Generator, base, spread: float):
    return np.clip(np.asarray(base, float) + rng.uniform(-spread, spread, 3), 0, 255)


def render_scene(seed: int, height: int = 128, width: int = 256) -> tuple[Image.Image, Image.Image]:
    """One scene: (RGB image, L-mode mask of class ids in SCENE_CLASSES order, 255 = ignore)."""
    rng = np.random.default_rng(seed)
    sky, building, road, tree, car, person = range(len(SCENE_CLASSES))
    canvas = _Canvas(height, width)
    horizon = int(height * rng.uniform(0.4, 0.6))
    top, bottom = _jitter(rng, (90, 150, 220), 25), _jitter(rng, (180, 210, 240), 15)
    for y in range(horizon):  # sky: a vertical gradient, one row at a time
        t = y / max(1, horizon - 1)
        canvas.paint("line", [(0, y), (width, y)], top * (1 - t) + bottom * t, sky)
    x = int(rng.integers(-20, 10))
    while x < width:  # a skyline of buildings with window grids
        w = int(rng.integers(width // 10, width // 4))
        h = int(rng.integers(horizon // 3, horizon))
        wall = _jitter(rng, rng.choice([(120, 110, 100), (150, 140, 130), (100, 90, 110)]), 20)
        canvas.paint("rectangle", [x, horizon - h, x + w, horizon], wall, building)
        for wy in range(horizon - h + 4, horizon - 6, 8):
            for wx in range(x + 3, x + w - 5, 7):
                canvas.paint("rectangle", [wx, wy, wx + 3, wy + 4], wall * 0.45, building)
        x += w + int(rng.integers(0, 6))
    canvas.paint("rectangle", [0, horizon, width, height], _jitter(rng, (70, 70, 75), 12), road)
    for _ in range(int(rng.integers(3, 7))):  # lane marks are road
        mx = int(rng.integers(0, width))
        my = int(rng.integers(horizon + 4, height - 4))
        canvas.paint("rectangle", [mx, my, mx + 12, my + 2], (230, 230, 220), road)
    for _ in range(int(rng.integers(1, 4))):  # round trees on trunks, standing on the horizon
        cx, r = int(rng.integers(0, width)), int(rng.integers(height // 10, height // 5))
        canvas.paint("rectangle", [cx - 2, horizon - r, cx + 2, horizon + 2], (90, 60, 30), tree)
        green = _jitter(rng, (50, 120, 40), 25)
        canvas.paint("ellipse", [cx - r, horizon - 2 * r - r // 2, cx + r, horizon - r // 2], green, tree)
    for _ in range(int(rng.integers(1, 4))):  # cars on the road, bigger when nearer
        cy = int(rng.integers(horizon + 6, height - 2))
        scale = (cy - horizon) / max(1, height - horizon) * 0.8 + 0.4
        cw, ch = int(width * 0.16 * scale), int(height * 0.12 * scale)
        cx = int(rng.integers(0, max(1, width - cw)))
        body = _jitter(rng, rng.choice([(200, 30, 30), (30, 60, 200), (230, 200, 40), (240, 240, 240)]), 20)
        canvas.paint("rounded_rectangle", [cx, cy - ch, cx + cw, cy - ch // 4], body, car)
        canvas.paint("rectangle", [cx + cw // 5, cy - ch - ch // 3, cx + 4 * cw // 5, cy - ch], body * 0.8, car)
        for wx in (cx + cw // 5, cx + 4 * cw // 5):
            canvas.paint("ellipse", [wx - ch // 4, cy - ch // 2, wx + ch // 4, cy], (20, 20, 20), car)
    for _ in range(int(rng.integers(0, 4))):  # people: a body and a head
        py = int(rng.integers(horizon, height))
        ph = int(height * (0.15 + 0.25 * (py - horizon) / max(1, height - horizon)))
        px = int(rng.integers(0, width))
        clothes = _jitter(rng, rng.choice([(160, 40, 140), (40, 160, 160), (230, 120, 30)]), 30)
        canvas.paint("ellipse", [px - ph // 6, py - ph, px + ph // 6, py], clothes, person)
        canvas.paint("ellipse", [px - ph // 8, py - ph - ph // 4, px + ph // 8, py - ph + ph // 32],
                     (225, 180, 150), person)
    for _ in range(int(rng.integers(0, 3))):  # unlabelled clutter, ignored in training and scoring
        cx, cy, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(2, 6))
        canvas.paint("rectangle", [cx - r, cy - r, cx + r, cy + r], rng.uniform(0, 255, 3), IGNORE)
    pixels = np.asarray(canvas.image, np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), canvas.mask


def write_scenes(root: str | Path, train: int = 400, val: int = 100, height: int = 128, width: int = 256,
                 seed: int = 0) -> Path:
    """`train` + `val` scenes as DIR/{train,val}/{images,masks}/NNNN.png plus DIR/classes.txt, written to a
    temporary folder and renamed into place. Scene i of a split is drawn from seed (seed, split, i)."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root} exists and is not empty; pick a new folder or delete it")
    if height % 32 or width % 32 or min(height, width) < 64:
        raise DataError(f"scene size {height}x{width}: both sides must be multiples of 32 and at least 64")
    with atomic_path(root, suffix="", directory=True) as tmp:
        (tmp / "classes.txt").write_text("\n".join(SCENE_CLASSES) + "\n")
        for split_id, (split, count) in enumerate((("train", train), ("val", val))):
            for kind in ("images", "masks"):
                (tmp / split / kind).mkdir(parents=True)
            for i in range(count):
                image, mask = render_scene(int(np.random.SeedSequence([seed, split_id, i]).generate_state(1)[0]),
                                           height, width)
                image.save(tmp / split / "images" / f"{i:04d}.png")
                mask.save(tmp / split / "masks" / f"{i:04d}.png")
    return root
