"""Detector export, runtimes and predict: the trained shapes detector (session fixture `shapes_run`) exported to
ONNX (NMS in the graph) and TFLite (decoded boxes), parity by matched boxes, val AP50 of the files, predict
--save drawing boxes, and the output-form options' errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from xformer.errors import OptionError
from xformer.export import export


def _image(shapes_root):
    return sorted((shapes_root / "val" / "images").iterdir())[0]


def _passed_with_boxes(record) -> dict:
    parity = record.parity
    assert record.ok, record.error
    assert parity["passed"], parity["failures"]
    assert parity["matched"] > 0 and parity["missing"] == 0 and parity["extra"] == 0
    assert parity["min_iou"] >= 0.99 and parity["max_rel_score_err"] <= 1e-3
    return parity


def test_onnx_detector_nms_in_graph_parity(shapes_exports):
    record = shapes_exports["onnx"]
    _passed_with_boxes(record)
    assert record.details["nms"] and record.op_histogram.get("NonMaxSuppression") == 1


def test_tflite_detector_parity(shapes_exports):
    _passed_with_boxes(shapes_exports["tflite"])


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_val_of_exported_detector_matches_pytorch(fmt, shapes_exports, shapes_run, shapes_root):
    from xformer.train import validate

    reference = validate(shapes_run.best, shapes_root)
    result = validate(shapes_exports[fmt].path, shapes_root)
    assert reference.metrics["ap50"] > 0.02  # something found to compare
    assert abs(result.metrics["ap50"] - reference.metrics["ap50"]) <= 0.01


def test_predict_maps_boxes_to_the_image_like_pytorch(shapes_exports, shapes_run, shapes_root):
    from xformer.runtimes import load

    photo = Image.open(_image(shapes_root)).convert("RGB")
    wide = photo.resize((photo.width * 2, photo.height))  # a letterbox with padding to undo
    # A low threshold: boxes to compare however far the short training got (the ONNX file's NMS is in its graph,
    # at 0.05, so it is compared by the parity test above).
    expected = load(shapes_run.best).predict(wide, score_threshold=1e-3)
    found = load(shapes_exports["tflite"].path).predict(wide, score_threshold=1e-3)
    assert len(expected) > 0 and len(found) == len(expected)

    def rows(result):  # by class, then position: boxes scored alike may come in either order
        table = np.concatenate([result.classes[:, None], result.boxes], axis=1)
        return table[np.lexsort((table[:, 2], table[:, 1], table[:, 0]))]

    np.testing.assert_allclose(rows(found), rows(expected), atol=0.05)
    assert found.boxes[:, [0, 2]].max() <= wide.width and found.boxes[:, [1, 3]].max() <= wide.height
    assert found.boxes[:, 2].max() > photo.width  # boxes reach the right half: mapped back to the wide image


def test_predict_save_draws_boxes(shapes_exports, shapes_root, tmp_path):
    image = _image(shapes_root)
    out = tmp_path / "out.jpg"
    run = subprocess.run([sys.executable, "-m", "xformer", "predict", str(shapes_exports["tflite"].path), str(image),
                          "--save", str(out), "--conf", "0.001"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "boxes" in run.stdout and out.is_file()
    drawn, original = Image.open(out), Image.open(image).convert("RGB")
    assert drawn.format == "JPEG" and drawn.size == original.size
    changed = np.abs(np.asarray(drawn, np.int16) - np.asarray(original, np.int16)).max(-1) > 60
    assert changed.mean() > 0.01  # box outlines and caption plates, not JPEG noise


def test_predict_says_when_nothing_is_found(shapes_exports, shapes_root, tmp_path):
    out = tmp_path / "out.png"
    run = subprocess.run([sys.executable, "-m", "xformer", "predict", str(shapes_exports["onnx"].path),
                          str(_image(shapes_root)), "--save", str(out), "--conf", "0.999"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert f"{_image(shapes_root).name}: no detection above --conf 0.999" in run.stdout
    assert "(0 boxes drawn)" in run.stdout and out.is_file()


def test_det_outputs_errors():
    with pytest.raises(OptionError, match="tflite files of detectors hold decoded or raw outputs, not nms"):
        export("xformer_xxs_yolov3", formats="tflite", det_outputs="nms", validate=False)
    with pytest.raises(OptionError, match="pte export of detectors is not available yet"):
        export("xformer_xxs_yolov3", formats="pte", validate=False)
    with pytest.raises(OptionError, match="--det-outputs chooses a detector's outputs"):
        export("xformer_xxs", formats="onnx", det_outputs="raw", validate=False)


def test_det_outputs_cli_error_is_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "xformer", "export", "xformer_xxs_yolov3", "--formats", "tflite",
                          "--det-outputs", "nms", "--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "--det-outputs decoded" in run.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("form", ["raw", "decoded"])
def test_onnx_other_output_forms(form, shapes_run, tmp_path):
    (record,) = export(shapes_run.best, formats="onnx", det_outputs=form, out_dir=tmp_path)
    _passed_with_boxes(record)


@pytest.mark.slow
def test_tflite_int8_detector(shapes_run, shapes_root, tmp_path):
    (record,) = export(shapes_run.best, formats="tflite", precisions=["int8"], out_dir=tmp_path,
                       calib=str(shapes_root / "train" / "images"))
    assert record.ok, record.error
    assert record.parity["passed"], record.parity["failures"]
    assert record.parity["matched"] > 0


def test_coreml_detector_nms_pipeline(shapes_run, tmp_path):
    """Conversion and the saved package's structure here; its MIL program is evaluated box for box against
    PyTorch (prediction through CoreML itself needs macOS: see test_coreml_detector_predicts_on_macos)."""
    import coremltools as ct

    from xformer import load_checkpoint

    (record,) = export(shapes_run.best, formats="coreml", precisions=["fp32"], out_dir=tmp_path)
    assert record.ok, record.error
    spec = ct.utils.load_spec(str(record.path))
    assert [m.WhichOneof("Type") for m in spec.pipeline.models] == ["mlProgram", "nonMaximumSuppression"]
    assert [o.name for o in spec.description.output] == ["confidence", "coordinates"]
    nms = spec.pipeline.models[1].nonMaximumSuppression
    assert nms.pickTop.perClass and abs(nms.iouThreshold - 0.45) < 1e-9
    assert list(nms.stringClassLabels.vector) == list(load_checkpoint(shapes_run.best).model_config.labels)
    mil = record.details["mil_parity"]
    assert mil["passed"], mil["failures"]
    assert mil["matched"] > 0 and mil["missing"] == 0 and mil["extra"] == 0 and mil["min_iou"] >= 0.99


@pytest.mark.skipif(sys.platform != "darwin", reason="CoreML prediction needs macOS (MLModel.predict)")
def test_coreml_detector_predicts_on_macos(shapes_run, shapes_root, tmp_path):
    from xformer.runtimes import load

    (record,) = export(shapes_run.best, formats="coreml", precisions=["fp32"], out_dir=tmp_path)
    image = _image(shapes_root)
    found, expected = load(record.path).predict(image), load(shapes_run.best).predict(image)
    assert found.labels == expected.labels
    np.testing.assert_allclose(found.boxes, expected.boxes, atol=0.5)


def test_quantised_detector_parity_judges_the_boxes_a_user_sees():
    """Two confident boxes among near-zero scores: noise far below the int8 gate's score (as int8 rounding
    reshuffles the weakest candidates) passes int8 and fails fp32; boxes moved 40 px fail int8."""
    import torch

    from xformer.export.parity import detection_report, match_detections
    from xformer.models.detection import COCO_ANCHORS, STRIDES, decode

    maps = [torch.full((1, 3 * 10, 320 // s, 320 // s), -8.0) for s in STRIDES]  # 5 classes
    for level, row, col in ((1, 3, 4), (2, 20, 30)):
        maps[level][0, 4, row, col] = maps[level][0, 5 + 1, row, col] = 4.0  # anchor 0: a class-1 object
    metadata = {"detection": {"anchors": [list(map(list, a)) for a in COCO_ANCHORS], "strides": list(STRIDES),
                              "outputs": "decoded"}}
    boxes, scores = decode(maps, torch.tensor(COCO_ANCHORS, dtype=torch.float32))
    noisy = (scores + 1e-4 * torch.rand(scores.shape, generator=torch.Generator().manual_seed(0))).numpy()

    def report(found_boxes, precision):
        return detection_report([match_detections(maps, [found_boxes.numpy(), noisy], metadata, precision)], 1,
                                precision, True)

    good = report(boxes, "int8")
    assert good.passed and good.matched == 2 and good.extra == 0, good.failures
    assert not report(boxes, "fp32").passed  # the top-20 comparison of fp32 files: noise decides it
    broken = report(boxes + 40, "int8")
    assert not broken.passed and broken.matched == 0
