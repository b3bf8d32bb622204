"""Latency statistics of one configuration, and the outlier rule behind them.

A shared 2-core VM (or a phone that heats up) gives skewed timings: most runs sit near the true cost and a
few are much slower because another process or a frequency drop got in the way. So:

- the headline is the **median** (FPS = 1000 * batch / median), which such outliers cannot move;
- the **trimmed mean** drops the fastest and the slowest 10% of the runs (`floor(0.1 * n)` from each end)
  and averages the rest: a mean that ignores stalls without pretending they never happened;
- mean, std (sample, ddof=1), min, max and the percentiles (p5, p90, p95; numpy's linear interpolation)
  are kept over *all* runs, so the spread stays visible. No run is ever discarded from the record.

Sigma clipping is not used: it assumes a symmetric distribution, and latency distributions are not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["TRIM_FRACTION", "LatencyStats", "summarize", "trimmed_mean"]

TRIM_FRACTION = 0.1


@dataclass(frozen=True)
class LatencyStats:
    """Per-run latency in milliseconds. Fields a tool does not report (e.g. an old benchmark_model) are None."""

    runs: int
    mean: float
    median: float | None
    std: float | None
    min: float | None
    max: float | None
    trimmed_mean: float | None = None
    p5: float | None = None
    p90: float | None = None
    p95: float | None = None

    @property
    def headline(self) -> float:
        """The number tables rank by: the median, or the mean when a tool reports no median."""
        return self.median if self.median is not None else self.mean

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LatencyStats:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


def trimmed_mean(samples: np.ndarray, fraction: float = TRIM_FRACTION) -> float:
    """Mean after dropping `floor(fraction * n)` samples from each end of the sorted samples."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    cut = math.floor(fraction * ordered.size)
    return float(ordered[cut:ordered.size - cut].mean())


def summarize(samples_ms: list[float] | np.ndarray) -> LatencyStats:
    """Statistics of timed runs (ms), following the rule in the module docstring."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no timed runs to summarize")
    p5, p50, p90, p95 = np.percentile(x, [5, 50, 90, 95])
    return LatencyStats(runs=int(x.size), mean=float(x.mean()), median=float(p50),
                        std=float(x.std(ddof=1)) if x.size > 1 else 0.0, min=float(x.min()), max=float(x.max()),
                        trimmed_mean=trimmed_mean(x), p5=float(p5), p90=float(p90), p95=float(p95))
