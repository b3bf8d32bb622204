"""Bring your own model: any `nn.Module` classifier exports, is checked against PyTorch, carries metadata and
benchmarks like the registered ones.

A module built outside the registry carries no ModelConfig. `describe` attaches one from what the caller knows
(input size, labels, preprocessing) and finds the number of classes by running the module once. The module is
exported as it is: the deploy form rewrites our own blocks only. `xformer export file.py:build_fn` loads the
module from a build function in a Python file.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import OptionError
from ..models.registry import ModelConfig, default_labels
from ..preprocess import PreprocessSpec

__all__ = ["describe", "is_build_function", "load_build_function"]

_BUILD_FUNCTION = re.compile(r"^(?P<file>.+\.py):(?P<function>[A-Za-z_]\w*)$")


def _arch_name(module: nn.Module) -> str:
    """SmallCNN -> small_cnn: the name files and reports use."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(module).__name__).lower()
    return re.sub(r"[^a-z0-9_]+", "_", name).strip("_") or "model"


def describe(module: nn.Module, input_size: int | Sequence[int] | None = None, labels: Sequence[str] | None = None,
             preprocess: PreprocessSpec | None = None, name: str | None = None) -> nn.Module:
    """Attach a `model_config` to `module` (set to eval mode) so it exports like a registered model.

    `input_size` is (height, width) or one int; it defaults to `preprocess.input_size`. `preprocess` defaults
    to the project's contract at that size (short side resized, center crop, bicubic, pixels / 255). The
    module must take a float NCHW batch and return logits of shape (batch, classes).
    """
    if not isinstance(module, nn.Module):
        raise OptionError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if input_size is None and preprocess is None:
        raise OptionError(f"{type(module).__name__} is not a registered model: give its input size "
                          "(input_size=(H, W) in Python, --imgsz on the command line)")
    size = (input_size, input_size) if isinstance(input_size, int) else \
        tuple(int(v) for v in input_size) if input_size is not None else preprocess.input_size
    if len(size) != 2 or min(size) <= 0:
        raise OptionError(f"input_size must be (height, width) > 0, got {input_size}")
    spec = preprocess or PreprocessSpec()
    if spec.input_size != size:
        spec = spec.with_input_size(size)
    module.eval()
    try:
        with torch.no_grad():
            logits = module(torch.zeros(1, 3, *size))
    except Exception as err:  # whatever the user's forward raises, say what was fed to it
        raise OptionError(f"{type(module).__name__} does not run on a 1x3x{size[0]}x{size[1]} image batch "
                          f"({type(err).__name__}: {err}); give the input size it takes") from err
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise OptionError(f"{type(module).__name__} must return logits of shape (batch, classes), got {got}")
    num_classes = int(logits.shape[1])
    labels = list(labels) if labels is not None else default_labels(num_classes)
    if len(labels) != num_classes:
        raise OptionError(f"{len(labels)} labels for a module with {num_classes} outputs; give one label per class")
    module.model_config = ModelConfig(arch=name or _arch_name(module), num_classes=num_classes, labels=labels,
                                      preprocess=spec)
    return module


def is_build_function(source: object) -> bool:
    return isinstance(source, str) and bool(_BUILD_FUNCTION.match(source))


def load_build_function(source: str) -> nn.Module:
    """The module returned by `build_fn()` in `path/to/file.py:build_fn`, in eval mode."""
    match = _BUILD_FUNCTION.match(source)
    if match is None:
        raise OptionError(f"{source!r} is not FILE.py:FUNCTION")
    path = Path(match["file"])
    if not path.is_file():
        raise OptionError(f"{path} not found; give FILE.py:FUNCTION with the file that builds your model")
    spec = importlib.util.spec_from_file_location(f"xformer_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))  # the file's own imports of its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise OptionError(f"{path} failed to import ({type(err).__name__}: {err})") from err
    finally:
        sys.path.remove(str(path.parent.resolve()))
    build = getattr(module, match["function"], None)
    if not callable(build):
        raise OptionError(f"{path} defines no function {match['function']!r}")
    try:
        model = build()
    except Exception as err:
        raise OptionError(f"{source} raised {type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise OptionError(f"{source} returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()
