"""Calibration images for static quantisation, preprocessed by the model's own contract.

Static int8 (and w8a16) files fix activation ranges from a few hundred representative inputs. They come from
`--calib DIR` (every image file below DIR) or, by default, from the sample photos that ship with installed
packages, which are too few for a good int8 file: any set under 100 images gets a warning.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..console import err_console as console
from ..errors import OptionError
from ..preprocess import PreprocessSpec, preprocess

__all__ = ["CalibrationSet", "IMAGE_SUFFIXES", "MIN_CALIBRATION_IMAGES", "image_files", "load_calibration",
           "one_thread"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
MIN_CALIBRATION_IMAGES = 100
MAX_CALIBRATION_IMAGES = 500  # ranges settle long before; more only costs time


@dataclass
class CalibrationSet:
    """Preprocessed calibration inputs, NCHW float32, and where they came from."""

    images: np.ndarray
    source: str
    skipped: int = 0
    warning: str | None = None

    def in_layout(self, layout: str) -> np.ndarray:
        return np.ascontiguousarray(self.images.transpose(0, 2, 3, 1)) if layout == "NHWC" else self.images

    def to_dict(self) -> dict:
        return {"images": len(self.images), "source": self.source, "skipped_unreadable": self.skipped,
                "warning": self.warning}


def image_files(directory: Path) -> list[Path]:
    """Image files under `directory`, sorted; an ExportError naming the fix when there are none."""
    if not directory.is_dir():
        raise OptionError(f"calibration directory not found: {directory}; pass --calib DIR with your images")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise OptionError(f"{directory} holds no images ({', '.join(IMAGE_SUFFIXES)}); point --calib at a folder "
                          "of photos like the ones the model will see")
    return files


def load_calibration(calib: str | Path | None, spec: PreprocessSpec) -> CalibrationSet:
    """Calibration inputs from the image files under `calib`, or the sample photos when it is None."""
    if calib is None:
        from ..samples import sample_images

        files, source = sample_images(), "sample photos (scikit-image, matplotlib)"
    else:
        files, source = image_files(Path(calib)), str(calib)
    # Evenly spaced over the sorted list, so a folder of class folders is sampled across every class.
    files = files[::-(-len(files) // MAX_CALIBRATION_IMAGES)]
    nchw = replace(spec, layout="NCHW")
    arrays, skipped = [], 0
    for path in files:
        try:
            arrays.append(preprocess(path, nchw))
        except ValueError:  # unreadable or not an image after all
            skipped += 1
    if not arrays:
        raise OptionError(f"none of the {len(files)} files in {source} could be read as an image")
    warning = None
    if len(arrays) < MIN_CALIBRATION_IMAGES:
        warning = (f"only {len(arrays)} calibration images from {source} ({MIN_CALIBRATION_IMAGES}+ recommended): "
                   "int8 ranges may not fit real inputs; pass --calib DIR with representative photos")
        console.print(f"[yellow]warning:[/] {warning}")
    return CalibrationSet(np.concatenate(arrays), source, skipped, warning)


@contextlib.contextmanager
def one_thread():
    """Calibrating an observed graph runs thousands of tiny ops: with two OpenMP threads on a busy two-core
    machine every op waits on a barrier, and calibration ran 27x slower than on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
