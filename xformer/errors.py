"""Errors users see. Each message names the problem and the fix; the CLI prints it and exits non-zero."""

__all__ = ["CheckpointError", "DataError", "ExportError", "MissingExtraError", "ModelFileError", "XFormerError"]


class XFormerError(Exception):
    """Base of every error the CLI reports as one clear line instead of a traceback."""


class CheckpointError(XFormerError, ValueError):
    """A checkpoint that cannot be used (corrupt, mismatched, unsafe)."""


class DataError(XFormerError, ValueError):
    """A data set that cannot be used for training or evaluation (missing, empty, mislabelled, unreadable)."""


class ExportError(XFormerError, ValueError):
    """An export request that cannot be carried out (unknown format, bad option, failed conversion)."""


class ModelFileError(XFormerError, ValueError):
    """An exported model file that cannot be loaded or run."""


class MissingExtraError(XFormerError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(f"{what} needs the '{extra}' extra ({module} is not installed): "
                         f"pip install -e \".[{extra}]\"")
        self.extra = extra


def require(module: str, what: str, extra: str):
    """Import an optional dependency, or raise MissingExtraError naming the pip command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(what, extra, module) from err
