"""The preprocessing contract (`PreprocessSpec`) and its reference implementation.

This is the one place preprocessing is defined. Checkpoints carry the spec, every exported file embeds it,
and every consumer (runtimes, benchmarks, the Android app) reads it back instead of hard-coding constants.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

__all__ = ["Letterbox", "PreprocessSpec", "boxes_to_image", "letterbox_geometry", "load_image", "preprocess"]

INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the model's input tensor.

    Steps, in order: decode to RGB (honouring EXIF orientation); resize so the short side is `resize_size`
    (or straight to `input_size` when `resize_size` is None) with `interpolation`; center-crop to
    `input_size`; multiply by `scale`; subtract `mean` and divide by `std` per channel (in `channel_order`);
    lay out as `layout` with a batch axis of 1.

    `resize_mode="letterbox"` (detectors) replaces the resize and crop: the whole image is scaled by one
    factor to fit inside `input_size` (aspect ratio kept, `letterbox_geometry` gives the exact numbers),
    centred, and the borders are filled with `pad_value` in every channel (0-255 pixel units, before
    `scale`/`mean`/`std`; 114 is the mid-grey Ultralytics and most YOLO ports use). Nothing is cropped, so
    boxes map back to the image with `boxes_to_image`.
    """

    input_size: tuple[int, int] = (256, 256)  # (height, width)
    resize_size: int | None = 288
    crop: str = "center"
    interpolation: str = "bicubic"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    layout: str = "NCHW"
    resize_mode: str = "crop"  # "crop": resize_size + crop as above; "letterbox": fit, keep aspect, pad
    pad_value: int = 114  # letterbox border, per channel, in 0-255 pixel units

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        problems = []
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            problems.append(f"input_size must be (height, width) > 0, got {self.input_size}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize_mode not in ("crop", "letterbox"):
            problems.append(f"resize_mode must be 'crop' or 'letterbox', got {self.resize_mode!r}")
        if not 0 <= self.pad_value <= 255:
            problems.append(f"pad_value must be a pixel value in 0-255, got {self.pad_value}")
        if self.crop not in ("center", "none"):
            problems.append(f"crop must be 'center' or 'none', got {self.crop!r}")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if self.layout not in ("NCHW", "NHWC"):
            problems.append(f"layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std need three values each, std > 0")
        if problems:
            raise ValueError("invalid PreprocessSpec: " + "; ".join(problems))

    @property
    def is_identity_normalization(self) -> bool:
        """True when the spec is 'pixels * scale' with no per-channel mean/std (expressible in CoreML ImageType)."""
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def with_input_size(self, size: int | tuple[int, int]) -> PreprocessSpec:
        """The same contract at another resolution, keeping the resize-to-crop ratio."""
        height, width = (size, size) if isinstance(size, int) else size
        resize = None
        if self.resize_size is not None:
            resize = int(round(min(height, width) * self.resize_size / min(self.input_size)))
        return replace(self, input_size=(height, width), resize_size=resize)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        return cls.from_dict(json.loads(text))


def load_image(source: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """Open an image file (or pass through a PIL image / HxWx3 uint8 array) as upright RGB."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] not in (3, 4):
            raise ImageError(f"an image array must be HxWx3 uint8, got {source.dtype} {source.shape}")
        image = Image.fromarray(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"{path} is a directory, not an image; pass image files (JPEG/PNG/BMP/WebP)")
        if not path.is_file():
            raise ImageError(f"image not found: {path}; check the path")
        if path.stat().st_size == 0:
            raise ImageError(f"{path} is empty (0 bytes); pass a JPEG/PNG/BMP/WebP file")
        try:
            image = Image.open(path)
            image.load()
            image = ImageOps.exif_transpose(image)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
            raise ImageError(f"cannot read {path} as an image ({err}); pass a JPEG/PNG/BMP/WebP file") from err
    return image.convert("RGB")


@dataclass(frozen=True)
class Letterbox:
    """Where a letterboxed image sits in the input: input = image * (scale_x, scale_y) + (pad_x, pad_y)."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized: tuple[int, int]  # (width, height) of the scaled image inside the input

    def to_image(self, boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """Boxes (N, 4) x1y1x2y2 in input pixels -> pixels of the (width, height) image, clipped to it."""
        w, h = image_size
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = (boxes - np.array([self.pad_x, self.pad_y] * 2)) / np.array([self.scale_x, self.scale_y] * 2)
        return np.clip(out, 0, [w, h, w, h]).astype(np.float32)


def letterbox_geometry(image_size: tuple[int, int], input_size: tuple[int, int]) -> Letterbox:
    """The letterbox of an image of (width, height) `image_size` in an input of (height, width) `input_size`.

    The scale is per axis after rounding the resized size to whole pixels, so mapping boxes back is exact."""
    w, h = image_size
    height, width = input_size
    ratio = min(width / w, height / h)
    new_w, new_h = max(1, min(width, int(round(w * ratio)))), max(1, min(height, int(round(h * ratio))))
    return Letterbox(new_w / w, new_h / h, (width - new_w) // 2, (height - new_h) // 2, (new_w, new_h))


def boxes_to_image(boxes: np.ndarray, image_size: tuple[int, int], spec: PreprocessSpec) -> np.ndarray:
    """Boxes (N, 4) x1, y1, x2, y2 in model-input pixels -> the same boxes in pixels of the original (width,
    height) image, clipped to it. Handles the letterbox and the plain resize (crop="none" or no resize_size)."""
    if spec.resize_mode == "letterbox":
        return letterbox_geometry(image_size, spec.input_size).to_image(boxes, image_size)
    if spec.resize_size is None or spec.crop == "none":
        height, width = spec.input_size
        stretch = Letterbox(width / image_size[0], height / image_size[1], 0, 0, (width, height))
        return stretch.to_image(boxes, image_size)
    raise ValueError("boxes map back only from a letterbox or a whole-image resize, not from a center crop")


def _letterbox(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    box = letterbox_geometry(image.size, spec.input_size)
    height, width = spec.input_size
    canvas = Image.new("RGB", (width, height), (spec.pad_value,) * 3)
    canvas.paste(image.resize(box.resized, INTERPOLATIONS[spec.interpolation]), (box.pad_x, box.pad_y))
    return canvas


def _resize_and_crop(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    height, width = spec.input_size
    resample = INTERPOLATIONS[spec.interpolation]
    if spec.resize_mode == "letterbox":
        return _letterbox(image, spec)
    if spec.resize_size is None:
        return image.resize((width, height), resample)
    w, h = image.size
    short = min(w, h)
    new_w, new_h = (spec.resize_size, int(round(h * spec.resize_size / short))) if w <= h else \
        (int(round(w * spec.resize_size / short)), spec.resize_size)
    new_w, new_h = max(new_w, width), max(new_h, height)
    image = image.resize((new_w, new_h), resample)
    if spec.crop == "none":
        return image.resize((width, height), resample)
    left = int(round((new_w - width) / 2.0))
    top = int(round((new_h - height) / 2.0))
    return image.crop((left, top, left + width, top + height))


def preprocess(source: str | Path | Image.Image | np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Reference implementation of the contract: one image -> float32 array with a batch axis of 1."""
    image = _resize_and_crop(load_image(source), spec)
    pixels = np.asarray(image, dtype=np.float32)  # H, W, RGB
    if spec.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    pixels = pixels * np.float32(spec.scale)
    pixels = (pixels - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels[None], dtype=np.float32)
