"""Detection data, targets, loss and COCO scores: the shapes generator, the COCO-format reader and what it does
with bad input, the training transform, target assignment, pycocotools AP, and a trained detector's AP50."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from xformer.cli import main
from xformer.det_datasets import CocoDetection, DetEvalTransform, DetTrainTransform, collate_eval, collate_train
from xformer.errors import DataError, ModelFileError
from xformer.models.detection import COCO_ANCHORS
from xformer.models.registry import ModelConfig
from xformer.preprocess import PreprocessSpec
from xformer.shapes import SHAPE_CLASSES, render_shapes, write_shapes
from xformer.train.detection import DetectionMetrics, YOLOv3Loss
from xformer.train.tasks import get_task

from .conftest import SHAPES_AP50_FLOOR

SPEC = PreprocessSpec(input_size=(128, 128), resize_size=None, interpolation="bilinear", resize_mode="letterbox")


@pytest.fixture
def tiny_coco(tmp_path):
    """A hand-written COCO-format split: two 100x50 images, sparse category ids 3 and 7."""
    images = tmp_path / "val" / "images"
    images.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (100, 50), (30, 30, 30)).save(images / name)
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 50},
                       {"id": 2, "file_name": "b.png", "width": 100, "height": 50}],
            "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20]},
                            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [90, 40, 30, 30]},  # partly outside
                            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [200, 10, 5, 5]},  # wholly outside
                            {"id": 4, "image_id": 2, "category_id": 7, "bbox": [5, 5, 0, 9]}]}  # no area
    (tmp_path / "val" / "annotations.json").write_text(json.dumps(coco))
    return tmp_path, coco


def _write(root, coco):
    (root / "val" / "annotations.json").write_text(json.dumps(coco))


def test_shapes_are_deterministic_with_exact_boxes():
    image, objects = render_shapes(7, 128)
    again, same = render_shapes(7, 128)
    assert objects == same and np.array_equal(np.asarray(image), np.asarray(again))
    assert 1 <= len(objects) <= 4
    for obj in objects:
        x, y, w, h = obj["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image.width and y + h <= image.height
        assert 0 < obj["area"] <= w * h and 0 <= obj["category"] < len(SHAPE_CLASSES)


def test_write_shapes_gives_coco_splits_the_reader_accepts(tmp_path):
    root = write_shapes(tmp_path / "shapes", train=6, val=3, size=96)
    train = CocoDetection(root, "train")
    assert train.classes == list(SHAPE_CLASSES) and len(train) == 6 and not train.skipped and train.note is None
    coco = json.loads((root / "val" / "annotations.json").read_text())
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5] and len(coco["images"]) == 3
    with pytest.raises(DataError, match="not empty"):
        write_shapes(root)


def test_dataset_shapes_command(tmp_path, capsys):
    assert main(["dataset", "shapes", str(tmp_path / "s"), "--train", "4", "--val", "2", "--size", "64"]) == 0
    assert len(list((tmp_path / "s" / "train" / "images").glob("*.png"))) == 4
    assert (tmp_path / "s" / "val" / "annotations.json").is_file()
    assert "--imgsz 64" in capsys.readouterr().out


def test_reader_clips_drops_and_maps_sparse_category_ids(tiny_coco):
    root, _ = tiny_coco
    data = CocoDetection(root, "val", transform=DetEvalTransform(SPEC))
    assert data.classes == ["cat", "dog"] and data.category_ids == [3, 7]  # ordered by id
    assert (data.clipped, data.dropped) == (1, 2)
    assert "clipped 1 box" in data.note and "dropped 2" in data.note
    image, target = data[0]
    assert image.shape == (3, 128, 128)
    np.testing.assert_allclose(target["boxes"], [[10, 10, 30, 30], [90, 40, 100, 50]])
    assert target["labels"].tolist() == [0, 1]
    assert len(data[1][1]["boxes"]) == 0  # an image whose boxes were all dropped still counts (false positives)


@pytest.mark.parametrize("breakage, message", [
    (lambda root, coco: (root / "val" / "annotations.json").write_text('{"images": [1, 2'), "does not parse as JSON"),
    (lambda root, coco: _write(root, {"images": []}), "not in COCO format.*annotations, categories"),
    (lambda root, coco: _write(root, {**coco, "annotations": coco["annotations"] + [
        {"id": 9, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]}]}), "category id.*99.*add those"),
    (lambda root, coco: _write(root, {**coco, "images": [{"id": 1, "file_name": "a.png"}]}), "lacks one of"),
    (lambda root, coco: shutil.rmtree(root / "val" / "images") or (root / "val" / "images").mkdir(),
     "no usable image.*2 listed"),
])
def test_bad_annotations_are_one_clear_error(tiny_coco, breakage, message):
    root, coco = tiny_coco
    breakage(root, coco)
    with pytest.raises(DataError, match=message):
        CocoDetection(root, "val")


def test_missing_images_are_skipped_and_counted_or_refused_with_strict(tiny_coco):
    root, _ = tiny_coco
    (root / "val" / "images" / "b.png").unlink()
    data = CocoDetection(root, "val")
    assert len(data) == 1 and data.skipped[0][0].name == "b.png" and data.skipped[0][1] == "missing"
    with pytest.raises(DataError, match="cannot use .*b.png.*drop --strict"):
        CocoDetection(root, "val", strict=True)


def test_val_refuses_data_with_other_classes(tiny_coco):
    root, _ = tiny_coco
    with pytest.raises(DataError, match="names the classes cat, dog.*trained on circle"):
        CocoDetection(root, "val", classes=list(SHAPE_CLASSES))


def test_cli_bad_annotations_exit_2_in_one_line(tiny_coco, capsys):
    root, _ = tiny_coco
    (root / "val" / "annotations.json").write_text("not json")
    assert main(["val", "xformer_xxs_yolov3", "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "does not parse as JSON" in err and "Traceback" not in err


def test_train_transform_moves_boxes_with_the_pixels():
    torch.manual_seed(0)
    image = Image.new("RGB", (200, 100))
    image.paste((255, 255, 255), (40, 20, 80, 60))
    target = {"boxes": np.array([[40, 20, 80, 60]], np.float32), "labels": np.array([3]),
              "iscrowd": np.array([0])}
    transform = DetTrainTransform(SPEC, scale=(0.6, 1.4), translate=0.2, hflip=0.5)
    for _ in range(8):
        pixels, rows = transform(image, target)
        bright = (pixels.mean(0) > 0.9).nonzero()
        if len(rows) == 0:  # pushed out of the input: no bright pixels either
            assert len(bright) < 0.2 * 40 * 40 * 0.36
            continue
        label, x1, y1, x2, y2 = rows[0].tolist()
        assert label == 3
        assert abs(bright[:, 1].min() - x1) <= 1.5 and abs(bright[:, 1].max() + 1 - x2) <= 1.5
        assert abs(bright[:, 0].min() - y1) <= 1.5 and abs(bright[:, 0].max() + 1 - y2) <= 1.5


def test_collates_batch_boxes_with_their_image_index():
    images, rows = collate_train([(torch.zeros(3, 8, 8), torch.tensor([[1.0, 0, 0, 4, 4]])),
                                  (torch.zeros(3, 8, 8), torch.zeros(0, 5)),
                                  (torch.zeros(3, 8, 8), torch.tensor([[2.0, 1, 1, 5, 5], [0.0, 2, 2, 6, 6]]))])
    assert images.shape == (3, 3, 8, 8) and rows[:, 0].tolist() == [0, 2, 2] and rows.shape == (3, 6)
    assert collate_eval([(torch.zeros(3, 8, 8), {"a": 1})])[1] == [{"a": 1}]


def _maps(num_classes=2, size=320, fill=0.0):
    return [torch.full((1, 3 * (5 + num_classes), size // s, size // s), fill) for s in (32, 16, 8)]


def test_target_goes_to_the_best_shaped_anchor_at_the_centre_cell():
    # A 62x45 box centred at (56, 40): anchor 1 of the stride-16 level, cell row 2, column 3, exactly centred.
    loss = YOLOv3Loss(COCO_ANCHORS, match_iou=2.0)  # mmdet's rule: the best-shaped anchor only
    targets = torch.tensor([[0, 1, 56 - 31, 40 - 22.5, 56 + 31, 40 + 22.5]])
    outputs = _maps(fill=-30.0)  # every objectness and class says "nothing here"
    right = outputs[1][0, 7:14, 2, 3]
    right[0:4] = 0.0  # x, y at the cell centre (sigmoid 0.5) and w, h exactly the anchor's
    right[4] = 30.0  # object here
    right[5 + 1] = 30.0  # of class 1
    parts = loss.parts(outputs, targets)
    assert parts["conf"] < 1e-6 and parts["cls"] < 1e-6 and parts["wh"] == 0
    assert parts["xy"] == pytest.approx(2 * 2 * math.log(2), rel=1e-4)  # BCE(0.5 vs 0.5) is its minimum, ln 2
    wrong = _maps(fill=-30.0)
    wrong[1][0, 7 + 4, 2, 4] = 30.0  # the object claimed one cell to the right instead: the right one is missed
    assert loss.parts(wrong, targets)["conf"] > 25


def test_anchors_of_a_similar_shape_are_positives_too():
    # The 62x45 box's shape IoU with the 9 anchors: 1.0 (62x45), 0.41 (30x61), 0.37 (59x119), 0.27 (33x23),
    # 0.27 (116x90); the others are under 0.25. Each of those 5 at the box's centre cell is a positive.
    targets = torch.tensor([[0, 1, 56 - 31, 40 - 22.5, 56 + 31, 40 + 22.5]])
    nothing = _maps(fill=-30.0)
    assert float(YOLOv3Loss(COCO_ANCHORS).parts(nothing, targets)["conf"]) == pytest.approx(5 * 30, rel=1e-3)
    assert float(YOLOv3Loss(COCO_ANCHORS, match_iou=2.0).parts(nothing, targets)["conf"]) == pytest.approx(
        30, rel=1e-3)


def test_anchors_overlapping_a_box_are_not_negatives():
    loss = YOLOv3Loss(COCO_ANCHORS)
    targets = torch.tensor([[0, 0, 56 - 31, 40 - 22.5, 56 + 31, 40 + 22.5]])
    near = _maps(fill=-30.0)
    near[1][0, 7 + 4, 2, 3] = 30.0
    base = float(loss.parts(near, targets)["conf"])
    near[1][0, 7 + 4, 2, 4] = 30.0  # the same anchor one cell right overlaps the box by IoU 0.59: ignored
    assert float(loss.parts(near, targets)["conf"]) == pytest.approx(base, abs=1e-4)
    near[1][0, 4, 12, 12] = 30.0  # far away: a false positive that costs
    assert float(loss.parts(near, targets)["conf"]) > base + 25


def _eval_targets(root):
    data = CocoDetection(root, "val", transform=DetEvalTransform(SPEC))
    return data, collate_eval([data[i] for i in range(len(data))])


def test_perfect_detections_score_ap_1_and_misses_lower_it(tiny_coco):
    root, _ = tiny_coco
    data, (images, targets) = _eval_targets(root)
    truth = []
    for target in targets:  # the ground truth itself, in input pixels, as a file with NMS inside would give it
        box = target["letterbox"]
        boxes = target["boxes"] * np.array([box.scale_x, box.scale_y] * 2) + np.array([box.pad_x, box.pad_y] * 2)
        truth.append(np.concatenate([boxes, np.full((len(boxes), 1), 0.9), target["labels"][:, None]], 1))
    metrics = DetectionMetrics(2)
    metrics.update(truth, targets)
    summary = metrics.summary(data.classes)
    assert summary["ap"] == pytest.approx(1.0) and summary["ap50"] == pytest.approx(1.0)
    assert summary["per_class"]["cat"]["ap"] == pytest.approx(1.0) and summary["boxes"] == 2
    assert summary["loss"] is None  # no raw maps, no loss
    missing = DetectionMetrics(2)
    missing.update([truth[0][:1], truth[1]], targets)  # the dog is missed
    assert missing.summary(data.classes)["ap"] == pytest.approx(0.5)


def test_metrics_take_raw_maps_and_decoded_boxes_alike(tiny_coco):
    root, _ = tiny_coco
    data, (images, targets) = _eval_targets(root)
    outputs = [torch.randn(2, 21, 128 // s, 128 // s) for s in (32, 16, 8)]
    raw = DetectionMetrics(2)
    raw.update([o.numpy() for o in outputs], targets, reference=outputs)
    from xformer.models.detection import decode

    decoded = DetectionMetrics(2)
    decoded.update(list(decode(outputs, torch.tensor(COCO_ANCHORS))), targets)
    a, b = raw.summary(data.classes), decoded.summary(data.classes)
    assert a["detections"] == b["detections"] > 0 and a["ap"] == b["ap"]
    assert a["agreement"] == 1.0 and a["loss"] > 0
    with pytest.raises(ModelFileError, match="outputs must be 3 raw maps"):
        raw.update([np.zeros((2, 10))], targets)


def test_detection_recipe_defaults_and_user_options():
    task = get_task("detect")
    assert task.defaults["optimizer"] == "sgd" and task.defaults["lr"] == 3e-3 and task.defaults["clip_grad"] == 35
    config = ModelConfig("xformer_xxs_yolov3", num_classes=5, task="detect")
    assert isinstance(task.criterion(None, config), YOLOv3Loss)


def test_trained_detector_finds_shapes(shapes_run, shapes_model):
    history = shapes_run.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(row["ap50"] for row in history) >= SHAPES_AP50_FLOOR
    assert shapes_model.model_config.labels == list(SHAPE_CLASSES)
    assert shapes_model.model_config.task == "detect"


def test_val_of_the_trained_checkpoint(shapes_run, shapes_root, capsys, tmp_path):
    out = tmp_path / "val.json"
    assert main(["val", str(shapes_run.best), "--data", str(shapes_root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "circle" in printed
    result = json.loads(out.read_text())
    assert result["task"] == "detect" and result["ap50"] >= SHAPES_AP50_FLOOR
    assert set(result["per_class"]) == set(SHAPE_CLASSES)
