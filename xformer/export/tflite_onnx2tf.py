"""ONNX -> TFLite with onnx2tf (through TensorFlow): the route many users know.

The model is exported to ONNX first (our ONNX exporter, generic deploy form: onnx2tf cannot read litert-torch's
`tfl.batch_matmul`), then onnx2tf rebuilds it as a channels-last Keras graph and runs TensorFlow's TFLite
converter. Its pitfalls, handled here:

1. It fetches a sample calibration file from GitHub even for fp32 (no network here): it runs in a scratch
   directory holding a generated stand-in of that file, and real calibration goes in with
   `custom_input_op_name_np_data_path` (`-cind`).
2. It simplifies by calling the `onnxsim` command in a subprocess and silently skips that when the command
   is not on PATH: the running interpreter's bin directory is put on PATH for the call.
3. ReduceL2 at opset >= 18 fails to convert: the deploy form writes the L2 norm by hand.
It also calls sys.exit on errors, which is turned into an ExportError. Its layout inference can guess wrong on
small maps (xformer_xxs at 64x64: max abs err 0.16; right at 96 and up); the parity check reports that.

Static int8 is onnx2tf's `-oiqt` (TensorFlow's converter with a representative dataset): every op in int8,
including XFA's SQRT and DIV, which XNNPACK does not run in int8.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from ..errors import ExportError, require

__all__ = ["convert_float", "convert_int8"]

_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf would download
_INPUT = "image"


@contextlib.contextmanager
def _onnx2tf_environment(workdir: Path):
    """cwd = workdir (with the stand-in sample file) and the venv's bin on PATH, restored afterwards."""
    np.save(workdir / _SAMPLE_FILE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    cwd, path = os.getcwd(), os.environ.get("PATH", "")
    os.chdir(workdir)
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + path
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ["PATH"] = path


def _onnx(model: nn.Module, workdir: Path, input_size: tuple[int, int], metadata: dict) -> Path:
    from .onnx_export import export_onnx

    require("onnx", "the onnx2tf TFLite route", "onnx")
    path = workdir / "model.onnx"
    export_onnx(model, path, input_size=input_size, channels_last_io=False, metadata=metadata, compare_naive=False)
    return path


def _run_onnx2tf(onnx_path: Path, workdir: Path, channels_last_io: bool, **options) -> Path:
    # not in the extra: its pins would replace TensorFlow, numpy and protobuf
    onnx2tf = require("onnx2tf", "the onnx2tf TFLite route", "tflite",
                      install="pip install --no-deps tf-keras==2.21.0 onnx2tf==1.29.24 (`make setup` does this)")
    out = workdir / "tf"
    log = io.StringIO()
    try:
        with _onnx2tf_environment(workdir), contextlib.redirect_stdout(log):
            onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=str(out), non_verbose=True,
                            copy_onnx_input_output_names_to_tflite=True,
                            keep_ncw_or_nchw_or_ncdhw_input_names=None if channels_last_io else [_INPUT],
                            **options)
    except SystemExit as err:
        tail = " ".join(log.getvalue().split()[-40:])
        raise ExportError(f"onnx2tf failed (exit {err.code}): {tail}") from err
    return out


def convert_float(model: nn.Module, input_size: tuple[int, int], channels_last_io: bool, metadata: dict) -> bytes:
    """The float32 flatbuffer of `model` (NCHW PyTorch module) via ONNX and onnx2tf."""
    with tempfile.TemporaryDirectory(prefix="xformer-onnx2tf-") as tmp:
        workdir = Path(tmp)
        out = _run_onnx2tf(_onnx(model, workdir, input_size, metadata), workdir, channels_last_io)
        return (out / "model_float32.tflite").read_bytes()


def convert_int8(model: nn.Module, input_size: tuple[int, int], channels_last_io: bool, metadata: dict,
                 calibration: np.ndarray, int8_io: bool) -> bytes:
    """Full-integer int8 (`-oiqt`), calibrated on `calibration` (NCHW batch, preprocessed by the contract)."""
    with tempfile.TemporaryDirectory(prefix="xformer-onnx2tf-") as tmp:
        workdir = Path(tmp)
        samples = workdir / "calibration.npy"
        np.save(samples, calibration.transpose(0, 2, 3, 1) if channels_last_io else calibration)
        identity = np.zeros((1, 1, 1, 3), np.float32), np.ones((1, 1, 1, 3), np.float32)  # already normalised
        out = _run_onnx2tf(_onnx(model, workdir, input_size, metadata), workdir, channels_last_io,
                           output_integer_quantized_tflite=True, quant_type="per-channel",
                           custom_input_op_name_np_data_path=[[_INPUT, str(samples), *identity]],
                           input_quant_dtype="int8", output_quant_dtype="int8")
        name = "model_full_integer_quant.tflite" if int8_io else "model_integer_quant.tflite"
        return (out / name).read_bytes()

