"""The table of export formats. Argument validation, `xformer export --help` and the README's format table
are all generated from it, so adding a format means adding one row and one exporter module."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import MissingExtraError, OptionError

__all__ = ["FORMATS", "ExportFormat", "format_table_markdown", "get_format", "parse_formats", "slow_on_cpu"]

# Precisions whose kernels a desktop/phone CPU runs only as reference (unoptimised) code: said at export and bench
# time and recorded in the reports, so nobody ships one by mistake for a CPU.
_W8A16_ON_CPU = ("w8a16 (int8 weights, int16 activations) runs on LiteRT's reference kernels on CPUs: about 30x "
                 "slower than fp32 (XFormer-S at 256x256: 1.5 s per image here). It is a format for NPUs with "
                 "16-bit activation support (e.g. Qualcomm's HTP through the QNN delegate); on a CPU use int8 or fp32")


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
    # most that the format holds. Empty: the format does not export detectors yet.
    det_outputs: tuple[str, ...] = ("decoded", "raw")
    calibrated: tuple[str, ...] = ()  # precisions whose activation ranges come from calibration images
    reference_kernels: dict[str, str] = field(default_factory=dict, compare=False)  # precision: why it is slow
    # Precisions that share no conversion with the format's others: a parallel export gives each a job of its own.
    own_job: tuple[str, ...] = ()

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
        name="onnx", suffix=".onnx", precisions=("fp32", "fp16", "int8", "int8-qop"), default_precisions=("fp32",),
        extra="onnx", modules=("onnx", "onnxruntime", "onnxscript", "onnxsim"),
        options=("dynamic_batch", "simplify", "opset", "calib", "channels_last_io"),
        exporter="onnx_export:export_onnx", channels_last_default=False, det_outputs=("nms", "decoded", "raw"),
        description="ONNX (torch.onnx dynamo exporter, onnxsim-simplified; int8 = static QDQ, int8-qop = static "
                    "QOperator, both by onnxruntime.quantization), runs in ONNX Runtime",
        calibrated=("int8", "int8-qop")),
    ExportFormat(
        name="tflite", suffix=".tflite", precisions=("fp32", "fp16", "dynamic-int8", "int8", "w8a16"),
        default_precisions=("fp32",), extra="tflite",
        modules=("ai_edge_litert", "litert_torch", "ai_edge_quantizer", "torchao"),
        options=("tflite_converter", "calib", "int8_io", "int8_float_layers", "channels_last_io"),
        exporter="tflite_export:export_tflite", channels_last_default=True,
        description="TFLite (litert-torch, or onnx2tf via ONNX), runs in LiteRT with XNNPACK or the GPU delegate",
        calibrated=("int8", "w8a16"), reference_kernels={"w8a16": _W8A16_ON_CPU}, own_job=("int8",)),
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
                    "runtime",
        calibrated=("int8",)),
)}


def get_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise OptionError(f"unknown format {name!r}; choose from: {', '.join(FORMATS)}")
    return FORMATS[name]


def parse_formats(formats: str | list[str] | tuple[str, ...]) -> list[ExportFormat]:
    names = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    return [get_format(n) for n in names if n]


def slow_on_cpu(format_name: str, precision: str) -> str | None:
    """Why `precision` of `format_name` runs on reference kernels on a CPU, or None when it does not."""
    fmt = FORMATS.get(format_name)
    return fmt.reference_kernels.get(precision) if fmt else None


def format_table_markdown() -> str:
    """The README's format table, generated from FORMATS; precisions marked * run on reference kernels on CPUs
    (said below the table)."""
    rows = ["| format | suffix | precisions (default first) | extra | options | detector outputs (default first) |",
            "|---|---|---|---|---|---|"]
    notes = []
    for f in FORMATS.values():
        ordered = list(f.default_precisions) + [p for p in f.precisions if p not in f.default_precisions]
        precisions = ", ".join(p + ("*" if p in f.reference_kernels else "") for p in ordered)
        rows.append(f"| `{f.name}` | `{f.suffix}` | {precisions} | `{f.extra}` | {', '.join(f.options)} | "
                    f"{', '.join(f.det_outputs) or 'not yet'} |")
        notes += [f"\\* {f.name} {why}." for why in f.reference_kernels.values()]
    return "\n".join(rows + ([""] + notes if notes else []))
