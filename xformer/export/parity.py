"""Parity of an exported file against the PyTorch reference, on real photos and seeded random inputs.

Tolerances per precision are defined here, once. fp32 must match closely and fp16 must keep the logits'
direction, whatever the weights. Quantised files are judged by a cosine floor and top-1 agreement on the
photos when the weights are trained; with seeded weights (a bare model name) their error says nothing about
a trained model's, so they are "not judged: seeded weights" and only the sanity floor, which catches a broken
file whatever its weights, applies.
Segmenters (outputs of shape N x classes x H x W) are judged by the share of pixels whose argmax agrees with
PyTorch's, over photos and random inputs, next to the same logit errors; their fp32 logit bound is looser,
since hundreds of thousands of logits per image each carry the float rounding of a full-resolution graph.
Detectors are judged by their boxes: matched to PyTorch's by class and IoU, with matched/missing/extra counts,
the worst IoU and the worst score error (`check_detection_parity`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from ..checkpoint import has_seeded_weights, weights_sha256
from ..preprocess import PreprocessSpec, preprocess
from ..runtimes.base import Runtime

__all__ = ["DETECTION_TOLERANCES", "NOT_JUDGED", "TOLERANCES", "DetectionParityReport", "ParityReport", "Tolerance",
           "check_detection_parity", "check_parity", "detection_report", "match_detections", "parity_inputs",
           "reference_logits"]

RANDOM_INPUTS = 4
RANDOM_SEED = 0


@dataclass(frozen=True)
class Tolerance:
    max_abs_err: float | None = None
    min_cosine: float | None = None  # the worst input's cosine similarity of logits
    min_top1_agreement: float | None = None  # measured on the photos only
    needs_trained_weights: bool = False  # quantised: the gates below apply to trained weights only
    min_photo_cosine: float | None = None  # mean cosine over the photos
    floor_cosine: float | None = None  # mean cosine over all inputs, whatever the weights: below it, broken
    min_pixel_agreement: float | None = None  # segmenters: argmax agreement over every pixel of every input


# Quantised gates, set from xformer_xxs trained on scikit-learn's digits. Its files,
# calibrated on the sample photos, measured a mean photo cosine of 0.998 (TFLite dynamic-int8), 0.99 (w8a16),
# 0.875 (static int8, one dark photo at 0.44; 6 of 8 photos kept their top-1) and a worst cosine of 0.9996
# (CoreML int8 weights) and 0.995 (palette6); every other file kept every photo's top-1. The gates leave room
# for other models and calibration sets; a broken file (negated classifier: cosine -1) fails the floor even
# with seeded weights.
# With --calib the images judged are the calibration folder's (the model's own domain), not the photos.
QUANTISED_FLOOR = 0.5
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_err=1e-4, min_cosine=0.9999, min_top1_agreement=1.0),
    "fp16": Tolerance(min_cosine=0.999),
    "dynamic-int8": Tolerance(min_photo_cosine=0.98, min_top1_agreement=0.75, needs_trained_weights=True,
                              floor_cosine=QUANTISED_FLOOR),
    "w8a16": Tolerance(min_photo_cosine=0.9, min_top1_agreement=0.75, needs_trained_weights=True,
                       floor_cosine=QUANTISED_FLOOR),
    "int8": Tolerance(min_photo_cosine=0.75, min_top1_agreement=0.6, needs_trained_weights=True,
                      floor_cosine=QUANTISED_FLOOR),
    "int8-qop": Tolerance(min_photo_cosine=0.75, min_top1_agreement=0.6, needs_trained_weights=True,
                          floor_cosine=QUANTISED_FLOOR),  # ONNX's QOperator int8: the same gate as int8 (QDQ)
    "palette6": Tolerance(min_photo_cosine=0.95, min_top1_agreement=0.75, needs_trained_weights=True,
                          floor_cosine=QUANTISED_FLOOR),
}
NOT_JUDGED = "not judged: seeded weights"
SEGMENTATION_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_err=1e-3, min_cosine=0.9999, min_pixel_agreement=0.999),
    "fp16": Tolerance(min_cosine=0.999, min_pixel_agreement=0.99),
}


@dataclass
class ParityReport:
    max_abs_err: float
    mean_abs_err: float
    cosine: float  # the worst sample's cosine similarity of logits
    photo_cosine: float  # mean over the photos
    mean_cosine: float  # mean over all inputs
    top1_agreement: float  # on the photos
    top5_agreement: float  # share of photos whose top-5 sets are equal
    photos: int
    random_inputs: int
    tolerance: dict
    passed: bool
    failures: list[str]
    judged: bool = True  # False: seeded weights, only the sanity floor was checked
    status: str = "ok"  # "ok", "FAILED" or NOT_JUDGED
    pixel_agreement: float | None = None  # segmenters: argmax agreement over all pixels of all inputs

    def to_dict(self) -> dict:
        return asdict(self)


def parity_inputs(spec: PreprocessSpec, photos: list | None = None, random_inputs: int = RANDOM_INPUTS
                  ) -> tuple[np.ndarray, int]:
    """NCHW batch of the photos (preprocessed by the contract) followed by seeded random images.

    Random images are uniform pixels pushed through the same scale/mean/std, so they live in the input domain.
    """
    from ..samples import sample_images

    nchw = PreprocessSpec(**{**spec.to_dict(), "layout": "NCHW"})
    photos = sample_images() if photos is None else photos
    arrays = [preprocess(p, nchw) for p in photos]
    rng = np.random.default_rng(RANDOM_SEED)
    height, width = spec.input_size
    mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
    for _ in range(random_inputs):
        pixels = rng.integers(0, 256, size=(1, 3, height, width)).astype(np.float32)
        arrays.append(((pixels * np.float32(spec.scale) - mean) / std).astype(np.float32))
    return np.concatenate(arrays), len(photos)


_last_reference: dict[tuple, tuple[nn.Module, np.ndarray]] = {}


@torch.no_grad()
def reference_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """PyTorch's outputs, one input at a time. The last call's are kept (keyed by the module, its weights and the
    inputs): a request's files are all judged on the same inputs, and CoreML's MIL check of every precision
    would otherwise run the model again each time."""
    key = (id(model), weights_sha256(model), hashlib.sha256(inputs.tobytes()).hexdigest(), inputs.shape)
    if key not in _last_reference:
        _last_reference.clear()
        _last_reference[key] = (model, np.concatenate([model(torch.from_numpy(x[None])).numpy() for x in inputs]))
    return _last_reference[key][1].copy()


def _runtime_logits(runtime: Runtime, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([runtime.run(x[None]) for x in inputs]).astype(np.float32)


def _compare_masks(reference: np.ndarray, candidate: np.ndarray, photos: int, precision: str) -> ParityReport:
    """Segmentation logits (N, classes, H, W): argmax pixel agreement plus the logit errors."""
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    diff = np.abs(ref - cand)
    flat_ref, flat_cand = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    cosine = (flat_ref * flat_cand).sum(1) / (np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_cand, axis=1)
                                              + 1e-30)
    agree = ref.argmax(1) == cand.argmax(1)
    pixel = float(agree.mean())
    on_photos = float(agree[:photos].mean()) if photos else float("nan")
    tol = SEGMENTATION_TOLERANCES.get(precision, Tolerance())
    failures = []
    if not np.isfinite(cand).all():
        failures.append(f"{int((~np.isfinite(cand)).sum())} non-finite logits")
    if tol.max_abs_err is not None and diff.max() > tol.max_abs_err:
        failures.append(f"max abs err {diff.max():.2e} > {tol.max_abs_err:.0e}")
    if tol.min_cosine is not None and cosine.min() < tol.min_cosine:
        failures.append(f"cosine {cosine.min():.6f} < {tol.min_cosine}")
    if tol.min_pixel_agreement is not None and pixel < tol.min_pixel_agreement:
        failures.append(f"argmax pixel agreement {pixel:.4%} < {tol.min_pixel_agreement:.1%}")
    return ParityReport(max_abs_err=float(diff.max()), mean_abs_err=float(diff.mean()), cosine=float(cosine.min()),
                        photo_cosine=float(cosine[:photos].mean()) if photos else float("nan"),
                        mean_cosine=float(cosine.mean()), top1_agreement=on_photos, top5_agreement=float("nan"),
                        photos=photos, random_inputs=len(reference) - photos, tolerance=asdict(tol),
                        passed=not failures, failures=failures, status="FAILED" if failures else "ok",
                        pixel_agreement=pixel)


def compare(reference: np.ndarray, candidate: np.ndarray, photos: int, precision: str,
            trained: bool = True) -> ParityReport:
    """Agreement of `candidate` logits with `reference`, judged by the precision's tolerance (see the module
    docstring for `trained`); segmentation maps by argmax pixel agreement."""
    if reference.ndim == 4:
        return _compare_masks(reference, candidate.reshape(reference.shape), photos, precision)
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    cosine = (ref * cand).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1) + 1e-30)
    top1 = (ref[:photos].argmax(1) == cand[:photos].argmax(1)).mean() if photos else float("nan")
    top5_ref = np.argsort(-ref[:photos], axis=1, kind="stable")[:, :5]
    top5_cand = np.argsort(-cand[:photos], axis=1, kind="stable")[:, :5]
    top5 = np.mean([set(a) == set(b) for a, b in zip(top5_ref, top5_cand)]) if photos else float("nan")
    tol = TOLERANCES.get(precision, Tolerance())
    judged = trained or not tol.needs_trained_weights
    failures = []
    if not np.isfinite(cand).all():
        failures.append(f"{int((~np.isfinite(cand)).sum())} non-finite logits")
    photo_cosine = float(cosine[:photos].mean()) if photos else float("nan")
    if tol.floor_cosine is not None and not cosine.mean() >= tol.floor_cosine:
        failures.append(f"mean cosine {cosine.mean():.4f} < {tol.floor_cosine} (broken whatever the weights)")
    if judged:
        if tol.max_abs_err is not None and diff.max() > tol.max_abs_err:
            failures.append(f"max abs err {diff.max():.2e} > {tol.max_abs_err:.0e}")
        if tol.min_cosine is not None and cosine.min() < tol.min_cosine:
            failures.append(f"cosine {cosine.min():.6f} < {tol.min_cosine}")
        if tol.min_photo_cosine is not None and not photo_cosine >= tol.min_photo_cosine:
            failures.append(f"photo cosine {photo_cosine:.4f} < {tol.min_photo_cosine}")
        if tol.min_top1_agreement is not None and top1 < tol.min_top1_agreement:
            failures.append(f"top-1 agreement {top1:.0%} < {tol.min_top1_agreement:.0%}")
    status = "FAILED" if failures else "ok" if judged else NOT_JUDGED
    return ParityReport(float(diff.max()), float(diff.mean()), float(cosine.min()), photo_cosine,
                        float(cosine.mean()), float(top1), float(top5), photos, len(reference) - photos, asdict(tol),
                        not failures, failures, judged, status)


def check_parity(runtime: Runtime, reference: nn.Module, precision: str, photos: list | None = None,
                 inputs: tuple[np.ndarray, int] | None = None, expected: np.ndarray | None = None) -> ParityReport:
    """Compare `runtime` with the PyTorch `reference` on the contract's inputs (computed here unless given)."""
    if inputs is None:
        inputs = parity_inputs(runtime.config.preprocess, photos)
    batch, n_photos = inputs
    if expected is None:
        expected = reference_logits(reference, batch)
    trained = not has_seeded_weights(reference)
    return compare(expected, _runtime_logits(runtime, batch), n_photos, precision, trained)


