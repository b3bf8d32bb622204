"""Plots of a run (PNG, matplotlib's Agg backend, imported only here so `import xformer` stays light).

- latency vs params: one point per model and setting, like the paper's comparison figure;
- latency bars: per model, one bar per format/precision (one panel per thread count), error bars p5-p95;
- latency vs input size: one line per model and setting, drawn when a run covers several input sizes.
- latency and peak memory vs input pixels (runs with several --imgsz): one line per model and setting, so a
  cost linear in the pixels (XFA) and one growing faster (MHSA's token-to-token maps) are told apart at a glance.

Axes show plain numbers: matplotlib's offset notation turned two models of equal size into an axis labelled
"1e-5+5.5786".
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import atomic_path
from ..errors import require
from .record import BenchResult

__all__ = ["figure_latency_vs_input_size", "figure_latency_vs_params", "plot_latency_bars",
           "plot_latency_vs_input_size", "plot_latency_vs_params", "plot_latency_vs_pixels", "require_plotting"]


def require_plotting():
    """matplotlib's pyplot on the Agg backend, or MissingExtraError naming the bench extra."""
    matplotlib = require("matplotlib", "benchmark plots (xformer bench --out)", "bench")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "benchmark plots (xformer bench --out)", "bench")


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")


def _setting(r: BenchResult, targets: int) -> str:
    label = f"{r.format} {r.precision}" + (f" {r.delegate}" if r.delegate else "")
    return label + (f" @{r.target}" if targets > 1 else "")


def _error(r: BenchResult) -> tuple[float, float]:
    """Distance from the median down to p5 and up to p95 (std either way when percentiles are missing)."""
    lat, mid = r.latency, r.median_ms
    if lat.p5 is not None and lat.p95 is not None:
        return max(mid - lat.p5, 0.0), max(lat.p95 - mid, 0.0)
    return (lat.std or 0.0), (lat.std or 0.0)


def _plain_axes(ax, xs: list[float]) -> None:
    """Plain tick labels, and a visible x range even when every point has the same x."""
    ax.ticklabel_format(axis="both", style="plain", useOffset=False)
    low, high = min(xs), max(xs)
    if high - low < 1e-9 * max(abs(high), 1.0):
        pad = max(abs(low) * 0.1, 0.1)
        ax.set_xlim(low - pad, high + pad)


def _finish(plt, fig, ax, path: str | Path) -> Path:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return Path(path)


