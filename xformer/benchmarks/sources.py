"""What to benchmark: model names, checkpoints and exported files become `Artifact`s, one per model x format x
precision x input size. A name or checkpoint is exported on the fly (through `xformer.export.export`) into a
cache directory keyed by its weights, input size and package version, so a second run reuses the files;
delete the directory to force a fresh export."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .. import __version__
from ..checkpoint import load_model, weights_sha256
from ..complexity import count_macs, count_params
from ..errors import ModelFileError, OptionError
from ..export.custom import describe, is_build_function, load_build_function
from ..export.formats import get_format
from ..models import create_model, list_models

__all__ = ["DETECTION_PEERS", "EXPORTED_SUFFIXES", "FORMATS", "PEERS", "Artifact", "default_cache_dir", "export_dir",
           "peers_of", "resolve_sources"]

# Benchmarkable formats and the file suffix each is exported to (None: runs the PyTorch model in memory).
FORMATS: dict[str, str | None] = {"torch": None, "torch-compile": None, "onnx": ".onnx", "tflite": ".tflite",
                                  "coreml": ".mlpackage", "pte": ".pte"}
EXPORTED_SUFFIXES = {suffix: name for name, suffix in FORMATS.items() if suffix}
# The models every XFormer number is compared with: MHSA hybrid, pure CNN, plain ViT; detectors with the paper's
# detection baseline (the same YOLOv3 neck and head on MobileNetV2).
PEERS = ("mobilevit_s", "mobilenetv2_100", "deit_tiny")
DETECTION_PEERS = ("mobilenetv2_yolov3",)


def peers_of(sources: list[str]) -> tuple[str, ...]:
    """The peers of these sources: detection peers when a source is a registered detector, else PEERS."""
    detectors = list_models(task="detect")
    return DETECTION_PEERS if any(s in detectors for s in sources) else PEERS


@dataclass
class Artifact:
    """One model in one format, precision and input size; `path` is the file (None for in-memory PyTorch)."""

    model: str
    source: str
    format: str
    precision: str
    input_size: tuple[int, int]
    path: Path | None = None
    module: nn.Module | None = None  # the PyTorch model, for torch formats
    reference: nn.Module | None = None  # PyTorch model with the same weights, for parity; None when unknown
    params: int | None = None
    macs: int | None = None
    error: str | None = None  # export failed: reported as a failed row, the others carry on

    @property
    def size_mb(self) -> float | None:
        path = self.path
        if path is None or not path.exists():
            return None
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]  # .mlpackage is a dir
        return sum(p.stat().st_size for p in files) / 1e6


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xformer" / "exports"


def export_dir(model: nn.Module, size: tuple[int, int], cache_dir: Path, calib: str | None = None) -> Path:
    """Where on-the-fly exports of these weights at this size (and calibration folder) live (files named
    `{arch}_{precision}.{suffix}`)."""
    arch = model.model_config.arch
    name = f"{arch}-{weights_sha256(model)[:12]}-{size[0]}x{size[1]}-v{__version__}"
    if calib is not None:
        name += "-calib" + hashlib.sha256(str(Path(calib).resolve()).encode()).hexdigest()[:8]
    return cache_dir / name


def _size_of(spec: int | list[int] | None, model: nn.Module) -> tuple[int, int]:
    if not spec:
        return tuple(model.model_config.preprocess.input_size)
    return (spec, spec) if isinstance(spec, int) else (int(spec[0]), int(spec[-1]))


class _Complexity:
    """Params and MACs per (weights, input size): counting MACs costs a forward pass, so do it once."""

    def __init__(self):
        self._cache: dict[tuple, tuple[int, int]] = {}

    def __call__(self, model: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
        key = (model.model_config.arch, weights_sha256(model), size)
        if key not in self._cache:
            self._cache[key] = (count_params(model), count_macs(model, size))
        return self._cache[key]


def _unsupported_here(fmt: str) -> str | None:
    if fmt == "coreml" and sys.platform != "darwin":
        return "CoreML models run on macOS only; benchmark the .mlpackage on a Mac"
    return None


def _exported_file(path: Path, complexity: _Complexity) -> Artifact:
    """An exported file as given: its own format, precision and input size, read from its embedded metadata."""
    from ..export.metadata import read_metadata

    meta = read_metadata(path)
    arch = meta["arch"]
    export_info = meta.get("export", {})
    size = tuple(meta["preprocess"]["input_size"])
    fmt = export_info.get("format", EXPORTED_SUFFIXES[path.suffix])
    artifact = Artifact(model=arch, source=str(path), format=fmt, precision=export_info.get("precision", "unknown"),
                        input_size=size, path=path, error=_unsupported_here(fmt))
    if arch not in list_models():  # a module of your own: its parameter count travels in the metadata
        artifact.params = export_info.get("params")
        return artifact
    # Seeded weights can be rebuilt exactly: then parity against PyTorch is available for the bare file too.
    model = create_model(arch, num_classes=meta.get("num_classes", 1000), **meta.get("options", {}))
    artifact.params, artifact.macs = complexity(model, size)
    if weights_sha256(model) == meta.get("weights_sha256"):
        artifact.reference = model
    return artifact


def _export_missing(model: nn.Module, wanted: list[Artifact], out_dir: Path, log: Callable[[str], None],
                    calib: str | None = None) -> None:
    """Fill in `path` (or `error`) of artifacts whose file is not cached yet: one export call per format, so a
    format the exporter rejects fails its own rows only."""
    from ..export import export

    missing = [a for a in wanted if not a.path.exists() and not a.error]
    for fmt in dict.fromkeys(a.format for a in missing):
        todo = [a for a in missing if a.format == fmt]
        precisions = list(dict.fromkeys(a.precision for a in todo))
        height, width = todo[0].input_size
        log(f"exporting {model.model_config.arch} to {fmt} ({', '.join(precisions)}; {height}x{width}) in {out_dir}")
        try:
            quantised = any(p in get_format(fmt).calibrated for p in precisions)
            records = export(model, formats=[fmt], precisions=precisions,
                             imgsz=height if height == width else (height, width), out_dir=out_dir,
                             **({"calib": calib} if calib is not None and quantised else {}))
        except Exception as err:  # any exporter failure becomes failed rows; the other formats still run
            records, reason = [], f"{type(err).__name__}: {err}"
        else:
            reason = "the exporter returned no file"
        by_precision = {r.precision: r for r in records}
        for artifact in todo:
            record = by_precision.get(artifact.precision)
            if record is not None and record.ok and record.path is not None:
                artifact.path = Path(record.path)
            else:
                artifact.error = f"export failed: {record.error if record is not None else reason}"


def _model_artifacts(source: str, formats: list[str], precisions: list[str], sizes: list,
                     model_name: str | None, cache_dir: Path, complexity: _Complexity,
                     log: Callable[[str], None], calib: str | None = None) -> list[Artifact]:
    if is_build_function(source):
        model = load_build_function(source)
        if getattr(model, "model_config", None) is None:
            model = describe(model, input_size=sizes[0])
    else:
        model, _ = load_model(source, model_name)
    arch = model.model_config.arch
    artifacts = []
    # A precision another requested format has (int8 with onnx,tflite) skips the formats without it; one that no
    # format has is left to fail its rows, with the exporter's reason.
    exported = [get_format(f) for f in formats if FORMATS[f]]
    known = {p for f in exported for p in f.precisions}
    skipped = {f.name: [p for p in precisions if p in known and p not in f.precisions] for f in exported}
    for fmt, missing in skipped.items():
        if missing:
            log(f"{fmt} has no {', '.join(missing)} files; those rows are skipped")
    for spec in sizes:
        size = _size_of(spec, model)
        params, macs = complexity(model, size)
        out_dir = export_dir(model, size, cache_dir, calib)
        to_export = []
        for fmt in formats:
            suffix = FORMATS[fmt]
            kept = [p for p in precisions if p not in skipped[fmt]] if suffix else ["fp32"]
            for precision in kept:
                artifact = Artifact(model=arch, source=source, format=fmt, precision=precision, input_size=size,
                                    reference=model, params=params, macs=macs)
                if suffix is None:
                    artifact.module = model
                    artifact.path = Path(source) if Path(source).is_file() else None
                else:
                    artifact.path = out_dir / f"{arch}_{precision}{suffix}"
                    artifact.error = _unsupported_here(fmt)
                    to_export.append(artifact)
                artifacts.append(artifact)
        _export_missing(model, to_export, out_dir, log, calib)
    return artifacts


def resolve_sources(sources: list[str], formats: list[str], precisions: list[str], sizes: list,
                    model_name: str | None = None, cache_dir: Path | None = None,
                    log: Callable[[str], None] = print, calib: str | None = None) -> list[Artifact]:
    """Artifacts for every source. Exported files are taken as they are (their own format, precision and
    size); names and checkpoints expand to formats x precisions x sizes (PyTorch formats in fp32 only), their
    static int8 files calibrated on the images under `calib` when given."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise OptionError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    complexity = _Complexity()
    artifacts = []
    for source in sources:
        path = Path(source)
        if path.suffix in EXPORTED_SUFFIXES:
            if not path.exists():
                raise ModelFileError(f"model file not found: {source}")
            artifacts.append(_exported_file(path, complexity))
        else:
            artifacts += _model_artifacts(source, formats, precisions, sizes, model_name,
                                          cache_dir or default_cache_dir(), complexity, log, calib)
    return artifacts
