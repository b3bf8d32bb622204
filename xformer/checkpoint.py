"""Self-describing checkpoints: one .safetensors file whose header carries the ModelConfig as JSON.

Plain PyTorch state_dicts (.pt/.pth) load too when the caller names the architecture, always with
`torch.load(weights_only=True)` so a checkpoint can never run code.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import __version__
from .errors import CheckpointError
from .models.registry import ModelConfig, create_model
from .weights import has_seeded_weights, mark_seeded, weights_sha256

__all__ = ["atomic_path", "has_seeded_weights", "load_checkpoint", "load_model", "save_checkpoint", "weights_sha256"]

CHECKPOINT_FORMAT = "xformer-checkpoint/1"
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")


class atomic_path:
    """Context manager yielding a temporary path next to `target`, renamed onto it only on success.

    Every writer uses it so an interrupted or failed write never leaves a half-written file behind.
    With `directory=True` the temporary path is an empty directory (for bundles such as .mlpackage, which
    the writer may also delete and recreate); an existing target directory is replaced only after the new
    one is complete.
    """

    def __init__(self, target: str | Path, suffix: str | None = None, directory: bool = False):
        self.target = Path(target)
        self.suffix = suffix if suffix is not None else self.target.suffix
        self.directory = directory

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        names = {"prefix": f".{self.target.name}.", "suffix": f".tmp{self.suffix}", "dir": self.target.parent}
        if self.directory:
            self.tmp = Path(tempfile.mkdtemp(**names))
        else:
            fd, tmp = tempfile.mkstemp(**names)
            os.close(fd)
            self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            _remove(self.tmp)
        elif not self.directory:
            os.replace(self.tmp, self.target)
        elif not self.target.exists():
            os.replace(self.tmp, self.target)
        else:  # os.replace cannot overwrite a non-empty directory: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".old", dir=self.target.parent))
            os.replace(self.target, old / self.target.name)
            os.replace(self.tmp, self.target)
            _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write weights and config to one .safetensors file (atomically)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoints are written as .safetensors, got {path.name}")
    config = getattr(model, "model_config", None)
    if config is None:
        raise CheckpointError("the model has no model_config; build it with xformer.create_model(...)")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": CHECKPOINT_FORMAT, "xformer_version": __version__,
                "config": json.dumps(config.to_dict(), sort_keys=True),
                "weights": "seeded" if has_seeded_weights(model) else "trained"}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({err}); "
                              "re-download or re-save it") from err
    return tensors, metadata


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} pickles Python objects that need code to load (for example a whole model); refusing to "
            "run it. Save `model.state_dict()` instead") from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({err})") from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return obj


def _first(items: list[str], sep: str = ", ", limit: int = 20) -> str:
    return sep.join(items[:limit]) + (" ..." if len(items) > limit else "")


def _load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_first(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_first(mismatched, '; ')}")
    if problems:
        arch = model.model_config.arch
        raise CheckpointError(f"{path} does not fit {arch} (num_classes={model.model_config.num_classes}): "
                              + " | ".join(problems) + ". Check --model and --num-classes.")
    model.load_state_dict(tensors, strict=True)


def load_checkpoint(path: str | Path, model_name: str | None = None, num_classes: int | None = None) -> nn.Module:
    """Load a model in eval mode from an xformer .safetensors checkpoint or a plain state_dict.

    A plain state_dict (or a safetensors file without our config) needs `model_name`; `num_classes`
    defaults to the classifier size found in the weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    config, metadata = None, {}
    if path.suffix == ".safetensors":
        tensors, metadata = _read_safetensors(path)
        if "config" in metadata:
            try:
                config = ModelConfig.from_dict(json.loads(metadata["config"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise CheckpointError(f"{path} has an unreadable config in its header ({err})") from err
    elif path.suffix in STATE_DICT_SUFFIXES:
        tensors = _read_state_dict(path)
    else:
        raise CheckpointError(f"unknown checkpoint type {path.suffix!r}: expected .safetensors, .pt or .pth")

    if config is None:
        if model_name is None:
            raise CheckpointError(f"{path} carries no model config; name its architecture with --model NAME "
                                  "(see `xformer models`)")
        model = _build(path, model_name, num_classes=num_classes or _classifier_size(tensors))
    elif model_name is not None and model_name != config.arch:
        raise CheckpointError(f"{path} holds a {config.arch} model, not {model_name}; drop --model or fix it")
    else:
        model = _build(path, config.arch, num_classes=config.num_classes, labels=config.labels or None,
                       preprocess=config.preprocess, **config.options)
    _load_weights(model, tensors, path)
    if metadata.get("weights") == "seeded":
        mark_seeded(model)
    return model


def _build(path: Path, arch: str, **kwargs) -> nn.Module:
    try:
        return create_model(arch, **kwargs)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: {err}") from err


def _classifier_size(tensors: dict[str, torch.Tensor]) -> int | None:
    weight = tensors.get("classifier.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def load_model(source: str | Path, model_name: str | None = None,
               num_classes: int | None = None) -> tuple[nn.Module, bool]:
    """A model from a checkpoint path or a registered name; the flag says the weights are seeded, not trained."""
    from .models.registry import list_models

    if isinstance(source, str) and source in list_models():
        return create_model(source, num_classes=num_classes), True
    path = Path(source)
    if not path.exists() and path.suffix not in (".safetensors", *STATE_DICT_SUFFIXES):
        raise CheckpointError(f"{source!r} is neither a model name nor a checkpoint file; "
                              f"models: {', '.join(list_models())}")
    return load_checkpoint(path, model_name, num_classes), False
