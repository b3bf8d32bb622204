"""Quantised files judged on the trained digits checkpoint: ONNX fp16 and static int8 (QDQ, QOperator) through
parity and the accuracy gate of `xformer bench --data`, TFLite int8 with layers kept float (by name, and by the
sensitivity sweep), and the plain warning for precisions a CPU runs on reference kernels (w8a16)."""

import json

import numpy as np
import pytest

from xformer.cli import main
from xformer.errors import OptionError
from xformer.export import export
from xformer.export.deploy import deploy_model
from xformer.export.formats import FORMATS, format_table_markdown

from .conftest import ONNX_QUANTISED
from .digits import load_digits_folder

INT8_GATE_PT = 2.0  # the tests' gate; the quantisation benchmark reports the 1 pt goal


def test_onnx_quantised_files_pass_parity_and_have_their_form(digits_onnx_exports):
    onnx = pytest.importorskip("onnx")
    records = digits_onnx_exports
    for precision in ONNX_QUANTISED:
        record = records[precision]
        assert record.ok, (precision, record.error)
        assert record.parity["passed"] and record.parity["judged"], (precision, record.parity)
        assert record.parity["top1_agreement"] >= 0.9, precision  # judged on the calibration images
    assert records["int8-qop"].size_mb < records["fp32"].size_mb / 3
    assert records["int8"].size_mb < records["fp16"].size_mb < 0.6 * records["fp32"].size_mb
    assert records["fp16"].parity["cosine"] >= 0.999
    for precision in ("int8", "int8-qop"):
        assert records[precision].details["calibration"]["images"] == 419
    ops = {p: set(records[p].op_histogram) for p in ONNX_QUANTISED}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops["int8"] and "QLinearConv" not in ops["int8"]
    assert "QLinearConv" in ops["int8-qop"]
    half = onnx.load(records["fp16"].path)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # apps feed float32
    weights = [t for t in half.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)


