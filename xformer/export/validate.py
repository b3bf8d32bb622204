"""`xformer validate`: parity of an exported file against the PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import load_model, weights_sha256
from ..errors import ModelFileError
from ..models.registry import create_model
from ..runtimes import load
from .parity import ParityReport, check_parity

__all__ = ["validate_file"]


def validate_file(path: str | Path, checkpoint: str | Path | None = None,
                  model_name: str | None = None) -> ParityReport:
    """Compare `path` with its reference: `checkpoint`, or the seeded model its metadata names."""
    runtime = load(path)
    meta = runtime.metadata
    if checkpoint is not None:
        reference, _ = load_model(checkpoint, model_name)
    else:
        reference = create_model(meta["arch"], num_classes=meta["num_classes"], **meta.get("options", {}))
    if weights_sha256(reference) != meta.get("weights_sha256"):
        source = checkpoint or f"seeded {meta['arch']}"
        raise ModelFileError(f"{Path(path).name} was exported from other weights than {source}; "
                             "pass the checkpoint it came from with --ckpt")
    return check_parity(runtime, reference, meta["export"]["precision"])
