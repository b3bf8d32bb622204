"""Reports of a run: a rich table on screen, and results.json / results.csv / results.md (plus plots) on disk.

Every number shown comes from the records; the markdown tables are also what the README's benchmark section
is generated from (scripts/update_readme.py), so nothing is typed by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rich.table import Table

from ..checkpoint import atomic_path
from .record import BenchResult, save_results
from .stats import TRIM_FRACTION

__all__ = ["CSV_COLUMNS", "accuracy_table", "compare_results", "markdown_accuracy", "markdown_ratios",
           "markdown_report", "markdown_table", "ratio_rows", "ratios_table", "results_table", "write_csv",
           "write_reports"]

CSV_COLUMNS = ["model", "format", "precision", "runtime", "runtime_version", "target", "device", "threads",
               "delegate", "input_size", "batch", "file_size_mb", "params", "macs", "init_ms", "first_ms",
               "warmup_mean_ms", "runs", "mean_ms", "trimmed_mean_ms", "median_ms", "p5_ms", "p90_ms", "p95_ms",
               "std_ms", "min_ms", "max_ms", "fps", "peak_memory_mb", "parity_max_abs_err", "parity_cosine",
               "parity_top1_agreement", "top1", "top5", "top1_delta_pt", "delegated_nodes", "total_nodes", "warnings",
               "error", "timestamp", "file", "source"]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _size(r: BenchResult) -> str:
    return f"{r.input_size[0]}x{r.input_size[1]}" + (f" b{r.batch}" if r.batch != 1 else "")


def _spread(r: BenchResult) -> str:
    lat = r.latency
    return f"{lat.p5:.1f}-{lat.p95:.1f}" if lat and lat.p5 is not None and lat.p95 is not None else "-"


def _parity(r: BenchResult) -> str:
    return f"{r.parity['max_abs_err']:.1e}" if r.parity else "-"


def _top1(r: BenchResult) -> str:
    acc = r.accuracy or {}
    if "top1" not in acc:
        return "-"
    return f"{'[red]' if acc['flagged'] else ''}{100 * acc['top1']:.2f}{'[/]' if acc['flagged'] else ''}"


def _delta(acc: dict) -> str:
    return "-" if acc.get("delta_pt") is None else f"{acc['delta_pt']:+.2f}"


def _where(r: BenchResult) -> str:
    return r.runtime + (f" ({r.delegate})" if r.delegate else "")


def compare_results(results: list[BenchResult], old: list[BenchResult]) -> dict[tuple, float]:
    """Speed-up per configuration against an older run: old median / new median (> 1 is faster)."""
    previous = {r.key: r.median_ms for r in old if r.ok}
    return {r.key: previous[r.key] / r.median_ms for r in results if r.ok and previous.get(r.key)}


def _change(speedup: float | None) -> str:
    if speedup is None:
        return "new"
    percent = (speedup - 1) * 100
    return f"{speedup:.2f}x ({'faster' if percent >= 0 else 'slower'} {abs(percent):.0f}%)"


def ratio_rows(results: list[BenchResult]) -> list[dict]:
    """XFormer / peer median latency for every peer measured under the same format, precision, runtime,
    target and threads in this run (each model at its own input size unless --imgsz fixed one)."""
    ok = [r for r in results if r.ok]

    def setting(r: BenchResult) -> tuple:
        return r.format, r.precision, r.runtime, r.target, r.threads, r.batch, r.delegate

    rows = []
    for x in (r for r in ok if r.model.startswith("xformer")):
        peers = [r for r in ok if not r.model.startswith("xformer") and setting(r) == setting(x)]
        chosen = []
        for model in dict.fromkeys(r.model for r in peers):  # a peer measured at this size too is compared size
            runs = [r for r in peers if r.model == model]     # for size (--imgsz), else at its own size
            chosen += [r for r in runs if tuple(r.input_size) == tuple(x.input_size)] or runs
        for peer in chosen:
            rows.append({"xformer": x.model, "peer": peer.model, "format": x.format, "precision": x.precision,
                         "runtime": _where(x), "threads": x.threads, "xformer_ms": x.median_ms,
                         "peer_ms": peer.median_ms, "ratio": x.median_ms / peer.median_ms})
    return rows


def results_table(results: list[BenchResult], compare: dict[tuple, float] | None = None,
                  title: str = "Benchmark results") -> Table:
    """The on-screen table: one row per configuration, failed ones say so (the reason is printed below it)."""
    table = Table(title=title, caption=f"ms per batch over the timed runs: median is the headline, p5-p95 the "
                                       f"spread, trimmed mean drops the fastest and slowest {TRIM_FRACTION:.0%}")
    with_accuracy = any(r.accuracy for r in results)
    columns = ["model", "format", "prec", "runtime", "thr", "input", "median", "p5-p95", "trim mean", "FPS",
               "init", "mem MB", "max err"] + (["top-1 %"] if with_accuracy else []) + \
        (["vs old"] if compare is not None else [])
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "format", "prec", "runtime") else "right",
                         no_wrap=column in ("model", "format", "runtime"))
    for r in results:
        head = [r.model, r.format, r.precision, _where(r) or "-", str(r.threads), _size(r)]
        if not r.ok:
            table.add_row(*head, "[red]failed[/]", *[""] * (len(columns) - len(head) - 1))
            continue
        row = head + [f"[bold]{r.median_ms:.2f}[/]", _spread(r), _fmt(r.latency.trimmed_mean), _fmt(r.fps, 1),
                      _fmt(r.init_ms, 0), _fmt(r.peak_memory_mb, 0), _parity(r)]
        if with_accuracy:
            row.append(_top1(r))
        if compare is not None:
            row.append(_change(compare.get(r.key)))
        table.add_row(*row)
    return table


def ratios_table(results: list[BenchResult]) -> Table | None:
    rows = ratio_rows(results)
    if not rows:
        return None
    table = Table(title="XFormer / peer median latency (same run; < 1 means XFormer is faster)")
    for column in ("XFormer", "peer", "format", "prec", "runtime", "thr", "XFormer ms", "peer ms", "ratio"):
        table.add_column(column, justify="right" if column in ("thr", "XFormer ms", "peer ms", "ratio") else "left")
    for r in rows:
        table.add_row(r["xformer"], r["peer"], r["format"], r["precision"], r["runtime"], str(r["threads"]),
                      f"{r['xformer_ms']:.2f}", f"{r['peer_ms']:.2f}", f"[bold]{r['ratio']:.2f}[/]")
    return table


def _accuracy_rows(results: list[BenchResult]) -> list[BenchResult]:
    """One row per file (the first thread count): accuracy does not depend on threads."""
    seen, rows = set(), []
    for r in results:
        key = (r.model, r.format, r.precision, tuple(r.input_size), r.file)
        if r.accuracy and key not in seen:
            seen.add(key)
            rows.append(r)
    return rows


def accuracy_table(results: list[BenchResult]) -> Table | None:
    rows = _accuracy_rows(results)
    if not rows:
        return None
    data = next((r.accuracy["data"] for r in rows if "data" in r.accuracy), "")
    table = Table(title=f"Accuracy on {data} (top-1 against PyTorch's; flagged beyond the margin)")
    for column in ("model", "format", "prec", "runtime", "input", "images", "top-1 %", "top-5 %", "vs PyTorch pt",
                   "margin pt", "status"):
        table.add_column(column, justify="left" if column in ("model", "format", "prec", "runtime", "status")
                         else "right")
    for r in rows:
        acc = r.accuracy
        if "top1" not in acc:
            table.add_row(r.model, r.format, r.precision, _where(r) or "-", _size(r), "", "", "", "", "",
                          f"[red]failed[/]: {acc.get('error', '')[:40]}")
            continue
        status = "[bold red]FLAGGED[/]" if acc["flagged"] else "ok" if acc["delta_pt"] is not None else "no reference"
        table.add_row(r.model, r.format, r.precision, _where(r) or "-", _size(r), str(acc["images"]),
                      f"{100 * acc['top1']:.2f}", f"{100 * acc['top5']:.2f}", _delta(acc), f"{acc['margin_pt']:g}",
                      status)
    return table


def markdown_accuracy(results: list[BenchResult]) -> str:
    rows = [r for r in _accuracy_rows(results) if "top1" in r.accuracy]
    if not rows:
        return ""
    lines = ["| model | format | precision | runtime | input | size (MB) | images | top-1 % | top-5 % | "
             "vs PyTorch (pt) | median ms (1 thread) | status |", "|" + "---|" * 12]
    for r in rows:
        acc = r.accuracy
        latency = next((x.median_ms for x in results if x.ok and x.threads == 1 and x.file == r.file
                        and (x.model, x.format, x.precision) == (r.model, r.format, r.precision)), None)
        status = "**flagged**" if acc["flagged"] else "ok" if acc["delta_pt"] is not None else "no reference"
        lines.append(f"| `{r.model}` | {r.format} | {r.precision} | {_where(r)} | {_size(r)} | "
                     f"{_fmt(r.file_size_mb, 2)} | {acc['images']} | {100 * acc['top1']:.2f} | "
                     f"{100 * acc['top5']:.2f} | {_delta(acc)} | {_fmt(latency)} | {status} |")
    return "\n".join(lines)


def _flat(r: BenchResult) -> dict:
    lat = r.latency
    stat = {f"{k}_ms": getattr(lat, k) if lat else None
            for k in ("mean", "trimmed_mean", "median", "p5", "p90", "p95", "std", "min", "max")}
    parity = {f"parity_{k}": (r.parity or {}).get(k) for k in ("max_abs_err", "cosine", "top1_agreement")}
    acc = r.accuracy or {}
    accuracy = {"top1": acc.get("top1"), "top5": acc.get("top5"), "top1_delta_pt": acc.get("delta_pt")}
    row = {**r.to_dict(), **stat, **parity, **accuracy, "runs": lat.runs if lat else None, "input_size": _size(r),
           "warnings": " | ".join(r.warnings)}
    return {k: row.get(k) for k in CSV_COLUMNS}


def write_csv(results: list[BenchResult], path: Path) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in results:
            writer.writerow({k: "" if v is None else v for k, v in _flat(r).items()})
    return path


def markdown_table(results: list[BenchResult], compare: dict[tuple, float] | None = None) -> str:
    header = ["model", "format", "precision", "runtime", "threads", "input", "params (M)", "GMACs", "size (MB)",
              "median ms", "p5-p95 ms", "trimmed mean ms", "FPS", "init ms", "peak mem (MB)", "max abs err"]
    if compare is not None:
        header.append("vs old")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in (r for r in results if r.ok):
        cells = [f"`{r.model}`", r.format, r.precision, f"{_where(r)} {r.runtime_version}", str(r.threads), _size(r),
                 _fmt(r.params / 1e6 if r.params else None), _fmt(r.macs / 1e9 if r.macs else None),
                 _fmt(r.file_size_mb, 1), f"**{r.median_ms:.2f}**", _spread(r), _fmt(r.latency.trimmed_mean),
                 _fmt(r.fps, 1), _fmt(r.init_ms, 0), _fmt(r.peak_memory_mb, 0), _parity(r)]
        if compare is not None:
            cells.append(_change(compare.get(r.key)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_ratios(results: list[BenchResult], xformer: str | None = None) -> str:
    """The ratio table, for every XFormer variant or only `xformer`."""
    rows = [r for r in ratio_rows(results) if xformer in (None, r["xformer"])]
    if not rows:
        return ""
    lines = ["| XFormer | peer | format | precision | runtime | threads | XFormer ms | peer ms | XFormer / peer |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| `{r['xformer']}` | `{r['peer']}` | {r['format']} | {r['precision']} | {r['runtime']} | "
              f"{r['threads']} | {r['xformer_ms']:.2f} | {r['peer_ms']:.2f} | **{r['ratio']:.2f}** |" for r in rows]
    return "\n".join(lines)


def _environment_line(results: list[BenchResult]) -> str:
    env = next((r.environment for r in results if r.environment), {})
    keys = ("cpu", "model", "logical_cores", "os", "android", "python", "torch", "onnxruntime", "ai-edge-litert",
            "executorch")
    return ", ".join(f"{k}: {env[k]}" for k in keys if env.get(k))


def markdown_report(results: list[BenchResult], compare: dict[tuple, float] | None = None) -> str:
    """results.md: environment, the results table, XFormer/peer ratios, then failures and warnings."""
    when = min((r.timestamp for r in results if r.timestamp), default="")
    parts = ["# Benchmark results", "", f"Run {when}; {_environment_line(results)}.", "",
             f"Median of the timed runs is the headline (FPS = 1000 x batch / median); p5-p95 shows the spread; "
             f"the trimmed mean drops the fastest and slowest {TRIM_FRACTION:.0%}. Init (load) and the first "
             "inference are excluded from the latency. Peak memory is the RSS growth over load, first run and "
             "warm-up. Max abs err compares the logits with PyTorch on the benchmark input.", "",
             markdown_table(results, compare)]
    ratios = markdown_ratios(results)
    if ratios:
        parts += ["", "## XFormer vs peers (same run)", "", ratios]
    accuracy = markdown_accuracy(results)
    if accuracy:
        parts += ["", "## Accuracy (same run)", "", accuracy]
    failed = [r for r in results if not r.ok]
    if failed:
        parts += ["", "## Failed", ""] + [f"- `{r.model}` {r.format} {r.precision} x{r.threads}: {r.error}"
                                          for r in failed]
    warned = [r for r in results if r.warnings]
    if warned:
        parts += ["", "## Warnings", ""] + [f"- `{r.model}` {r.format} {r.precision} {_where(r)} x{r.threads}: "
                                            f"{'; '.join(r.warnings)}" for r in warned]
    return "\n".join(parts) + "\n"


def write_reports(results: list[BenchResult], out_dir: str | Path, config: dict | None = None,
                  compare: dict[tuple, float] | None = None) -> list[Path]:
    """results.json, results.csv, results.md and the plots; returns the paths written. Each file is written
    atomically, and the plotting library is checked for before the first one."""
    from .plots import (
        plot_latency_bars,
        plot_latency_vs_input_size,
        plot_latency_vs_params,
        plot_latency_vs_pixels,
        require_plotting,
    )

    require_plotting()
    out = Path(out_dir)
    paths = [save_results(results, out / "results.json", config), write_csv(results, out / "results.csv")]
    md = out / "results.md"
    with atomic_path(md) as tmp:
        tmp.write_text(markdown_report(results, compare), encoding="utf-8")
    paths.append(md)
    paths += [p for p in (plot_latency_vs_params(results, out / "latency_vs_params.png"),
                          plot_latency_bars(results, out / "latency_bars.png"),
                          plot_latency_vs_input_size(results, out / "latency_vs_input_size.png"),
                          plot_latency_vs_pixels(results, out / "latency_vs_pixels.png")) if p]
    return paths
