"""TFLite export on a trained model: accuracy per precision on a held-out set, structure, metadata, runtime,
per-layer errors and clear failures.

One xformer_xxs is trained on scikit-learn's digits (about a minute) and exported once per precision; every
test here reads those files.
"""

import json

import numpy as np
import pytest
import torch

from xformer.cli import main
from xformer.errors import ExportError, ModelFileError
from xformer.export import export
from xformer.export.metadata import read_tflite_metadata
from xformer.export.tflite_graph import read_graph
from xformer.runtimes import load
from xformer.runtimes.litert_runtime import LiteRTRuntime

from .conftest import DIGITS_PRECISIONS as PRECISIONS
from .digits import load_digits_folder, top1

CALIBRATION_IMAGES = 419  # the 1257 training images, evenly sampled down to at most 500


@pytest.fixture(scope="module")
def digits(digits_model, digits_root):
    return load_digits_folder(digits_root, digits_model.model_config.preprocess), digits_model


@pytest.fixture(scope="module")
def calib_dir(digits, tmp_path_factory):
    """128 training images as a flat folder: the per-layer report's inputs."""
    data, _ = digits
    directory = tmp_path_factory.mktemp("calib")
    for i, image in enumerate(data.train_images[::10]):
        image.save(directory / f"{i:04d}.png")
    return directory


@pytest.fixture(scope="module")
def exported(digits_exports):
    return {precision: r for (fmt, precision), r in digits_exports.items() if fmt == "tflite"}


@pytest.fixture(scope="module")
def checkpoint(digits_run):
    return digits_run.best


@pytest.fixture(scope="module")
def accuracy(digits, exported):
    data, model = digits
    x = data.arrays(data.test_images)
    with torch.no_grad():
        result = {"pytorch": top1(model(torch.from_numpy(x)).numpy(), data.test_labels)}
    for precision, record in exported.items():
        runtime = load(record.path)
        result[precision] = top1(np.concatenate([runtime.run(s[None]) for s in x]), data.test_labels)
    percent = {k: round(v * 100, 2) for k, v in result.items()}
    print(f"\ndigits held-out top-1 ({len(x)} images): {json.dumps(percent)}")
    return result


def test_every_precision_exports_and_runs(exported):
    for precision in PRECISIONS:
        record = exported[precision]
        assert record.ok, f"{precision}: {record.error}"
        assert record.path.name == f"xformer_xxs_{precision}.tflite"
        assert record.details["calibration"]["images"] == CALIBRATION_IMAGES if precision in ("int8", "w8a16") \
            else "calibration" not in record.details
    fp32, fp16 = exported["fp32"].parity, exported["fp16"].parity
    assert fp32["passed"] and fp32["max_abs_err"] <= 1e-4 and fp32["top1_agreement"] == 1.0
    assert fp16["passed"] and fp16["cosine"] >= 0.999
    assert exported["int8"].size_mb < exported["fp16"].size_mb < exported["fp32"].size_mb


def test_accuracy_gate_on_held_out_digits(accuracy):
    reference = accuracy["pytorch"]
    assert reference >= 0.95, "the fixture model did not train"
    assert abs(accuracy["fp32"] - reference) <= 0.005
    assert abs(accuracy["fp16"] - reference) <= 0.005
    assert accuracy["int8"] >= reference - 0.02
    assert accuracy["dynamic-int8"] >= reference - 0.02 and accuracy["w8a16"] >= reference - 0.02


def test_no_transpose_inside_xfa_and_gpu_compatible_floats(exported):
    for precision, record in exported.items():
        layers = record.details["attention_layers"]
        assert len(layers) == 2 + 4 + 3, precision
        assert all(layer["transposes"] == 0 for layer in layers.values()), precision
        assert read_graph(record.path).transposes == record.details["transposes"]
    for precision in ("fp32", "fp16"):
        record = exported[precision]
        assert record.details["transposes"] == 0
        assert record.details["gpu"]["incompatible"] == 0, record.details["gpu"]
    assert exported["fp32"].max_rank <= 4


def test_int8_runs_silu_and_residual_adds_in_int8(exported):
    """A float op between int8 convolutions costs a DEQUANTIZE and a QUANTIZE pass over the whole map."""
    graph = read_graph(exported["int8"].path)
    sigmoids = [t for op, t in zip(graph.ops, graph.activation_types) if op == "LOGISTIC"]
    residuals = [t for op, t in zip(graph.ops, graph.activation_types) if op == "ADD" and len(t) == 2]
    assert len(sigmoids) > 20 and all(t == ["INT8"] for t in sigmoids)
    assert len(residuals) > 10 and all(t == ["INT8", "INT8"] for t in residuals)
    fp32 = read_graph(exported["fp32"].path)
    assert all(t == ["FLOAT32"] for op, t in zip(fp32.ops, fp32.activation_types) if op == "LOGISTIC")


