"""TFLite export: one function behind the format table, two converter routes, five precisions.

Routes (`--tflite-converter`):
- `litert-torch` (default): PyTorch -> TFLite directly, from the token-major "tflite" deploy form
  (`tflite_litert.py`);
- `onnx2tf`: ONNX -> TensorFlow -> TFLite, from the generic deploy form (`tflite_onnx2tf.py`).

Measured on xformer_s at 256x256 NHWC, fp32 (benchmarks/tflite_latency.py --routes; 2 shared cores, median ms):

    route          ops  TRANSPOSE (in XFA)  GPU-incompatible  max abs err  LiteRT 1 / 2 threads  convert
    litert-torch   715  0 (0)               0                 8.8e-7       78.5 / 40.7           85 s
    onnx2tf        553  54 (n/a)            0                 1.3e-6       62.9 / 39.2           769 s

litert-torch is the default: no TRANSPOSE anywhere (none for a mobile GPU delegate to lay out), per-layer
attribution in the report, static int8 through PT2E, a tenth of the conversion time and no TensorFlow. On this
x86 CPU its per-head BATCH_MATMULs cost more than onnx2tf's batched heads at 1 thread; at 2 threads the two match.
A deploy form with all heads of a layer in one chain (qkv as a BATCH_MATMUL with the weight on the left, so heads
split channel-major without a TRANSPOSE) was tried and not kept: 529 ops, but fp32 no faster (1.05x slower in one
interleaved A/B run) and static int8 1.30x slower and 44% larger, because PT2E leaves that matmul in float.

Precisions: fp32; fp16, dynamic-int8 and w8a16 are derived from the float file by ai-edge-quantizer
(`tflite_quantize.py`), so each model is converted once per process; int8 is a route's own static
quantisation (PT2E for litert-torch, `-oiqt` for onnx2tf), calibrated on `--calib DIR` or the sample photos.
Static files take and return float32 unless `int8_io` asks for int8 I/O. Every file is loaded and run in the
LiteRT interpreter before it is written, analysed for GPU delegate compatibility and TRANSPOSE ops, and carries
the metadata document (with its input/output dtype, scale and zero point) as an appended zip.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ExportError, OptionError, require
from ..preprocess import PreprocessSpec
from .calibration import load_calibration
from .formats import FORMATS
from .metadata import write_tflite_metadata
from .tflite_graph import gpu_compatibility, read_graph
from .tflite_quantize import quantize_flatbuffer, tensor_io, with_float_io

__all__ = ["CONVERTERS", "DEFAULT_CONVERTER", "PRECISIONS", "export_tflite"]

CONVERTERS = ("litert-torch", "onnx2tf")
DEFAULT_CONVERTER = "litert-torch"
PRECISIONS = FORMATS["tflite"].precisions
STATIC_PRECISIONS = FORMATS["tflite"].calibrated

# Converting takes minutes: every precision of one model in one process starts from the same float conversion,
# and int8 with float or int8 I/O from the same PT2E conversion.
_conversions: dict[tuple, bytes] = {}
_CACHED_CONVERSIONS = 2


def _example(input_size: tuple[int, int], channels_last_io: bool) -> torch.Tensor:
    shape = (1, *input_size, 3) if channels_last_io else (1, 3, *input_size)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _onnx_form(model: nn.Module, reference: nn.Module | None) -> nn.Module:
    """The NCHW module onnx2tf starts from: the generic deploy form when `model` is a deploy form."""
    from .deploy import deploy_model, has_deploy_form

    if reference is None:
        raise ExportError("the onnx2tf route needs the training-form model to rebuild the generic deploy form")
    if has_deploy_form(reference) and not has_deploy_form(model):
        return deploy_model(reference, channels_last_io=False, target="generic")
    return reference


def _cached(key: tuple, convert, details: dict) -> bytes:
    if key in _conversions:
        details["conversion"] = "reused from earlier in this process"
        return _conversions[key]
    start = time.perf_counter()
    flatbuffer = convert()
    details["conversion"] = f"{time.perf_counter() - start:.1f} s"
    while len(_conversions) >= _CACHED_CONVERSIONS:
        _conversions.pop(next(iter(_conversions)))
    _conversions[key] = flatbuffer
    return flatbuffer


def _model_key(converter: str, input_size: tuple[int, int], channels_last_io: bool, metadata: dict) -> tuple:
    return (converter, input_size, channels_last_io, metadata["arch"], metadata["weights_sha256"],
            json.dumps(metadata.get("options", {}), sort_keys=True), metadata["export"].get("deploy"),
            metadata.get("detection", {}).get("outputs"))  # a detector's output form changes the graph


def _float_flatbuffer(model: nn.Module, reference: nn.Module | None, converter: str, input_size: tuple[int, int],
                      channels_last_io: bool, metadata: dict, details: dict) -> bytes:
    def convert() -> bytes:
        if converter == "litert-torch":
            from .tflite_litert import convert_float

            return convert_float(model, _example(input_size, channels_last_io))
        from .tflite_onnx2tf import convert_float

        return convert_float(_onnx_form(model, reference), input_size, channels_last_io, metadata)

    return _cached(("float", *_model_key(converter, input_size, channels_last_io, metadata)), convert, details)


def _int8_flatbuffer(model: nn.Module, reference: nn.Module | None, converter: str, input_size: tuple[int, int],
                     channels_last_io: bool, metadata: dict, calibration: np.ndarray, int8_io: bool,
                     float_layers: list[str], details: dict) -> bytes:
    def convert() -> bytes:
        if converter == "litert-torch":
            from .int8_sensitivity import float_layer_filter
            from .tflite_litert import convert_int8

            samples = calibration.transpose(0, 2, 3, 1) if channels_last_io else calibration
            keep_float = float_layer_filter(model, float_layers) if float_layers else None
            return convert_int8(model, _example(input_size, channels_last_io), np.ascontiguousarray(samples),
                                keep_float)
        from .tflite_onnx2tf import convert_int8

        return convert_int8(_onnx_form(model, reference), input_size, channels_last_io, metadata, calibration,
                            int8_io)

    # litert-torch always writes int8 I/O (float I/O is added afterwards); onnx2tf writes one file per choice.
    io_choice = int8_io if converter == "onnx2tf" else None
    key = ("int8", *_model_key(converter, input_size, channels_last_io, metadata), io_choice,
           hashlib.sha256(calibration.tobytes()).hexdigest(), tuple(float_layers))
    return _cached(key, convert, details)


def _float_layers(model: nn.Module, request: str | None, converter: str, calibration: np.ndarray,
                  details: dict) -> list[str]:
    """The layers an int8 file keeps float: none, the named ones, or those the sensitivity sweep picks."""
    if not request:
        return []
    if converter != "litert-torch":
        raise OptionError("--int8-float-layers needs the litert-torch converter (PT2E); onnx2tf's int8 is "
                          "all-integer: drop --tflite-converter onnx2tf or --int8-float-layers")
    from .int8_sensitivity import choose_float_layers, parse_float_layers

    if request != "auto":
        names = parse_float_layers(model, request)
        details["int8_float_layers"] = {"float_layers": names, "chosen": "by name"}
        return names
    plan = choose_float_layers(model, calibration)
    details["int8_float_layers"] = {**plan.to_dict(), "chosen": "auto"}
    return plan.float_layers


def _check_runs(flatbuffer: bytes, precision: str) -> None:
    """Load and invoke the file once in LiteRT: a file the interpreter cannot run is never written."""
    litert = require("ai_edge_litert.interpreter", "TFLite export", "tflite")
    try:
        interpreter = litert.Interpreter(model_content=flatbuffer)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except (RuntimeError, ValueError) as err:
        raise ExportError(f"the {precision} TFLite file does not run in the LiteRT interpreter ({err}); "
                          "not written") from err


def export_tflite(model: nn.Module, path: Path, *, input_size: tuple[int, int], channels_last_io: bool,
                  metadata: dict, precision: str = "fp32", reference: nn.Module | None = None,
                  tflite_converter: str = DEFAULT_CONVERTER, calib: str | Path | None = None, int8_io: bool = False,
                  int8_float_layers: str | None = None, **_) -> dict:
    """Convert `model` (the form to ship) to a .tflite file at `path`; returns details for the report.

    `int8_float_layers` (int8, litert-torch): module names kept float, or "auto" (`int8_sensitivity.py`)."""
    if tflite_converter not in CONVERTERS:
        raise OptionError(f"unknown TFLite converter {tflite_converter!r}; choose from: {', '.join(CONVERTERS)}")
    if precision not in PRECISIONS:
        raise OptionError(f"TFLite precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    int8_io = int8_io and precision == "int8"  # a request with other precisions too keeps their float I/O
    details: dict = {"converter": tflite_converter}
    calibration = None
    if precision in STATIC_PRECISIONS:
        calibration = load_calibration(calib, PreprocessSpec.from_dict(metadata["preprocess"]))
        details["calibration"] = calibration.to_dict()
    if precision == "int8":
        float_layers = _float_layers(model, int8_float_layers, tflite_converter,
                                     calibration.in_layout("NHWC" if channels_last_io else "NCHW"), details)
        flatbuffer = _int8_flatbuffer(model, reference, tflite_converter, input_size, channels_last_io, metadata,
                                      calibration.images, int8_io, float_layers, details)
        details["quantizer"] = "PT2E (torchao + litert-torch)" if tflite_converter == "litert-torch" else \
            "onnx2tf -oiqt (TensorFlow converter)"
    else:
        flatbuffer = _float_flatbuffer(model, reference, tflite_converter, input_size, channels_last_io, metadata,
                                       details)
        if precision != "fp32":
            layout = "NHWC" if channels_last_io else "NCHW"
            flatbuffer = quantize_flatbuffer(flatbuffer, precision,
                                             calibration.in_layout(layout) if calibration else None)
            details["quantizer"] = "ai-edge-quantizer"
    if precision in STATIC_PRECISIONS and not int8_io:
        flatbuffer = with_float_io(flatbuffer)
    _check_runs(flatbuffer, precision)

    image, logits = tensor_io(flatbuffer)
    metadata = {**metadata, "export": {**metadata["export"], "converter": tflite_converter, "input": image,
                                       "output": logits}}
    path.write_bytes(write_tflite_metadata(flatbuffer, metadata))
    graph = read_graph(flatbuffer)
    attention = graph.attention_layers()
    details.update(op_histogram=graph.op_histogram, max_rank=graph.max_rank, ops=len(graph.ops),
                   transposes=graph.transposes, attention_layers=attention,
                   attention_transposes=sum(layer["transposes"] for layer in attention.values()) if attention else None,
                   gpu=gpu_compatibility(flatbuffer).to_dict(), input=image, output=logits)
    return details
