"""XFormer Mobile: the XFormer vision backbone from a PyTorch checkpoint to a phone.

`import xformer` loads only torch, numpy and small pure-Python helpers; exporters and runtimes import
their heavy dependencies (onnx, tensorflow, coremltools, LiteRT) lazily, when used.
"""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .complexity import count_macs, count_params  # noqa: E402
from .errors import CheckpointError, XFormerError  # noqa: E402
from .models import ModelConfig, create_model, list_models  # noqa: E402
from .preprocess import PreprocessSpec, preprocess  # noqa: E402


def __getattr__(name: str):
    """`xformer.export(...)` without importing the exporters at `import xformer`."""
    if name == "export":
        import importlib

        return importlib.import_module(".export", __name__)
    raise AttributeError(f"module 'xformer' has no attribute {name!r}")


__all__ = ["CheckpointError", "ModelConfig", "PreprocessSpec", "__version__", "count_macs", "count_params",
           "create_model", "list_models", "load_checkpoint", "preprocess", "save_checkpoint", "XFormerError"]