def test_metadata_round_trips_and_describes_io(exported, digits):
    config = digits[1].model_config
    for precision, record in exported.items():
        meta = read_tflite_metadata(record.path)
        assert meta["labels"] == config.labels == [str(i) for i in range(10)]
        assert meta["preprocess"] == {**config.preprocess.to_dict(), "layout": "NHWC"}
        assert meta["export"]["precision"] == precision and meta["export"]["converter"] == "litert-torch"
        assert meta["export"]["input"] == {"dtype": "float32", "scale": None, "zero_point": None}
        assert meta["export"]["output"]["dtype"] == "float32"
        runtime = LiteRTRuntime(record.path)  # the appended zip does not disturb the interpreter
        assert runtime.inputs[0].shape == (1, 64, 64, 3) and runtime.input_layout == "NHWC"


def test_int8_io_file_carries_scale_and_zero_point(digits, digits_root, exported, tmp_path):
    data, model = digits
    (record,) = export(model, formats="tflite", precisions=["int8"], out_dir=tmp_path,
                       calib=str(digits_root / "train"), int8_io=True)
    assert record.ok, record.error
    assert record.details["conversion"].startswith("reused")  # same PT2E conversion as the float-I/O file
    runtime = load(record.path)
    image, logits = runtime.inputs[0], runtime.outputs[0]
    assert image.dtype == "int8" and logits.dtype == "int8" and image.scale > 0
    meta = read_tflite_metadata(record.path)["export"]
    assert meta["input"] == {"dtype": "int8", "scale": image.scale, "zero_point": image.zero_point}
    assert meta["output"] == {"dtype": "int8", "scale": logits.scale, "zero_point": logits.zero_point}
    x = data.arrays(data.test_images[:50])
    float_io = load(exported["int8"].path)
    same = [runtime.predict(img, k=1)[0].index == float_io.predict(img, k=1)[0].index for img in data.test_images[:50]]
    assert np.mean(same) == 1.0
    assert np.abs(runtime.run(x[:1]) - float_io.run(x[:1])).max() < 1e-6


def test_predict_cli_matches_the_checkpoint(exported, checkpoint, sample_photo, capsys):
    from xformer.runtimes import load as load_runtime

    torch_top = load_runtime(checkpoint).predict(sample_photo)
    tflite_top = load_runtime(exported["fp32"].path).predict(sample_photo)
    assert [p.index for p in torch_top] == [p.index for p in tflite_top]
    assert main(["predict", str(exported["fp32"].path), str(sample_photo), "-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "litert" in out and exported["fp32"].path.name in out and "prob" in out


def test_info_prints_the_embedded_metadata(exported, capsys):
    assert main(["info", str(exported["int8"].path)]) == 0
    out = capsys.readouterr().out
    assert "xformer_xxs" in out and "10 labels: 0, 1, 2, 3, 4" in out and "litert-torch" in out


def test_per_layer_report_finds_where_int8_diverges(exported, checkpoint, calib_dir, capsys):
    from xformer.export.validate import per_layer_file

    report = per_layer_file(exported["int8"].path, checkpoint, images=calib_dir)
    assert {"DeployXFA", "SigmoidGate", "Conv2d", "ChannelLayerNorm"} <= {row.kind for row in report.rows}
    attention = [row for row in report.rows if row.layer.endswith("transformer.0.attn")]
    assert len(attention) == 3 and all(row.kind == "DeployXFA" for row in attention)
    assert report.worst.added > 0 and 0 < report.rows[-1].rel_error < 1
    fp32 = per_layer_file(exported["fp32"].path, checkpoint, images=calib_dir)
    assert [row.layer for row in fp32.rows] == [row.layer for row in report.rows]
    assert max(row.rel_error for row in fp32.rows) < 1e-4
    assert main(["validate", str(exported["int8"].path), "--ckpt", str(checkpoint), "--per-layer",
                 "--images", str(calib_dir)]) in (0, 1)
    out = capsys.readouterr().out
    assert "most divergent:" in out and "error added by module kind" in out and "DeployXFA" in out


def test_bad_inputs_fail_clearly(digits, exported, tmp_path):
    _, model = digits
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    # Options that cannot apply fail the request before any conversion, leaving no file behind.
    with pytest.raises(ExportError, match="holds no images"):
        export(model, formats="tflite", precisions=["fp32", "int8"], out_dir=tmp_path / "out", calib=str(empty))
    with pytest.raises(ExportError, match="--int8-io applies to TFLite int8 files only"):
        export(model, formats="tflite", precisions=["fp32"], out_dir=tmp_path / "out", int8_io=True)
    with pytest.raises(ExportError, match="add --coreml-input tensor or drop --nhwc"):
        export(model, formats=["tflite", "coreml"], out_dir=tmp_path / "out", channels_last_io=True)
    assert not (tmp_path / "out").exists()
    (record,) = export(model, formats="tflite", out_dir=tmp_path / "out", tflite_converter="tvm")
    assert not record.ok and "unknown TFLite converter 'tvm'" in record.error

    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(exported["fp32"].path.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="cannot be loaded by the LiteRT interpreter"):
        load(corrupt)
    runtime = load(exported["fp32"].path)
    with pytest.raises(ModelFileError, match=r"input shape \(1, 3, 32, 32\) does not fit"):
        runtime.run(np.zeros((1, 3, 32, 32), np.float32))