# Detectors: the file's detections are matched to PyTorch's, box for box (same class, IoU >= MATCH_IOU, greedy
# by reference score). Seeded weights score every box far below the usual 0.05, so boxes are kept from the
# PARITY_BOXES best candidates of each image unless a file's graph holds its own NMS (its thresholds are fixed).
# Pairs are taken best IoU first.
# A box whose score is within `score_margin` (relative) of the threshold may fall on either side of it: such a
# box unmatched is counted as borderline, not as missing or extra.
# Quantised files are judged on the boxes a user sees: those scoring at least `min_score` (and the file's own
# threshold), never the PARITY_BOXES lowest-ranked candidates, whose order int8 rounding reshuffles (a trained
# shapes detector's int8 file matched 60 of 160 boxes at scores ~1e-4, yet its boxes above 0.1 agree).
MATCH_IOU = 0.5
PARITY_BOXES = 20


@dataclass(frozen=True)
class DetectionTolerance:
    min_iou: float | None = None  # of every matched pair
    max_rel_score_err: float | None = None  # |score - reference| / max(reference, threshold)
    max_unmatched: int | None = None  # missing + extra boxes, over all inputs
    min_recall: float | None = None  # matched / reference boxes
    min_precision: float | None = None  # matched / the file's boxes (matched + extra)
    min_score: float | None = None  # judge at this score threshold (at least the file's) instead of the top boxes
    score_margin: float = 0.01
    needs_trained_weights: bool = False


