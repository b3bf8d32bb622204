"""The detectors: size against the paper, forward at 320 and 640, the raw-output contract, decoding, NMS and
the letterbox that maps boxes back to the image."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from xformer import count_params, create_model
from xformer.complexity import count_macs
from xformer.models import list_models
from xformer.models.detection import COCO_ANCHORS, NMSConfig, batched_nms, box_iou, decode, nms, postprocess
from xformer.models.registry import coco_labels
from xformer.preprocess import PreprocessSpec, boxes_to_image, letterbox_geometry, preprocess

DETECTORS = list_models(task="detect")


def test_every_detector_is_registered_with_coco_labels():
    assert DETECTORS == ["mobilenetv2_yolov3", "xformer_s_yolov3", "xformer_xs_yolov3", "xformer_xxs_yolov3"]
    config = create_model("xformer_xxs_yolov3").model_config
    assert config.task == "detect" and config.num_classes == 80 and config.labels == list(coco_labels())
    assert config.labels[0] == "person" and config.labels[-1] == "toothbrush"
    assert config.preprocess.resize_mode == "letterbox" and config.preprocess.input_size == (320, 320)


def test_paper_detector_size_and_compute():
    # The paper: 6.3 M params, 3.8 GFLOPs; the design notes' reconstruction: 6.34 M, 3.95 GMACs at 320.
    model = create_model("xformer_s_yolov3")
    assert 6.1e6 <= count_params(model) <= 6.5e6
    assert 3.7e9 <= count_macs(model, 320) <= 4.1e9
    baseline = create_model("mobilenetv2_yolov3")  # notes: 3.33 M / 1.60 G
    assert 3.2e6 <= count_params(baseline) <= 3.45e6


@pytest.mark.parametrize("name", DETECTORS)
def test_forward_at_320_and_640_gives_three_levels(name):
    model = create_model(name)
    for size in (320, 640):
        with torch.no_grad():
            outputs = model(torch.rand(1, 3, size, size))
        assert [tuple(o.shape) for o in outputs] == [(1, 3 * 85, size // s, size // s) for s in (32, 16, 8)]
        assert all(torch.isfinite(o).all() for o in outputs)


def test_decode_shapes_and_score_range():
    model = create_model("xformer_xxs_yolov3", num_classes=3)
    with torch.no_grad():
        boxes, scores = model.decode(model(torch.rand(2, 3, 128, 192)))
    cells = sum((128 // s) * (192 // s) for s in (32, 16, 8))
    assert boxes.shape == (2, 3 * cells, 4) and scores.shape == (2, 3 * cells, 3)
    assert (scores >= 0).all() and (scores <= 1).all()
    assert (boxes[..., 2:] > boxes[..., :2]).all()


def test_decode_of_one_known_cell_by_hand():
    # Input 320: levels 10x10, 20x20, 40x40. Anchor 1 of the stride-16 level is (62, 45); cell row 2, column 3.
    num_classes = 4
    outputs = [torch.zeros(1, 3 * (5 + num_classes), n, n) for n in (10, 20, 40)]
    attrib = 5 + num_classes
    cell = outputs[1][0, attrib * 1: attrib * 2, 2, 3]
    cell[0] = math.log(0.25 / 0.75)  # sigmoid -> 0.25 of the cell: x centre (3 + 0.25) * 16 = 52
    cell[1] = 0.0  # sigmoid 0.5: y centre (2 + 0.5) * 16 = 40
    cell[2] = math.log(2.0)  # w = 62 * 2 = 124
    cell[3] = 0.0  # h = 45
    cell[4] = 0.0  # objectness 0.5
    cell[5 + 2] = 20.0  # class 2 with probability ~1
    boxes, scores = decode(outputs, torch.tensor(COCO_ANCHORS, dtype=torch.float32))
    index = 3 * 100 + 1 * 400 + 2 * 20 + 3  # level 0's 300 entries, then anchor 1 of level 1, row 2, column 3
    torch.testing.assert_close(boxes[0, index], torch.tensor([52 - 62.0, 40 - 22.5, 52 + 62.0, 40 + 22.5]))
    torch.testing.assert_close(scores[0, index], torch.tensor([0.5 * 0.5, 0.5 * 0.5, 0.5, 0.5 * 0.5]),
                               atol=1e-6, rtol=0)
    # the default zero logits elsewhere: anchor-sized boxes at cell centres, score 0.25 for every class
    torch.testing.assert_close(boxes[0, 0], torch.tensor([16 - 58.0, 16 - 45.0, 16 + 58.0, 16 + 45.0]))


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, 0.99).tolist() == [0, 1, 2]  # IoU of boxes 0 and 1 is 81/119 = 0.68
    # the same box in another class survives
    assert sorted(batched_nms(boxes, scores, torch.tensor([0, 0, 0, 1]), 0.5).tolist()) == [0, 2, 3]
    torch.testing.assert_close(box_iou(boxes[:1], boxes[1:2]), torch.tensor([[81 / 119]]))


def test_postprocess_thresholds_and_limits():
    boxes = torch.tensor([[[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.0]]])
    scores = torch.tensor([[[0.9, 0.01], [0.8, 0.0], [0.03, 0.6]]])
    (result,) = postprocess(boxes, scores, NMSConfig(score_threshold=0.05, iou_threshold=0.45))
    assert result.labels.tolist() == [0, 1] and result.scores.tolist() == pytest.approx([0.9, 0.6])
    (limited,) = postprocess(boxes, scores, NMSConfig(score_threshold=0.0, iou_threshold=0.99, max_detections=2))
    assert len(limited) == 2


def test_letterbox_pads_centres_and_maps_boxes_back():
    spec = PreprocessSpec(input_size=(320, 320), resize_size=None, interpolation="nearest", resize_mode="letterbox",
                          pad_value=114)
    image = Image.new("RGB", (200, 100), (255, 0, 0))  # wide: scaled 1.6x to 320x160, 80 rows of pad above/below
    geometry = letterbox_geometry(image.size, spec.input_size)
    assert (geometry.pad_x, geometry.pad_y, geometry.resized) == (0, 80, (320, 160))
    x = preprocess(image, spec)[0]
    assert x.shape == (3, 320, 320)
    np.testing.assert_allclose(x[:, :80], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(x[:, 240:], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(x[:, 80:240, :, ], np.array([1.0, 0, 0])[:, None, None] * np.ones((3, 160, 320)))
    # a box in input pixels -> image pixels, clipped to the image
    back = boxes_to_image(np.array([[16, 96, 160, 240], [-10, 0, 400, 400]]), image.size, spec)
    np.testing.assert_allclose(back, [[10, 10, 100, 100], [0, 0, 200, 100]])


def test_size_the_detector_cannot_take_is_one_clear_error():
    with pytest.raises(ValueError, match="not a multiple of 32"):
        create_model("xformer_xxs_yolov3")(torch.rand(1, 3, 100, 130))
