"""Parity of an exported file against the PyTorch reference, on real photos and seeded random inputs.

Tolerances per precision are defined here, once. fp32 must match closely; fp16 must keep the logits'
direction; quantised files are reported (their agreement depends on trained weights and calibration).
Segmenters (outputs of shape N x classes x H x W) are judged by the share of pixels whose argmax agrees with
PyTorch's, over photos and random inputs, next to the same logit errors; their fp32 logit bound is looser,
since hundreds of thousands of logits per image each carry the float rounding of a full-resolution graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..preprocess import PreprocessSpec, preprocess
from ..runtimes.base import Runtime

__all__ = ["TOLERANCES", "ParityReport", "Tolerance", "check_parity", "parity_inputs", "reference_logits"]

RANDOM_INPUTS = 4
RANDOM_SEED = 0


@dataclass(frozen=True)
class Tolerance:
    max_abs_err: float | None = None
    min_cosine: float | None = None
    min_top1_agreement: float | None = None  # measured on the photos only
    min_pixel_agreement: float | None = None  # segmenters: argmax agreement over every pixel of every input


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_err=1e-4, min_cosine=0.9999, min_top1_agreement=1.0),
    "fp16": Tolerance(min_cosine=0.999),
    "dynamic-int8": Tolerance(),
    "int8": Tolerance(),
    "w8a16": Tolerance(),
    "palette6": Tolerance(),
}
SEGMENTATION_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs_err=1e-3, min_cosine=0.9999, min_pixel_agreement=0.999),
    "fp16": Tolerance(min_cosine=0.999, min_pixel_agreement=0.99),
}


@dataclass
class ParityReport:
    max_abs_err: float
    mean_abs_err: float
    cosine: float  # the worst sample's cosine similarity of logits
    top1_agreement: float  # on the photos
    top5_agreement: float  # share of photos whose top-5 sets are equal
    photos: int
    random_inputs: int
    tolerance: dict
    passed: bool
    failures: list[str]
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


@torch.no_grad()
def reference_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(x[None])).numpy() for x in inputs])


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
    if tol.max_abs_err is not None and diff.max() > tol.max_abs_err:
        failures.append(f"max abs err {diff.max():.2e} > {tol.max_abs_err:.0e}")
    if tol.min_cosine is not None and cosine.min() < tol.min_cosine:
        failures.append(f"cosine {cosine.min():.6f} < {tol.min_cosine}")
    if tol.min_pixel_agreement is not None and pixel < tol.min_pixel_agreement:
        failures.append(f"argmax pixel agreement {pixel:.4%} < {tol.min_pixel_agreement:.1%}")
    return ParityReport(float(diff.max()), float(diff.mean()), float(cosine.min()), on_photos, float("nan"),
                        photos, len(reference) - photos, asdict(tol), not failures, failures, pixel)


def compare(reference: np.ndarray, candidate: np.ndarray, photos: int, precision: str) -> ParityReport:
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
    failures = []
    if tol.max_abs_err is not None and diff.max() > tol.max_abs_err:
        failures.append(f"max abs err {diff.max():.2e} > {tol.max_abs_err:.0e}")
    if tol.min_cosine is not None and cosine.min() < tol.min_cosine:
        failures.append(f"cosine {cosine.min():.6f} < {tol.min_cosine}")
    if tol.min_top1_agreement is not None and top1 < tol.min_top1_agreement:
        failures.append(f"top-1 agreement {top1:.0%} < {tol.min_top1_agreement:.0%}")
    return ParityReport(float(diff.max()), float(diff.mean()), float(cosine.min()), float(top1), float(top5),
                        photos, len(reference) - photos, asdict(tol), not failures, failures)


def check_parity(runtime: Runtime, reference: nn.Module, precision: str, photos: list | None = None,
                 inputs: tuple[np.ndarray, int] | None = None, expected: np.ndarray | None = None) -> ParityReport:
    """Compare `runtime` with the PyTorch `reference` on the contract's inputs (computed here unless given)."""
    if inputs is None:
        inputs = parity_inputs(runtime.config.preprocess, photos)
    batch, n_photos = inputs
    if expected is None:
        expected = reference_logits(reference, batch)
    return compare(expected, _runtime_logits(runtime, batch), n_photos, precision)