DETECTION_TOLERANCES: dict[str, DetectionTolerance] = {
    "fp32": DetectionTolerance(min_iou=0.99, max_rel_score_err=1e-3, max_unmatched=0),
    "fp16": DetectionTolerance(min_iou=0.95, max_rel_score_err=0.05, min_recall=0.9, score_margin=0.05),
    "dynamic-int8": DetectionTolerance(min_iou=0.8, min_recall=0.8, min_precision=0.8, min_score=0.1,
                                       score_margin=0.2, needs_trained_weights=True),
    "int8": DetectionTolerance(min_iou=0.7, min_recall=0.7, min_precision=0.7, min_score=0.1, score_margin=0.3,
                               needs_trained_weights=True),
    "w8a16": DetectionTolerance(min_iou=0.8, min_recall=0.8, min_precision=0.8, min_score=0.1, score_margin=0.2,
                                needs_trained_weights=True),
    "palette6": DetectionTolerance(min_iou=0.8, min_recall=0.8, min_precision=0.8, min_score=0.1,
                                   score_margin=0.2, needs_trained_weights=True),
}


@dataclass
class DetectionParityReport:
    reference_boxes: int
    matched: int
    missing: int  # PyTorch's boxes the file does not find
    extra: int  # the file's boxes PyTorch does not have
    borderline: int  # unmatched boxes scored within the margin of the threshold
    ties: int  # matched to another of two boxes PyTorch scored alike (NMS's pick; not in the IoU figures)
    min_iou: float  # over matched pairs (1.0 when none)
    mean_iou: float
    max_score_err: float  # absolute, over matched pairs
    max_rel_score_err: float
    score_threshold: float  # the lowest threshold used on any input
    photos: int
    random_inputs: int
    tolerance: dict
    passed: bool
    failures: list[str]
    judged: bool = True
    status: str = "ok"

    def to_dict(self) -> dict:
        return asdict(self)


