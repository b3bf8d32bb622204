"""The table of export formats. Argument validation, `xformer export --help` and the README's format table
are all generated from it, so adding a format means adding one row and one exporter module."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MissingExtraError, OptionError

__all__ = ["FORMATS", "ExportFormat", "format_table_markdown", "get_format", "parse_formats"]


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    default_precisions: tuple[str, ...]
    extra: str  # pip extra that installs the converter and runtime
    modules: tuple[str, ...]  # import names that must be present
    options: tuple[str, ...]  # export options this format honours
    exporter: str  # "module:function" relative to xformer.export
    channels_last_default: bool
    description: str
    directory: bool = False  # the file is a directory bundle (.mlpackage), written atomically as one
    # Output forms a detector's file can have (export/detection_outputs.py), the default first: what an app wants
    # most that the format holds. None: the format does not export detectors yet.
    det_outputs: tuple[str, ...] = ("decoded", "raw")

    def missing_modules(self) -> list[str]:
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def require(self) -> None:
        missing = self.missing_modules()
        if missing:
            raise MissingExtraError(f"{self.name} export", self.extra, ", ".join(missing))

    def load_exporter(self) -> Callable:
        module, function = self.exporter.split(":")
        return getattr(importlib.import_module(f"xformer.export.{module}"), function)


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat(
        name="onnx", suffix=".onnx", precisions=("fp32",), default_precisions=("fp32",), extra="onnx",
        modules=("onnx", "onnxruntime", "onnxscript", "onnxsim"),
        options=("dynamic_batch", "simplify", "opset", "channels_last_io"),
        exporter="onnx_export:export_onnx", channels_last_default=False, det_outputs=("nms", "decoded", "raw"),
        description="ONNX (torch.onnx dynamo exporter, onnxsim-simplified), runs in ONNX Runtime"),
    ExportFormat(
        name="tflite", suffix=".tflite", precisions=("fp32", "fp16", "dynamic-int8", "int8", "w8a16"),
        default_precisions=("fp32",), extra="tflite",
        modules=("ai_edge_litert", "litert_torch", "ai_edge_quantizer", "torchao"),
        options=("tflite_converter", "calib", "int8_io", "channels_last_io"),
        exporter="tflite_export:export_tflite", channels_last_default=True,
        description="TFLite (litert-torch, or onnx2tf via ONNX), runs in LiteRT with XNNPACK or the GPU delegate"),
    ExportFormat(
        name="coreml", suffix=".mlpackage", precisions=("fp16", "fp32", "int8", "palette6"),
        default_precisions=("fp16",), extra="coreml", modules=("coremltools",),
        options=("coreml_input", "channels_last_io"),
        exporter="coreml_export:export_coreml", channels_last_default=False, det_outputs=("nms", "decoded", "raw"),
        description="CoreML ML program (iOS 16+) with image input and classifier outputs; checked on Linux by "
                    "evaluating its MIL program, predicts on macOS",
        directory=True),
    ExportFormat(
        name="pte", suffix=".pte", precisions=("fp32", "int8"), default_precisions=("fp32",), extra="executorch",
        modules=("executorch", "torchao"), options=("pte_backend", "calib", "channels_last_io"),
        exporter="pte_export:export_pte", channels_last_default=True, det_outputs=(),
        description="ExecuTorch program lowered to XNNPACK (fp32, PT2E int8) or Core ML, runs in the ExecuTorch "
                    "runtime"),
)}


def get_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise OptionError(f"unknown format {name!r}; choose from: {', '.join(FORMATS)}")
    return FORMATS[name]


def parse_formats(formats: str | list[str] | tuple[str, ...]) -> list[ExportFormat]:
    names = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    return [get_format(n) for n in names if n]


def format_table_markdown() -> str:
    """The README's format table, generated from FORMATS."""
    rows = ["| format | suffix | precisions (default first) | extra | options | detector outputs (default first) |",
            "|---|---|---|---|---|---|"]
    for f in FORMATS.values():
        precisions = ", ".join(list(f.default_precisions) + [p for p in f.precisions if p not in f.default_precisions])
        rows.append(f"| `{f.name}` | `{f.suffix}` | {precisions} | `{f.extra}` | {', '.join(f.options)} | "
                    f"{', '.join(f.det_outputs) or 'not yet'} |")
    return "\n".join(rows)
