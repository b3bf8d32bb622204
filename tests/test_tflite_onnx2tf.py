"""The onnx2tf route (ONNX -> TensorFlow -> TFLite): a runnable NHWC file matching PyTorch, its pitfalls handled
(no download, onnxsim on PATH, hand-written L2 norm), and TensorFlow's own analyzer agreeing with ours."""

import contextlib
import io

import pytest

from xformer.export import export
from xformer.export.metadata import read_tflite_metadata
from xformer.export.tflite_graph import parse_analyzer_report


# 96, not 64: at 64x64 onnx2tf's layout inference mis-converts the 2x2 maps (max abs err 0.16, which the
# parity check reports as a failed export).
@pytest.fixture(scope="module")
def onnx2tf_fp32(tmp_path_factory):
    (record,) = export("xformer_xxs", formats="tflite", imgsz=96, out_dir=tmp_path_factory.mktemp("onnx2tf"),
                       tflite_converter="onnx2tf")
    return record


@pytest.mark.slow
def test_onnx2tf_route_matches_pytorch(onnx2tf_fp32):
    record = onnx2tf_fp32
    assert record.ok, record.error
    assert record.parity["passed"] and record.parity["max_abs_err"] <= 1e-4, record.parity
    details = record.details
    assert details["converter"] == "onnx2tf" and details["gpu"]["incompatible"] == 0
    assert details["transposes"] == record.op_histogram.get("TRANSPOSE", 0)
    assert details["attention_layers"] == {} and details["attention_transposes"] is None  # no module paths
    meta = read_tflite_metadata(record.path)
    assert meta["preprocess"]["layout"] == "NHWC" and meta["export"]["converter"] == "onnx2tf"
    assert meta["export"]["input"]["dtype"] == "float32"


@pytest.mark.slow
def test_tensorflow_analyzer_agrees(onnx2tf_fp32):
    tf = pytest.importorskip("tensorflow")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf.lite.experimental.Analyzer.analyze(model_path=str(onnx2tf_fp32.path), gpu_compatibility=True)
    assert parse_analyzer_report(out.getvalue()) == []
    assert "looks compatible with GPU delegate" in out.getvalue()