def test_onnx_int8_holds_the_accuracy_gate_in_bench(digits_onnx_exports, digits_run, digits_root, bench_cache,
                                                    tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", str(digits_run.best), "--formats", "onnx", "--precisions", "fp32,fp16,int8,int8-qop",
                   "--data", str(digits_root), "--runs", "3", "--warmup", "1", "--cache-dir", str(bench_cache),
                   "--out", str(out)])
    assert status in (0, None)
    assert "exporting" not in capsys.readouterr().err  # the session's files were found in the cache
    rows = {r["precision"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    assert set(rows) == {"fp32", "fp16", "int8", "int8-qop"}
    reference = rows["fp32"]["accuracy"]["pytorch_top1"]
    assert reference >= 0.95
    assert abs(rows["fp16"]["accuracy"]["delta_pt"]) <= 0.2
    for precision in ("int8", "int8-qop"):
        accuracy = rows[precision]["accuracy"]
        assert accuracy["images"] == 540 and accuracy["margin_pt"] == 1.0
        assert accuracy["delta_pt"] >= -INT8_GATE_PT, (precision, accuracy)


def test_w8a16_says_it_runs_on_reference_kernels(digits_exports, digits_model, digits_root, tmp_path, capsys):
    note = FORMATS["tflite"].reference_kernels["w8a16"]
    assert "reference kernels" in note and "NPU" in note
    assert "w8a16*" in format_table_markdown() and note in format_table_markdown()
    record = digits_exports[("tflite", "w8a16")]
    assert record.details["reference_kernels_on_cpu"] == note
    assert "reference_kernels_on_cpu" not in digits_exports[("tflite", "int8")].details
    report = json.loads((record.path.parent / "export_report.json").read_text())
    assert any(e["precision"] == "w8a16" and e["details"]["reference_kernels_on_cpu"] == note for e in report["files"])

    out = tmp_path / "bench"
    assert main(["bench", str(record.path), "--runs", "2", "--warmup", "0", "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().err
    assert "WARNING" in printed and "REFERENCE KERNELS" in printed and "NPU" in printed
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert any("REFERENCE KERNELS" in w for w in row["warnings"])


def test_export_prints_the_reference_kernel_warning(digits_exports, digits_run, digits_root, tmp_path, capsys):
    """w8a16 is derived from the float conversion the session already made: only the quantiser runs here."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, path in enumerate(sorted((digits_root / "train").glob("*/*.png"))[::40]):
        (calib / f"{i:03d}.png").write_bytes(path.read_bytes())
    assert main(["export", str(digits_run.best), "--formats", "tflite", "--precisions", "w8a16", "--calib",
                 str(calib), "--out", str(tmp_path / "out"), "--no-validate"]) == 0
    printed = " ".join(capsys.readouterr().err.split())
    assert "warning: w8a16 (int8 weights, int16 activations) runs on LiteRT's reference kernels" in printed


@pytest.fixture(scope="module")
def named_float_layers(digits_model, digits_root, tmp_path_factory):
    """A TFLite int8 file with two layers kept float, calibrated on 64 training images (a smaller set than the
    session's int8 file, to keep the PT2E calibration short)."""
    calib = tmp_path_factory.mktemp("calib64")
    for i, path in enumerate(sorted((digits_root / "train").glob("*/*.png"))[::20][:64]):
        (calib / f"{i:03d}.png").write_bytes(path.read_bytes())
    layers = ["layer5.1.fusion.conv", "classifier"]
    (record,) = export(digits_model, formats="tflite", precisions=["int8"], calib=str(calib),
                       out_dir=tmp_path_factory.mktemp("float-layers"), int8_float_layers=",".join(layers))
    return record, layers


def _float_convs(path) -> int:
    """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ops of a .tflite file that take a float32 input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return sum(1 for op in interpreter._get_ops_details()
               if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
               and dtypes[op["inputs"][0]] == np.float32)


def test_int8_float_layers_by_name(named_float_layers, digits_exports, digits_model, digits_root):
    record, layers = named_float_layers
    assert record.ok, record.error
    assert record.details["int8_float_layers"] == {"float_layers": layers, "chosen": "by name"}
    assert record.parity["passed"] and record.parity["judged"]
    assert _float_convs(record.path) == _float_convs(digits_exports[("tflite", "int8")].path) + 2
    from xformer.runtimes import load

    data = load_digits_folder(digits_root, digits_model.model_config.preprocess)
    x = data.arrays(data.test_images[::4]).transpose(0, 2, 3, 1)
    runtime = load(record.path)
    predicted = np.concatenate([runtime.run(np.ascontiguousarray(s[None])) for s in x]).argmax(1)
    assert (predicted == data.test_labels[::4]).mean() >= 0.93


def test_int8_float_layers_bad_requests(digits_model, digits_root, tmp_path):
    form = deploy_model(digits_model, True, "tflite")
    from xformer.export.int8_sensitivity import parse_float_layers, quantisable_layers

    layers = quantisable_layers(form)
    assert layers[0] == "stem.conv" and layers[-1] == "classifier" and len(layers) == 72
    assert parse_float_layers(form, "layer3.1, classifier") == ["layer3.1", "classifier"]  # a block or a layer
    with pytest.raises(OptionError, match="not.a module of the model.*stem.conv"):
        parse_float_layers(form, "layer9.conv")
    with pytest.raises(OptionError, match="TFLite int8 files only"):
        export(digits_model, formats="tflite", precisions=["fp32"], out_dir=tmp_path, int8_float_layers="classifier")
    with pytest.raises(OptionError, match="an option of tflite"):
        export(digits_model, formats="onnx", precisions=["int8"], out_dir=tmp_path, int8_float_layers="classifier")
    with pytest.raises(OptionError, match="add --calib DIR"):
        export(digits_model, formats="tflite", precisions=["int8"], out_dir=tmp_path, int8_float_layers="auto")
    assert not list(tmp_path.iterdir())


def test_sensitivity_sweep_ranks_layers(digits_model, digits_root):
    from xformer.export.calibration import load_calibration
    from xformer.export.int8_sensitivity import sweep

    form = deploy_model(digits_model, True, "tflite")
    calibration = load_calibration(digits_root / "train", digits_model.model_config.preprocess).in_layout("NHWC")
    layers = ["stem.conv", "layer4.1.transformer.0.attn.qkv", "classifier"]
    results = sweep(form, calibration[:192], layers)
    assert sorted(r.layer for r in results) == sorted(layers)
    assert all(0.9 < r.cosine <= 1.0 and 0.9 <= r.top1_agreement <= 1.0 for r in results)
    assert results[0].cosine < 1.0  # the input layer's int8 error shows (float32 cosines can round to 1.0)
    assert [(r.top1_agreement, r.cosine) for r in results] == sorted((r.top1_agreement, r.cosine) for r in results)


@pytest.mark.slow
def test_int8_float_layers_auto(digits_model, digits_root, tmp_path):
    """The whole sweep (72 layers) and the auto choice on the trained model: several minutes."""
    from xformer.export.int8_sensitivity import AGREEMENT_GATE

    (record,) = export(digits_model, formats="tflite", precisions=["int8"], calib=str(digits_root / "train"),
                       out_dir=tmp_path, int8_float_layers="auto")
    assert record.ok and record.parity["passed"], (record.error, record.parity)
    plan = record.details["int8_float_layers"]
    assert plan["chosen"] == "auto" and len(plan["sweep"]) == 72 and plan["passed"]
    assert plan["steps"][-1]["top1_agreement"] >= AGREEMENT_GATE
    assert plan["float_layers"] == [r["layer"] for r in plan["sweep"][:len(plan["float_layers"])]]
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["files"][0]["details"]["int8_float_layers"]["sweep"][0] == plan["sweep"][0]
