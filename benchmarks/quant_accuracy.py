"""Accuracy and speed of every precision of one trained checkpoint, TFLite and ONNX, from one `xformer bench --data`
run: top-1 on the held-out images next to PyTorch's, and each file's 1-thread latency as a ratio to the fp32 file of
its own format (measured interleaved in the same run). With `--float-layers auto` (the default) a TFLite int8 file
that keeps its most int8-sensitive layers float is exported and measured beside the plain one, and the sweep is
recorded.

    python -m xformer dataset digits data/digits
    python -m xformer train xformer_s --data data/digits --imgsz 64 --epochs 12 --lr 0.001 --hflip 0 \\
        --crop-scale 0.5 --out runs/digits-s          # lr 0.002 and 0.001 both diverged (NaN) at epoch 5:
    python -m xformer train runs/digits-s/best.safetensors --data data/digits --imgsz 64 --epochs 5 --lr 0.0003 \\
        --warmup-epochs 1 --hflip 0 --crop-scale 0.5 --out runs/digits-s2   # epoch 4's 95% -> 99.44% in 3 epochs
    python -m benchmarks.quant_accuracy runs/digits-s2/best.safetensors --data data/digits
    cp runs/quant-accuracy/quant.json benchmarks/results/quant.json; python scripts/update_readme.py

The goal it prints (issue 14): static int8 top-1 within 1 pt of PyTorch, TFLite and ONNX.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich import box
from rich.table import Table

from xformer.benchmarks import BenchConfig, run_benchmarks, write_reports
from xformer.checkpoint import atomic_path, load_model
from xformer.console import console, err_console
from xformer.export import export
from xformer.export.formats import slow_on_cpu

GOAL_PT = 1.0
PRECISIONS = {"tflite": ["fp32", "fp16", "dynamic-int8", "int8", "w8a16"], "onnx": ["fp32", "fp16", "int8", "int8-qop"]}
FORMS = {("onnx", "int8"): "QDQ", ("onnx", "int8-qop"): "QOperator"}


def _float_layers_file(checkpoint: str, data: Path, request: str, out: Path) -> tuple[Path, dict]:
    """The TFLite int8 file with `request` layers kept float, and its choice (the sweep when auto)."""
    model, _ = load_model(checkpoint)
    (record,) = export(model, formats="tflite", precisions=["int8"], calib=str(data / "train"), out_dir=out,
                       int8_float_layers=request)
    if not record.ok:
        raise SystemExit(f"int8 with float layers failed: {record.error}")
    return record.path, {**record.details["int8_float_layers"], "parity": record.parity}


def _rows(results) -> list[dict]:
    fp32 = {r.format: r.latency.median for r in results if r.ok and r.precision == "fp32" and r.latency}
    rows = []
    for r in results:
        if not r.ok:
            rows.append({"format": r.format, "precision": r.precision, "error": r.error})
            continue
        accuracy = r.accuracy or {}
        float_layers = "-float-layers" in Path(r.file or "").parent.name
        rows.append({
            "format": r.format, "precision": r.precision + (" +float layers" if float_layers else ""),
            "form": FORMS.get((r.format, r.precision)), "runtime": r.runtime, "size_mb": r.file_size_mb,
            "top1": accuracy.get("top1"), "delta_pt": accuracy.get("delta_pt"), "images": accuracy.get("images"),
            "median_ms": r.latency.median, "ratio_vs_fp32": r.latency.median / fp32[r.format] if r.format in fp32
            else None, "reference_kernels": slow_on_cpu(r.format, r.precision) is not None})
    return rows


def _table(rows: list[dict]) -> Table:
    table = Table(title="Top-1 and 1-thread latency per precision (ratio: to the fp32 file of the same format)",
                  box=box.SIMPLE_HEAD)
    for column in ("format", "precision", "MB", "top-1 %", "vs PyTorch (pt)", "median ms", "x fp32", "note"):
        table.add_column(column, justify="left" if column in ("format", "precision", "note") else "right")
    for row in rows:
        if "error" in row:
            table.add_row(row["format"], row["precision"], "-", "-", "-", "-", "-", f"failed: {row['error']}")
            continue
        delta = row["delta_pt"]
        note = "reference kernels on CPU (NPU format)" if row["reference_kernels"] else row["form"] or ""
        table.add_row(row["format"], row["precision"], f"{row['size_mb']:.2f}" if row["size_mb"] else "-",
                      f"{100 * row['top1']:.2f}" if row["top1"] is not None else "-",
                      f"{delta:+.2f}" if delta is not None else "-", f"{row['median_ms']:.2f}",
                      f"{row['ratio_vs_fp32']:.2f}x" if row["ratio_vs_fp32"] else "-", note)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a trained classifier checkpoint (.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="image folder with train/ (calibration) and val/")
    parser.add_argument("--out", type=Path, default=Path("runs/quant-accuracy"))
    parser.add_argument("--runs", type=int, default=30, help="timed runs per row")
    parser.add_argument("--float-layers", default="auto", help="TFLite int8 with these layers float: auto, NAMES, "
                                                               "or none")
    args = parser.parse_args()

    sources, choice = [args.checkpoint], None
    if args.float_layers != "none":
        path, choice = _float_layers_file(args.checkpoint, args.data, args.float_layers,
                                          args.out / "int8-float-layers")
        sources.append(str(path))
    precisions = list(dict.fromkeys(p for ps in PRECISIONS.values() for p in ps))
    config = BenchConfig(sources=sources, formats=["torch", *PRECISIONS], precisions=precisions, threads=[1],
                         data=str(args.data), runs=args.runs, cache_dir=str(args.out / "exports"))
    results = run_benchmarks(config, err_console)
    write_reports(results, args.out / "bench", config.to_dict())
    rows = _rows(results)
    console.print(_table(rows))
    torch_top1 = next((r.accuracy["top1"] for r in results if r.format == "torch" and r.accuracy), None)
    int8 = [row for row in rows if row.get("precision", "").startswith("int8") and "top1" in row]
    met = bool(int8) and all(row["delta_pt"] is not None and row["delta_pt"] >= -GOAL_PT for row in int8)
    env = next((r.environment for r in results if r.environment), {})
    summary = {"checkpoint": args.checkpoint, "arch": results[0].model if results else None,
               "data": str(args.data), "pytorch_top1": torch_top1, "goal": f"static int8 within {GOAL_PT:g} pt of "
               "PyTorch top-1", "met": met, "rows": rows, "int8_float_layers": choice, "threads": 1,
               "environment": {k: env.get(k) for k in ("cpu", "logical_cores", "load_average_1m", "torch",
                                                        "onnxruntime", "ai-edge-litert")},
               "timestamp": min((r.timestamp for r in results if r.timestamp), default=None)}
    with atomic_path(args.out / "quant.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    if choice is not None:
        kept = ", ".join(choice["float_layers"]) or "none"
        console.print(f"int8 float layers ({choice['chosen']}): {kept}; steps: "
                      + "; ".join(f"{s['float_layers']} float -> agreement {s['top1_agreement']:.2%}"
                                  for s in choice.get("steps", [])), highlight=False)
        for entry in choice.get("sweep", [])[:5]:
            console.print(f"  sensitive: {entry['layer']} alone int8 -> cosine {entry['cosine']:.5f}, top-1 "
                          f"agreement {entry['top1_agreement']:.2%}", highlight=False)
    console.print(f"goal ({summary['goal']}): {'met' if met else 'NOT met'}; wrote {args.out / 'quant.json'}",
                  highlight=False)


if __name__ == "__main__":
    main()
