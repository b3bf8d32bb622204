"""Runtimes: one interface (`load(path)`) that loads and runs any exported file or checkpoint."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelFileError
from ..logs import quiet_native
from .base import Prediction, Runtime, SegmentationMask, TensorInfo, top_k

__all__ = ["Prediction", "Runtime", "SegmentationMask", "TensorInfo", "load", "top_k"]

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def load(source: str | Path, threads: int | None = None, **options) -> Runtime:
    """Pick the runtime by file suffix; a registered model name or a checkpoint loads the PyTorch reference.
    The runtime libraries' own log lines while loading (LiteRT's delegate notes, ...) are dropped unless
    --verbose."""
    with quiet_native():
        return _runtime(source, threads, options)


def _runtime(source: str | Path, threads: int | None, options: dict) -> Runtime:
    suffix = Path(str(source)).suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES or suffix == "":
        from .torch_runtime import TorchRuntime

        return TorchRuntime(source, threads=threads, **options)
    if not Path(source).exists():
        raise ModelFileError(f"model file not found: {source}")
    if suffix == ".onnx":
        from .onnx_runtime import OnnxRuntime

        return OnnxRuntime(source, threads=threads, **options)
    if suffix == ".tflite":
        from .litert_runtime import LiteRTRuntime

        return LiteRTRuntime(source, threads=threads, **options)
    if suffix == ".pte":
        from .executorch_runtime import ExecuTorchRuntime

        return ExecuTorchRuntime(source, threads=threads, **options)
    if suffix == ".mlpackage":
        from .coreml_runtime import CoreMLRuntime

        return CoreMLRuntime(source, **options)
    raise ModelFileError(f"no runtime for {Path(source).name}: expected .onnx, .tflite, .pte, .mlpackage, "
                         ".safetensors, .pt/.pth or a model name")
