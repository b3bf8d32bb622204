"""The detection task: COCO-format data, YOLOv3 targets and loss (mmdetection's recipe), COCO mAP with pycocotools.

Validator interface (what a runtime of an exported detector feeds `DetectionMetrics.update(outputs, targets)`):
- raw head maps: a list of 3 arrays (B, A*(5+C), H, W) in `Detector.strides` order (32, 16, 8), the
  model's own output; decoded here with the model's anchors, and the val loss is computed from them;
- decoded boxes and scores: a list [boxes (B, N, 4) x1y1x2y2 in input pixels, scores (B, N, C)] as
  `xformer.models.detection.decode` returns them (a file with the decoding in its graph); NMS runs here;
- final detections: a list of B arrays (K, 6) [x1, y1, x2, y2, score, class] in input pixels (a file with NMS
  in its graph); used as they are.
`targets` are the evaluation targets of `CocoDetection` + `DetEvalTransform` (each carries its image's letterbox,
which maps the boxes back to the image's pixels before scoring). `reference` (the PyTorch model's raw maps) gives
`agreement`: the share of the reference's detections that the file also finds (same class, IoU >= 0.5).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import require
from ..models.detection import COCO_ANCHORS, STRIDES, Detections, NMSConfig, box_iou
from ..models.registry import ModelConfig
from ..preprocess import PreprocessSpec
from ..runtimes.detection import detections_from_outputs, output_form

__all__ = ["DetectionMetrics", "DetectionTask", "YOLOv3Loss"]


class YOLOv3Loss(nn.Module):
    """mmdet's YOLOv3 loss, summed over the batch (mmdet's reduction, which its lr 3e-3 and grad-clip 35 assume).

    Targets: each box goes to the anchor (of all 9) whose shape fits it best (IoU of the sizes, both centred), at
    the cell of its centre on that anchor's level, and also to every other anchor whose shape IoU reaches
    `match_iou` (YOLOv4's multi-anchor assignment; mmdet's single best anchor is `match_iou` > 1). Several
    positives per box train the class logits much faster: with one, a short run's classes stay near chance.
    Positives learn x/y (BCE against the offset in the cell, weight 2), w/h (squared error against
    log(size / anchor), weight 2), objectness and classes (BCE, one sigmoid per class). Every other anchor box
    is a negative for objectness unless it overlaps a ground-truth box by IoU >= 0.5 (then it is ignored, as
    mmdet's GridAssigner does)."""

    def __init__(self, anchors=COCO_ANCHORS, strides: tuple[int, ...] = STRIDES, ignore_iou: float = 0.5,
                 match_iou: float = 0.25, xy_weight: float = 2.0, wh_weight: float = 2.0):
        super().__init__()
        self.register_buffer("anchors", torch.as_tensor(anchors, dtype=torch.float32), persistent=False)
        self.strides, self.ignore_iou, self.match_iou = strides, ignore_iou, match_iou
        self.xy_weight, self.wh_weight = xy_weight, wh_weight

    def forward(self, outputs: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        return sum(self.parts(outputs, targets).values())

    def parts(self, outputs: list[torch.Tensor], targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four terms; `targets` is (M, 6) [image index, class, x1, y1, x2, y2] in input pixels."""
        batch, num_anchors = outputs[0].shape[0], self.anchors.shape[1]
        anchors = self.anchors.to(outputs[0].device)
        targets = targets.to(outputs[0].device).float()
        image, label, xyxy = targets[:, 0].long(), targets[:, 1].long(), targets[:, 2:6]
        size = (xyxy[:, 2:] - xyxy[:, :2]).clamp_min(1e-3)
        centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        flat = anchors.reshape(-1, 2)
        inter = torch.minimum(size[:, None], flat[None]).prod(-1)
        shape_iou = inter / (size.prod(-1)[:, None] + flat.prod(-1)[None] - inter)  # (M, A*L)
        matched = shape_iou >= self.match_iou
        matched[torch.arange(len(shape_iou)), shape_iou.argmax(1)] = True
        which, best = matched.nonzero(as_tuple=True)
        label, size, centre, owner = label[which], size[which], centre[which], image[which]
        zero = outputs[0].sum() * 0
        terms = {"xy": zero, "wh": zero, "conf": zero, "cls": zero}
        for level, (p, stride) in enumerate(zip(outputs, self.strides)):
            _, channels, height, width = p.shape
            num_classes = channels // num_anchors - 5
            p = p.float().reshape(batch, num_anchors, 5 + num_classes, height, width).permute(0, 1, 3, 4, 2)
            mine = best // num_anchors == level
            a, b, c = best[mine] % num_anchors, owner[mine], label[mine]
            cxy = centre[mine] / stride
            gx, gy = cxy[:, 0].long().clamp(0, width - 1), cxy[:, 1].long().clamp(0, height - 1)
            wanted = torch.cat([cxy - torch.stack([gx, gy], 1), torch.log(size[mine] / anchors[level][a]),
                                F.one_hot(c, num_classes).float()], dim=1)
            target = p.new_zeros(batch, num_anchors, height, width, 4 + num_classes)
            target[b, a, gy, gx] = wanted  # two boxes on one anchor of one cell: one of them wins, as in mmdet
            positive = torch.zeros(batch, num_anchors, height, width, dtype=torch.bool, device=p.device)
            positive[b, a, gy, gx] = True
            pred, want = p[positive], target[positive]
            terms["xy"] = terms["xy"] + self.xy_weight * F.binary_cross_entropy_with_logits(
                pred[:, :2], want[:, :2].clamp(1e-4, 1 - 1e-4), reduction="sum")
            terms["wh"] = terms["wh"] + self.wh_weight * F.mse_loss(pred[:, 2:4], want[:, 2:4], reduction="sum")
            terms["cls"] = terms["cls"] + F.binary_cross_entropy_with_logits(pred[:, 5:], want[:, 4:],
                                                                             reduction="sum")
            ignored = self._overlapping(anchors[level], stride, height, width, image, xyxy, batch)
            counted = positive | ~ignored
            conf = F.binary_cross_entropy_with_logits(p[..., 4], positive.float(), reduction="none")
            terms["conf"] = terms["conf"] + conf[counted].sum()
        return terms

    def _overlapping(self, anchors: torch.Tensor, stride: int, height: int, width: int, image: torch.Tensor,
                     xyxy: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, A, H, W): anchor boxes (at cell centres) overlapping a box of their image by IoU >= ignore_iou."""
        ys, xs = torch.meshgrid(torch.arange(height, device=xyxy.device), torch.arange(width, device=xyxy.device),
                                indexing="ij")
        centres = (torch.stack([xs, ys], -1).reshape(1, -1, 2).float() + 0.5) * stride  # (1, HW, 2)
        half = anchors[:, None, :] / 2  # (A, 1, 2)
        boxes = torch.cat([centres - half, centres + half], -1).reshape(-1, 4)  # (A*HW, 4)
        best = torch.zeros(len(boxes), batch, device=xyxy.device)
        if len(xyxy):
            iou = box_iou(boxes, xyxy)
            best.scatter_reduce_(1, image[None].expand(len(boxes), -1), iou, reduce="amax")
        return (best.T >= self.ignore_iou).reshape(batch, len(anchors), height, width)


def _targets_in_input(targets: list[dict]) -> torch.Tensor:
    """Evaluation targets (image pixels) -> the loss's (M, 6) rows in input pixels, crowd boxes left out."""
    rows = []
    for i, target in enumerate(targets):
        box = target["letterbox"]
        keep = np.asarray(target["iscrowd"]) == 0
        boxes = np.asarray(target["boxes"])[keep] * np.array([box.scale_x, box.scale_y] * 2) + \
            np.array([box.pad_x, box.pad_y] * 2)
        labels = np.asarray(target["labels"])[keep]
        rows.append(np.concatenate([np.full((len(boxes), 1), i), labels[:, None], boxes], axis=1))
    return torch.from_numpy(np.concatenate(rows).astype(np.float32)) if rows else torch.zeros(0, 6)


def _as_detections(outputs, anchors, config: NMSConfig) -> tuple[list[Detections], list[torch.Tensor] | None]:
    """Whatever a runtime returned (see the module docstring) -> per-image detections, and the raw maps if given."""
    arrays = [o.detach().cpu().float() if isinstance(o, torch.Tensor) else torch.from_numpy(np.asarray(o, np.float32))
              for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    found = detections_from_outputs(arrays, {"detection": {"anchors": anchors.tolist()}}, config)
    return found, (arrays if output_form(arrays) == "raw" else None)


def _agreeing(found: Detections, expected: Detections, iou: float = 0.5) -> int:
    """How many of the expected detections have a found one of the same class overlapping by IoU >= `iou`."""
    if not len(found) or not len(expected):
        return 0
    same = expected.labels[:, None] == found.labels[None, :]
    return int(((box_iou(expected.boxes, found.boxes) >= iou) & same).any(1).sum())


class DetectionMetrics:
    """Ground truth and detections (in each image's own pixels) collected over the data set, scored by pycocotools'
    COCOeval at the end; plus the loss (when raw maps are given) and agreement with a reference."""

    def __init__(self, num_classes: int, anchors=COCO_ANCHORS, nms: NMSConfig | None = None):
        self.num_classes, self.nms = num_classes, nms or NMSConfig()
        self.loss = YOLOv3Loss(anchors)
        self.images: list[dict] = []
        self.ground_truth: list[dict] = []
        self.detections: list[dict] = []
        # loss sum, images with a loss, agreeing detections, reference detections
        self.totals = torch.zeros(4, dtype=torch.float64)

    def update(self, outputs, targets: list[dict], reference=None) -> None:
        found, raw = _as_detections(outputs, self.loss.anchors, self.nms)
        if raw is not None:
            with torch.no_grad():
                self.totals[0] += float(self.loss([r.float() for r in raw], _targets_in_input(targets)))
            self.totals[1] += len(targets)
        if reference is not None:
            expected, _ = _as_detections(reference, self.loss.anchors, self.nms)
            for f, e in zip(found, expected):
                self.totals[2] += _agreeing(f, e)
                self.totals[3] += len(e)
        for detections, target in zip(found, targets):
            image_id, (width, height) = target["image_id"], target["size"]
            self.images.append({"id": image_id, "width": width, "height": height})
            for box, label, area, crowd in zip(target["boxes"], target["labels"], target["area"], target["iscrowd"]):
                x1, y1, x2, y2 = (float(v) for v in box)
                self.ground_truth.append({"image_id": image_id, "category_id": int(label) + 1,
                                          "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(area),
                                          "iscrowd": int(crowd)})
            boxes = target["letterbox"].to_image(detections.boxes.numpy(), (width, height))
            for box, score, label in zip(boxes, detections.scores.tolist(), detections.labels.tolist()):
                x1, y1, x2, y2 = (float(v) for v in box)
                self.detections.append({"image_id": image_id, "category_id": int(label) + 1,
                                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})

    def all_reduce(self) -> None:
        """Gather every rank's records and sum the totals (no-op outside torch.distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.totals)
            for name in ("images", "ground_truth", "detections"):
                gathered = [None] * torch.distributed.get_world_size()
                torch.distributed.all_gather_object(gathered, getattr(self, name))
                setattr(self, name, [record for part in gathered for record in part])

    def summary(self, classes: list[str]) -> dict:
        scores = self._coco_eval(classes)
        counts = np.bincount([g["category_id"] - 1 for g in self.ground_truth if not g["iscrowd"]],
                             minlength=len(classes))
        images = len(self.images)
        return {"images": images, **{k: scores[k] for k in ("ap", "ap50", "ap75")},
                "loss": float(self.totals[0] / self.totals[1]) if self.totals[1] else None,
                "agreement": float(self.totals[2] / self.totals[3]) if self.totals[3] else None,
                "boxes": int(counts.sum()), "detections": len(self.detections),
                "per_class": {name: {"boxes": int(counts[i]), "ap": scores["per_class"][i][0],
                                     "ap50": scores["per_class"][i][1]} for i, name in enumerate(classes)}}

    def _coco_eval(self, classes: list[str]) -> dict:
        none = {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "per_class": [(None, None)] * len(classes)}
        if not self.images:
            return none
        coco = require("pycocotools.coco", "COCO mAP of detectors", "train")
        cocoeval = require("pycocotools.cocoeval", "COCO mAP of detectors", "train")
        truth = coco.COCO()
        truth.dataset = {"images": list({im["id"]: im for im in self.images}.values()),
                         "annotations": [{**g, "id": i + 1} for i, g in enumerate(self.ground_truth)],
                         "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
            truth.createIndex()
            if not self.detections:
                return none
            evaluation = cocoeval.COCOeval(truth, truth.loadRes(self.detections), "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        precision = evaluation.eval["precision"][:, :, :, 0, -1]  # (IoU thresholds, recall, class), all areas
        per_class = []
        present = {g["category_id"] - 1 for g in self.ground_truth}
        for k in range(len(classes)):
            p = precision[:, :, k]
            per_class.append((float(p[p > -1].mean()), float(p[0][p[0] > -1].mean())) if k in present
                             else (None, None))
        ap, ap50, ap75 = (max(0.0, float(v)) for v in evaluation.stats[:3])
        return {"ap": ap, "ap50": ap50, "ap75": ap75, "per_class": per_class}


# mmdet's YOLOv3 (MobileNetV2) recipe: SGD, lr 3e-3 for a loss summed over 24 images per process, momentum 0.9,
# weight decay 5e-4, gradient norm clipped at 35; random scale 0.5-1.5 and translate 0.1 stand in for its
# Expand + MinIoURandomCrop + multi-scale resize. No label smoothing.
DETECTION_DEFAULTS = {"optimizer": "sgd", "lr": 3e-3, "momentum": 0.9, "weight_decay": 5e-4, "clip_grad": 35.0,
                      "batch": 24, "label_smoothing": 0.0, "scale_min": 0.5, "scale_max": 1.5, "translate": 0.1}


@dataclass(frozen=True)
class DetectionTask:
    """COCO-format data; YOLOv3 loss; COCO AP (IoU 0.5:0.95) picks the best checkpoint."""

    name: str = "detect"
    fitness: str = "ap"
    columns: tuple[str, ...] = ("ap", "ap50", "ap75")
    loss_reduction: str = "sum"
    defaults: dict = field(default_factory=lambda: dict(DETECTION_DEFAULTS))

    @property
    def collate(self) -> Any:
        from ..det_datasets import collate_eval

        return collate_eval

    @property
    def train_collate(self) -> Any:
        from ..det_datasets import collate_train

        return collate_train

    def train_data(self, data: str, strict: bool):
        from ..det_datasets import CocoDetection

        return CocoDetection(data, "train", strict=strict)

    def val_data(self, data: str, spec: PreprocessSpec, classes: list[str], strict: bool):
        from ..det_datasets import CocoDetection, DetEvalTransform

        return CocoDetection(data, "val", classes, DetEvalTransform(spec), strict=strict)

    def train_transform(self, spec: PreprocessSpec, config):
        from ..det_datasets import DetTrainTransform

        return DetTrainTransform(spec, scale=(config.scale_min, config.scale_max), translate=config.translate,
                                 hflip=config.hflip)

    def criterion(self, config, model_config: ModelConfig) -> nn.Module:
        return YOLOv3Loss(model_config.options.get("anchors", COCO_ANCHORS))

    def metrics(self, model_config: ModelConfig) -> DetectionMetrics:
        return DetectionMetrics(model_config.num_classes, model_config.options.get("anchors", COCO_ANCHORS))