def _is_tie(found_box, label: int, reference_score: float, candidates, margin: float, min_iou: float) -> bool:
    """True when PyTorch scored a box like the file's (IoU >= min_iou, same class) as high as the one it kept:
    NMS kept one of two equally scored boxes, which rounding decides (seeded heads score neighbours alike)."""
    from ..models.detection import box_iou

    boxes, scores = candidates
    near = box_iou(found_box[None], boxes)[0] >= min_iou
    return bool(near.any()) and float(scores[near, label].max()) >= reference_score * (1 - margin)


def _match(expected, found, threshold: float, margin: float, candidates=None, min_iou: float | None = None) -> dict:
    """Same-class matching of one image's detections (models.detection.Detections), best overlaps first."""
    from ..models.detection import box_iou

    ious = box_iou(expected.boxes, found.boxes).numpy() if len(expected) and len(found) else np.zeros(
        (len(expected), len(found)))
    same = expected.labels.numpy()[:, None] == found.labels.numpy()[None, :]
    ious = np.where(same, ious, 0.0)
    taken, matched_ref, pairs = np.zeros(len(found), bool), set(), []
    # Best overlaps first: seeded weights give near-identical boxes of one class, whose score order means little.
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, ious.shape)
        if ious[i, j] < MATCH_IOU:
            break
        if i not in matched_ref and not taken[j]:
            taken[j] = True
            matched_ref.add(i)
            pairs.append((int(i), int(j), float(ious[i, j])))
    ties = [(i, j, iou) for i, j, iou in pairs if candidates is not None and min_iou is not None and iou < min_iou
            and _is_tie(found.boxes[j], int(found.labels[j]), float(expected.scores[i]), candidates, margin, min_iou)]
    pairs = [p for p in pairs if p not in ties]
    near = threshold * (1 + margin)
    unmatched_ref = [float(s) for i, s in enumerate(expected.scores.tolist()) if i not in matched_ref]
    unmatched_found = [float(s) for j, s in enumerate(found.scores.tolist()) if not taken[j]]
    ref_scores, found_scores = expected.scores.numpy(), found.scores.numpy()
    errors = [abs(float(found_scores[j]) - float(ref_scores[i])) for i, j, _ in pairs]
    relative = [e / max(float(ref_scores[i]), threshold) for e, (i, _, _) in zip(errors, pairs)]
    return {"pairs": [iou for _, _, iou in pairs], "errors": errors, "relative": relative,
            "missing": sum(s > near for s in unmatched_ref), "extra": sum(s > near for s in unmatched_found),
            "borderline": sum(s <= near for s in unmatched_ref + unmatched_found), "reference": len(expected),
            "ties": len(ties)}


