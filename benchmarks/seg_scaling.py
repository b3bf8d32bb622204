"""The linear-cost claim at full resolution, measured: xformer_s_seg (XFA) against mobilevit_s_seg (MHSA) at
512x1024 and 1024x2048 on ONNX Runtime and LiteRT, fp32, one thread, with peak memory and a latency-vs-pixels
plot.

    python -m benchmarks.seg_scaling [--out runs/seg-scaling] [--runs 3] [--summarise-only]
    cp runs/seg-scaling/bench/results.json benchmarks/results/seg-scaling.json
    cp runs/seg-scaling/seg_scaling.json benchmarks/results/seg-scaling-summary.json
    python scripts/update_readme.py       # the README's segmentation table

It exports each model and size into the bench cache first without the exporter's 12-input parity pass (at
1024x2048 MHSA needs minutes per PyTorch forward; the bench rows still carry their own parity against PyTorch),
then runs exactly `xformer bench xformer_s_seg mobilevit_s_seg --imgsz 512x1024,1024x2048 --formats onnx,tflite
--threads 1`. The goal it prints: XFA <= 0.5x MHSA latency at 1024x2048 on both runtimes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from xformer.benchmarks import load_results
from xformer.benchmarks.sources import export_dir
from xformer.export import export
from xformer.models import create_model

MODELS = ("xformer_s_seg", "mobilevit_s_seg")
SIZES = ((512, 1024), (1024, 2048))
FORMATS = ("onnx", "tflite")
GOAL_RATIO = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/seg-scaling"))
    parser.add_argument("--runs", type=int, default=3, help="timed runs per row")
    parser.add_argument("--summarise-only", action="store_true",
                        help="summarise OUT/bench/results.json of an earlier run without measuring again")
    args = parser.parse_args()
    console = Console()
    cache = args.out / "exports"
    command = [sys.executable, "-m", "xformer", "bench", *MODELS, "--imgsz", ",".join(f"{h}x{w}" for h, w in SIZES),
               "--formats", ",".join(FORMATS), "--precisions", "fp32", "--threads", "1", "--runs", str(args.runs),
               "--warmup", "1", "--max-seconds", "600", "--cache-dir", str(cache), "--out", str(args.out / "bench")]
    if not args.summarise_only:
        _export(cache, console)
        subprocess.run(command, check=True)
    _summarise(args.out, command, console)


def _export(cache: Path, console: Console) -> None:
    for name in MODELS:
        model = create_model(name)
        for size in SIZES:
            folder = export_dir(model, size, cache)
            todo = [f for f in FORMATS if not (folder / f"{name}_fp32.{'onnx' if f == 'onnx' else 'tflite'}").exists()]
            if todo:
                console.print(f"exporting {name} {size[0]}x{size[1]} to {', '.join(todo)}", highlight=False)
                records = export(model, formats=todo, imgsz=size, out_dir=folder, validate=False)
                failed = [f"{r.format}: {r.error}" for r in records if not r.ok]
                if failed:
                    console.print(f"[red]export failed[/] {'; '.join(failed)}")


def _summarise(out: Path, command: list[str], console: Console) -> None:
    results = load_results(out / "bench" / "results.json")
    by_key = {(r.model, r.format, tuple(r.input_size)): r for r in results if r.ok}
    summary = []
    for fmt in FORMATS:
        for size in SIZES:
            xfa, mhsa = (by_key.get((m, fmt, size)) for m in MODELS)
            if xfa is None or mhsa is None:
                continue
            ratio = xfa.median_ms / mhsa.median_ms
            summary.append({"format": fmt, "input": f"{size[0]}x{size[1]}", "xfa_ms": xfa.median_ms,
                            "mhsa_ms": mhsa.median_ms, "ratio": ratio, "xfa_peak_mb": xfa.peak_memory_mb,
                            "mhsa_peak_mb": mhsa.peak_memory_mb, "xfa_gmacs": xfa.macs / 1e9,
                            "mhsa_gmacs": mhsa.macs / 1e9})
            console.print(f"{fmt} {size[0]}x{size[1]}: XFA {xfa.median_ms:.0f} ms / MHSA {mhsa.median_ms:.0f} ms "
                          f"= {ratio:.2f}x; peak memory {xfa.peak_memory_mb} / {mhsa.peak_memory_mb} MiB",
                          highlight=False)
    met = all(s["ratio"] <= GOAL_RATIO for s in summary if s["input"] == "1024x2048") and \
        any(s["input"] == "1024x2048" for s in summary)
    (out / "seg_scaling.json").write_text(json.dumps({"command": " ".join(command[1:]), "rows": summary,
                                                           "goal": f"XFA <= {GOAL_RATIO}x MHSA at 1024x2048",
                                                           "met": met}, indent=2))
    console.print(f"goal XFA <= {GOAL_RATIO}x MHSA at 1024x2048: {'met' if met else 'NOT met'}; "
                  f"plot {out / 'bench' / 'latency_vs_pixels.png'}", highlight=False)


if __name__ == "__main__":
    main()
