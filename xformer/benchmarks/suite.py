"""Suite files: a YAML document naming what to benchmark (the project's own published numbers live in
benchmarks/suite.yaml). Keys are `BenchConfig` fields; `models` is an alias of `sources`."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ..errors import OptionError, require
from .harness import BenchConfig

__all__ = ["load_suite"]

_LISTS = ("sources", "formats", "precisions", "threads", "imgsz", "delegates", "benchmark_model_args")


def load_suite(path: str | Path) -> dict:
    """The suite's settings as BenchConfig keyword arguments (validated by name, lists accept a scalar)."""
    yaml = require("yaml", "benchmark suite files", "bench")
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise OptionError(f"cannot read suite {path}: {err}") from err
    if not isinstance(data, dict):
        raise OptionError(f"suite {path} must be a mapping of settings, e.g. `models: [xformer_s]`")
    if "models" in data:
        data["sources"] = data.pop("models")
    data.pop("name", None)
    data.pop("description", None)
    known = {f.name for f in fields(BenchConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise OptionError(f"suite {path}: unknown key(s) {', '.join(unknown)}; "
                           f"known: models, name, description, {', '.join(sorted(known - {'sources'}))}")
    for key in _LISTS:
        if key in data and not isinstance(data[key], list):
            data[key] = [data[key]]
    return data