def match_detections(raw_reference: list, outputs, metadata: dict, precision: str = "fp32") -> dict:
    """One image: PyTorch's raw maps and a file's outputs (any form) -> the matching of their detections
    (pairs' IoUs, score errors, missing/extra/borderline/tie counts) and the score threshold used."""
    from ..models.detection import decode, postprocess
    from ..runtimes.detection import detections_from_outputs, nms_config

    detection = metadata["detection"]
    config = nms_config(metadata)
    tol = DETECTION_TOLERANCES.get(precision, DetectionTolerance())
    maps = [torch.as_tensor(np.asarray(r, np.float32)) for r in raw_reference]
    boxes, scores = decode(maps, torch.tensor(detection["anchors"]), tuple(detection["strides"]))
    threshold = config.score_threshold
    if tol.min_score is not None:
        threshold = max(threshold, tol.min_score)
    elif detection["outputs"] != "nms":  # enough boxes to compare whatever the weights
        best = scores.reshape(-1).topk(min(PARITY_BOXES, scores.numel())).values[-1]
        threshold = min(threshold, float(best) * (1 - 1e-6))
    config = replace(config, score_threshold=threshold)
    expected = postprocess(boxes, scores, config)[0]
    found = detections_from_outputs(outputs, metadata, config)[0]
    return {**_match(expected, found, threshold, tol.score_margin, (boxes[0], scores[0]), tol.min_iou),
            "threshold": threshold}


@torch.no_grad()
def check_detection_parity(runtime: Runtime, reference: nn.Module, precision: str,
                           inputs: tuple[np.ndarray, int]) -> DetectionParityReport:
    """The file's detections against PyTorch's on the contract's inputs (see DETECTION_TOLERANCES)."""
    batch, photos = inputs
    results = [match_detections(reference(torch.from_numpy(x[None])), runtime.run(x[None]), runtime.metadata,
                                precision) for x in batch]
    return detection_report(results, photos, precision, not has_seeded_weights(reference))


def detection_report(results: list[dict], photos: int, precision: str, trained: bool) -> DetectionParityReport:
    """Per-image matches (`match_detections`) -> the report, judged by the precision's tolerance."""
    tol = DETECTION_TOLERANCES.get(precision, DetectionTolerance())
    judged = trained or not tol.needs_trained_weights
    thresholds = [r["threshold"] for r in results]
    ious = [iou for r in results for iou in r["pairs"]]
    errors = [e for r in results for e in r["errors"]]
    relative = [e for r in results for e in r["relative"]]
    counts = {k: sum(r[k] for r in results) for k in ("missing", "extra", "borderline", "reference", "ties")}
    matched = len(ious)
    failures = []
    if judged:
        if tol.min_iou is not None and ious and min(ious) < tol.min_iou:
            failures.append(f"min IoU {min(ious):.4f} < {tol.min_iou}")
        if tol.max_rel_score_err is not None and relative and max(relative) > tol.max_rel_score_err:
            failures.append(f"relative score error {max(relative):.1e} > {tol.max_rel_score_err:.0e}")
        if tol.max_unmatched is not None and counts["missing"] + counts["extra"] > tol.max_unmatched:
            failures.append(f"{counts['missing']} missing and {counts['extra']} extra boxes")
        if tol.min_recall is not None and counts["reference"] and matched / counts["reference"] < tol.min_recall:
            failures.append(f"matched {matched}/{counts['reference']} boxes < {tol.min_recall:.0%}")
        found = matched + counts["extra"]
        if tol.min_precision is not None and found and matched / found < tol.min_precision:
            failures.append(f"{counts['extra']} of the file's {found} boxes unmatched > {1 - tol.min_precision:.0%}")
    judged = judged and bool(counts["reference"] or matched or counts["extra"])  # no box on either side: nothing
    status = "FAILED" if failures else "ok" if judged else NOT_JUDGED
    return DetectionParityReport(
        reference_boxes=counts["reference"], matched=matched, missing=counts["missing"], extra=counts["extra"],
        borderline=counts["borderline"], ties=counts["ties"], min_iou=min(ious, default=1.0),
        mean_iou=float(np.mean(ious)) if ious else 1.0,
        max_score_err=max(errors, default=0.0), max_rel_score_err=max(relative, default=0.0),
        score_threshold=min(thresholds), photos=photos, random_inputs=len(results) - photos, tolerance=asdict(tol),
        passed=not failures, failures=failures, judged=judged, status=status)