def figure_latency_vs_params(results: list[BenchResult]):
    """The figure (or None without numbers): median latency against parameters, one series per setting."""
    ok = [r for r in results if r.ok and r.params]
    if not ok:
        return None
    plt = require_plotting()
    targets = len({r.target for r in ok})
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    series = sorted({(_setting(r, targets), r.threads) for r in ok})
    for label, threads in series:
        points = sorted((r for r in ok if (_setting(r, targets), r.threads) == (label, threads)),
                        key=lambda r: r.params)
        xs = [r.params / 1e6 for r in points]
        ys = [r.median_ms for r in points]
        err = list(zip(*[_error(r) for r in points], strict=True))
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, label=f"{label}, {threads} thr")
        for r, x, y in zip(points, xs, ys, strict=True):
            ax.annotate(r.model, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("median latency (ms), bars p5-p95")
    ax.set_title("Latency vs parameters")
    _plain_axes(ax, [r.params / 1e6 for r in ok])
    return fig, ax


def plot_latency_vs_params(results: list[BenchResult], path: str | Path) -> Path | None:
    drawn = figure_latency_vs_params(results)
    return None if drawn is None else _finish(require_plotting(), *drawn, path)


def figure_latency_vs_input_size(results: list[BenchResult]):
    """The figure (or None with fewer than two input sizes): median latency against input pixels."""
    ok = [r for r in results if r.ok]
    if len({tuple(r.input_size) for r in ok}) < 2:
        return None
    plt = require_plotting()
    targets = len({r.target for r in ok})
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for model, label, threads in sorted({(r.model, _setting(r, targets), r.threads) for r in ok}):
        points = sorted((r for r in ok if (r.model, _setting(r, targets), r.threads) == (model, label, threads)),
                        key=lambda r: r.input_size[0] * r.input_size[1])
        xs = [r.input_size[0] * r.input_size[1] / 1e3 for r in points]
        err = list(zip(*[_error(r) for r in points], strict=True))
        ax.errorbar(xs, [r.median_ms for r in points], yerr=err, fmt="o-", capsize=3,
                    label=f"{model} {label}, {threads} thr")
        for r, x in zip(points, xs, strict=True):
            ax.annotate(f"{r.input_size[0]}x{r.input_size[1]}", (x, r.median_ms), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
    ax.set_xlabel("input pixels (thousands)")
    ax.set_ylabel("median latency (ms), bars p5-p95")
    ax.set_title("Latency vs input size")
    _plain_axes(ax, [r.input_size[0] * r.input_size[1] / 1e3 for r in ok])
    return fig, ax


def plot_latency_vs_input_size(results: list[BenchResult], path: str | Path) -> Path | None:
    drawn = figure_latency_vs_input_size(results)
    return None if drawn is None else _finish(require_plotting(), *drawn, path)


def plot_latency_vs_pixels(results: list[BenchResult], path: str | Path) -> Path | None:
    """Only drawn when some model was measured at two or more input sizes."""
    ok = [r for r in results if r.ok]
    targets = len({r.target for r in ok})
    series: dict[tuple, list[BenchResult]] = {}
    for r in ok:
        series.setdefault((r.model, _setting(r, targets), r.threads), []).append(r)
    series = {k: sorted(v, key=lambda r: r.input_size[0] * r.input_size[1]) for k, v in series.items()
              if len({tuple(r.input_size) for r in v}) > 1}
    if not series:
        return None
    plt = require_plotting()
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(12, 5), dpi=120)
    for (model, label, threads), points in sorted(series.items()):
        xs = [r.input_size[0] * r.input_size[1] / 1e6 for r in points]
        err = list(zip(*[_error(r) for r in points], strict=True))
        lat.errorbar(xs, [r.median_ms for r in points], yerr=err, fmt="o-", capsize=3,
                     label=f"{model}, {label}, {threads} thr")
        memory = [(x, r.peak_memory_mb) for x, r in zip(xs, points, strict=True) if r.peak_memory_mb]
        if memory:
            mem.plot(*zip(*memory, strict=True), "o-", label=f"{model}, {label}, {threads} thr")
        for r, x, y in zip(points, xs, [r.median_ms for r in points], strict=True):
            lat.annotate(f"{r.input_size[0]}x{r.input_size[1]}", (x, y), textcoords="offset points", xytext=(4, -10),
                         fontsize=7)
    lat.set(xlabel="input pixels (M)", ylabel="median latency (ms), bars p5-p95", title="Latency vs input pixels")
    mem.set(xlabel="input pixels (M)", ylabel="peak memory (MiB)", title="Peak memory vs input pixels")
    for ax in (lat, mem):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return Path(path)


def plot_latency_bars(results: list[BenchResult], path: str | Path) -> Path | None:
    ok = [r for r in results if r.ok]
    if not ok:
        return None
    plt = require_plotting()
    targets = len({r.target for r in ok})
    thread_counts = sorted({r.threads for r in ok})
    models = list(dict.fromkeys(r.model for r in ok))
    settings = list(dict.fromkeys(_setting(r, targets) for r in ok))
    width = 0.8 / len(settings)
    fig, axes = plt.subplots(1, len(thread_counts), figsize=(max(6, 2.2 * len(models)) * len(thread_counts), 4.8),
                             dpi=120, squeeze=False, sharey=True)
    for ax, threads in zip(axes[0], thread_counts, strict=True):
        for i, setting in enumerate(settings):
            rows = {r.model: r for r in ok if r.threads == threads and _setting(r, targets) == setting}
            xs = [m + (i - (len(settings) - 1) / 2) * width for m in range(len(models)) if models[m] in rows]
            chosen = [rows[name] for name in models if name in rows]
            if chosen:
                err = list(zip(*[_error(r) for r in chosen], strict=True))
                ax.bar(xs, [r.median_ms for r in chosen], width, yerr=err, capsize=3, label=setting)
        ax.set_xticks(range(len(models)), models, rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}")
        ax.grid(axis="y", alpha=0.3)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes[0][0].set_ylabel("median latency (ms), bars p5-p95")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return Path(path)
