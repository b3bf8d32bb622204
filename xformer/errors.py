"""Errors users see. Each message names the problem and the fix; the CLI prints it as one line and exits
with the error's `exit_code`: 2 when what was given cannot be used (fix the command or its inputs), 1 when
the request was right but the work failed (a converter, a device, the environment)."""

__all__ = ["CheckpointError", "DataError", "DeviceError", "ExportError", "ImageError", "MissingExtraError",
           "ModelFileError", "OptionError", "UsageError", "XFormerError", "require"]


class XFormerError(Exception):
    """Base of every error the CLI reports as one clear line instead of a traceback."""

    exit_code = 1


class UsageError(XFormerError, ValueError):
    """Something the user gave cannot be used as given: an argument, an option or an input file."""

    exit_code = 2


class DataError(UsageError):
    """A data set that cannot be used for training or evaluation (missing, empty, mislabelled, unreadable)."""


class ExportError(XFormerError, ValueError):
    """An export that failed (a converter crashed, a file did not match PyTorch)."""


class OptionError(UsageError, ExportError):
    """An option, option value or combination that cannot apply (an ExportError too, for export requests)."""


class ImageError(UsageError):
    """An image input that is missing or cannot be decoded."""


class CheckpointError(UsageError):
    """A checkpoint that cannot be used (corrupt, mismatched, unsafe)."""


class ModelFileError(UsageError):
    """An exported model file that cannot be loaded or run."""


class DeviceError(XFormerError):
    """A device or external tool that cannot be used (no phone attached, a binary that fails or times out)."""


class MissingExtraError(XFormerError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str, module: str, install: str | None = None):
        install = install or f'pip install -e ".[{extra}]"'
        super().__init__(f"{what} needs the '{extra}' extra ({module} is not installed): {install}")
        self.extra = extra


def require(module: str, what: str, extra: str, install: str | None = None):
    """Import an optional dependency, or raise MissingExtraError naming the pip command (`install` when the
    extra does not install it)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(what, extra, module, install) from err
