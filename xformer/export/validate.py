"""`xformer validate`: parity of an exported file against the PyTorch model it came from, and for TFLite files
the per-layer error report that shows where a quantised file diverges."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from ..checkpoint import load_model, weights_sha256
from ..errors import ModelFileError
from ..models.registry import create_model, list_models
from ..runtimes import load
from .custom import is_build_function, load_build_function
from .parity import ParityReport, check_parity
from .tflite_layers import PerLayerReport, per_layer_report

__all__ = ["per_layer_file", "validate_file"]

PER_LAYER_IMAGES = 32


def _reference(path: str | Path, meta: dict, checkpoint: str | Path | None, model_name: str | None) -> nn.Module:
    """`checkpoint` (or FILE.py:FUNCTION for a module of your own), or the seeded model the file's metadata
    names; its weights must be the file's."""
    if is_build_function(checkpoint):
        reference = load_build_function(checkpoint)
    elif checkpoint is not None:
        reference, _ = load_model(checkpoint, model_name)
    elif meta["arch"] not in list_models():
        raise ModelFileError(f"{Path(path).name} was exported from a module of your own ({meta['arch']}): pass the "
                             "FILE.py:FUNCTION that builds it with --ckpt")
    else:
        reference = create_model(meta["arch"], num_classes=meta["num_classes"], **meta.get("options", {}))
    if weights_sha256(reference) != meta.get("weights_sha256"):
        source = checkpoint or f"seeded {meta['arch']}"
        raise ModelFileError(f"{Path(path).name} was exported from other weights than {source}; "
                             "pass the checkpoint it came from with --ckpt")
    return reference


def validate_file(path: str | Path, checkpoint: str | Path | None = None,
                  model_name: str | None = None) -> ParityReport:
    """Compare `path` with its reference: `checkpoint`, or the seeded model its metadata names."""
    runtime = load(path)
    meta = runtime.metadata
    return check_parity(runtime, _reference(path, meta, checkpoint, model_name), meta["export"]["precision"])


def per_layer_file(path: str | Path, checkpoint: str | Path | None = None, model_name: str | None = None,
                   images: str | Path | None = None) -> PerLayerReport:
    """Per-layer error of a .tflite file against its reference, on the images under `images` (up to 32) or the
    sample photos. Quantised files are best judged on inputs like their calibration set."""
    from ..preprocess import preprocess
    from ..samples import sample_images
    from .calibration import image_files
    from .metadata import read_metadata

    if Path(path).suffix != ".tflite":
        raise ModelFileError(f"--per-layer reads the intermediate tensors of .tflite files, not {Path(path).suffix}")
    meta = read_metadata(path)
    reference = _reference(path, meta, checkpoint, model_name)
    spec = replace(reference.model_config.preprocess.with_input_size(tuple(meta["preprocess"]["input_size"])),
                   layout="NCHW")
    files = image_files(Path(images))[:PER_LAYER_IMAGES] if images is not None else sample_images()
    try:
        batch = np.concatenate([preprocess(p, spec) for p in files])
    except ValueError as err:  # an unreadable file among --images
        raise ModelFileError(f"--images: {err}; remove it or point --images at a folder of photos") from err
    return per_layer_report(path, reference, batch)
