"""Issue 14's speed goals, measured in one interleaved run: XFormer-S against MobileViT-S, each as the deploy form
(`xformer export`) and as the naive export (the training form as it is, `--no-deploy`), on LiteRT and ONNX Runtime,
fp32 and int8, one thread; then the time of a full `xformer export xformer_s --formats onnx,tflite,coreml`.

    python -m benchmarks.speed [--out runs/speed] [--runs 30] [--rounds 5] [--skip-export-time]
    cp runs/speed/speed.json benchmarks/results/speed.json && python scripts/update_readme.py

Files are exported into OUT/<form>/ unless already there (delete the folder to export again). Every configuration
is timed by the benchmark harness with all rows of both models interleaved in rounds, so a burst of load from
other processes hits all of them alike: compare the ratios, which come from one run. A precision a format does
not offer (ONNX int8 before it exists) is left out. Seeded weights: speed does not depend on them.

A third form, "floor", bounds what any rewrite can reach on LiteRT fp32: the deploy form with every LayerNorm
removed and every attention cut to its two projections (qkv convolution, value channels, output convolution). It
is not a valid model; it times the convolutions and projections alone, which every equivalent form of the model
still has to run, so naive / floor is the largest speed-up an equivalent form could give on this CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from xformer.benchmarks.host import HostTarget
from xformer.benchmarks.plan import RunPlan
from xformer.benchmarks.record import host_environment, now
from xformer.benchmarks.sources import Artifact
from xformer.checkpoint import atomic_path
from xformer.export import export
from xformer.export.deploy import ChannelLayerNorm, DeployAttention, deploy_model
from xformer.export.formats import FORMATS
from xformer.export.tflite_graph import gpu_compatibility, read_graph
from xformer.models import create_model

MODELS = ("xformer_s", "mobilevit_s")
FORMS = {"deploy": True, "naive": False}
RUNTIMES = {"tflite": "LiteRT", "onnx": "ONNX Runtime"}
PRECISIONS = ("fp32", "int8")
EXPORT_COMMAND = ("xformer_s", "--formats", "onnx,tflite,coreml", "--precisions",
                  "fp32,fp16,dynamic-int8,int8,w8a16,palette6")
GOALS = {"ops": 450, "speedup_vs_naive": 1.15, "vs_mobilevit_naive": 0.9, "int8_vs_fp32": 0.5, "export_s": 120}


class _ProjectionsOnly(nn.Module):
    """An attention cut to its projections: qkv convolution, the value channels, output convolution."""

    def __init__(self, attn: DeployAttention):
        super().__init__()
        self.qkv, self.proj = attn.qkv, attn.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.qkv(x)[:, 2 * x.shape[1]:])


def _strip(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, ChannelLayerNorm):
            setattr(module, name, nn.Identity())
        elif isinstance(child, DeployAttention):
            setattr(module, name, _ProjectionsOnly(child))
        else:
            _strip(child)


def conv_floor(model: nn.Module) -> nn.Module:
    """The "floor" form of `model` (see the module docstring): LiteRT's deploy form without LayerNorms and without
    the attention between the projections."""
    floor = deploy_model(model, target="tflite")
    _strip(floor)
    return floor


def _floor_export(model: nn.Module, out: Path, console: Console) -> Artifact:
    name = model.model_config.arch
    path = out / "floor" / f"{name}_fp32.tflite"
    if not path.exists():
        console.print(f"exporting {name} (floor) to tflite fp32")
        record = export(conv_floor(model), formats="tflite", precisions=["fp32"], out_dir=path.parent, deploy=False,
                        validate=False)[0]
        if not record.ok:
            raise SystemExit(f"{name} floor tflite failed: {record.error}")
    return Artifact(model=name, source=f"floor:{path}", format="tflite", precision="fp32",
                    input_size=tuple(model.model_config.preprocess.input_size), path=path)


def _exports(out: Path, console: Console) -> list[Artifact]:
    """One artifact per model x form x format x precision, exported into OUT/<form>/ when missing."""
    artifacts = []
    for name in MODELS:
        model = create_model(name)
        size = tuple(model.model_config.preprocess.input_size)
        for form, deploy in FORMS.items():
            folder = out / form
            for fmt in RUNTIMES:
                suffix = FORMATS[fmt].suffix
                precisions = [p for p in PRECISIONS if p in FORMATS[fmt].precisions]
                missing = [p for p in precisions if not (folder / f"{name}_{p}{suffix}").exists()]
                if missing:
                    console.print(f"exporting {name} ({form}) to {fmt} {', '.join(missing)}")
                    for record in export(model, formats=fmt, precisions=missing, out_dir=folder, deploy=deploy,
                                         validate=False):
                        if not record.ok:
                            raise SystemExit(f"{name} {form} {fmt} {record.precision} failed: {record.error}")
                for p in precisions:
                    path = folder / f"{name}_{p}{suffix}"
                    artifacts.append(Artifact(model=name, source=f"{form}:{path}", format=fmt, precision=p,
                                              input_size=size, path=path, reference=model))
        artifacts.append(_floor_export(model, out, console))
    return artifacts


def _graph(path: Path) -> dict:
    graph = read_graph(path)
    attention = graph.attention_layers()
    return {"ops": len(graph.ops), "histogram": graph.op_histogram, "transposes": graph.transposes,
            "attention_transposes": sum(a["transposes"] for a in attention.values()) if attention else None,
            "gpu_incompatible": gpu_compatibility(path).count}


def _export_seconds(out: Path, console: Console) -> float:
    """Wall time of the full export request in a fresh process, as a user runs it."""
    command = [sys.executable, "-m", "xformer", "export", *EXPORT_COMMAND, "--out", str(out / "export-time")]
    console.print("timing: xformer export " + " ".join(EXPORT_COMMAND))
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _ratios(rows: list[dict]) -> list[dict]:
    ms = {(r["model"], r["form"], r["format"], r["precision"]): r["median_ms"] for r in rows}

    def ratio(what: str, a: tuple, b: tuple, goal: float | None = None, higher: bool = False) -> dict | None:
        if ms.get(a) is None or ms.get(b) is None:
            return None
        value = ms[b] / ms[a] if higher else ms[a] / ms[b]
        met = None if goal is None else (value >= goal if higher else value <= goal)
        return {"what": what, "value": value, "goal": goal, "higher_is_better": higher, "met": met}

    found = []
    for fmt, runtime in RUNTIMES.items():
        for p in PRECISIONS:
            goal = fmt == "tflite" and p == "fp32"
            found += [
                ratio(f"{runtime} {p}: XFormer-S deploy speed-up over its naive export",
                      ("xformer_s", "deploy", fmt, p), ("xformer_s", "naive", fmt, p),
                      GOALS["speedup_vs_naive"] if goal else None, higher=True),
                ratio(f"{runtime} {p}: XFormer-S deploy / MobileViT-S naive",
                      ("xformer_s", "deploy", fmt, p), ("mobilevit_s", "naive", fmt, p),
                      GOALS["vs_mobilevit_naive"] if goal else None),
                ratio(f"{runtime} {p}: XFormer-S deploy / MobileViT-S deploy",
                      ("xformer_s", "deploy", fmt, p), ("mobilevit_s", "deploy", fmt, p))]
        if fmt == "tflite":
            found += [ratio("LiteRT fp32: XFormer-S naive / floor, the most any equivalent form could gain",
                            ("xformer_s", "floor", fmt, "fp32"), ("xformer_s", "naive", fmt, "fp32"), higher=True),
                      ratio("LiteRT fp32: XFormer-S floor / MobileViT-S naive, the least any equivalent form could "
                            "reach", ("xformer_s", "floor", fmt, "fp32"), ("mobilevit_s", "naive", fmt, "fp32"))]
        found.append(ratio(f"{runtime}: XFormer-S deploy int8 / fp32", ("xformer_s", "deploy", fmt, "int8"),
                           ("xformer_s", "deploy", fmt, "fp32"), GOALS["int8_vs_fp32"] if fmt == "tflite" else None))
    return [r for r in found if r is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/speed"))
    parser.add_argument("--runs", type=int, default=30, help="timed runs per configuration")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the runs are spread over")
    parser.add_argument("--skip-export-time", action="store_true", help="do not time the full export request")
    args = parser.parse_args()
    console = Console()
    artifacts = _exports(args.out, console)
    environment = host_environment()
    target = HostTarget(threads=[1], plan=RunPlan(warmup=5, runs=args.runs, max_seconds=120), rounds=args.rounds)
    with console.status("timing every configuration, interleaved"):
        results = target.run(artifacts, lambda n, what: None, interleave_models=True)
    rows = []
    for artifact, result in zip(artifacts, results):
        form = artifact.source.split(":", 1)[0]
        row = {"model": artifact.model, "form": form, "format": artifact.format, "precision": artifact.precision,
               "median_ms": result.median_ms, "p5_ms": result.latency.p5 if result.latency else None,
               "p95_ms": result.latency.p95 if result.latency else None, "size_mb": artifact.size_mb,
               "max_abs_err": (result.parity or {}).get("max_abs_err"), "error": result.error,
               "runtime_version": result.runtime_version}
        if artifact.format == "tflite":
            row["graph"] = _graph(artifact.path)
        rows.append(row)
    export_s = None if args.skip_export_time else _export_seconds(args.out, console)
    summary = {"created": now(), "environment": environment, "threads": 1, "runs": args.runs, "rounds": args.rounds,
               "rows": rows, "ratios": _ratios(rows), "export_seconds": export_s,
               "export_command": "xformer export " + " ".join(EXPORT_COMMAND), "goals": GOALS}
    path = args.out / "speed.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    _print(summary, console)
    console.print(f"wrote {path}")


def _print(summary: dict, console: Console) -> None:
    table = Table(title="median ms, 1 thread, one interleaved run")
    for column in ("model", "form", "runtime", "precision", "median ms", "p5-p95", "ops", "TRANSPOSE (attn)", "GPU x"):
        table.add_column(column)
    for r in summary["rows"]:
        g = r.get("graph") or {}
        table.add_row(r["model"], r["form"], RUNTIMES[r["format"]], r["precision"],
                      f"{r['median_ms']:.2f}" if r["median_ms"] else r["error"] or "-",
                      f"{r['p5_ms']:.1f}-{r['p95_ms']:.1f}" if r["p5_ms"] else "-", str(g.get("ops", "-")),
                      f"{g['transposes']} ({g['attention_transposes']})" if g else "-",
                      str(g.get("gpu_incompatible", "-")))
    console.print(table)
    for r in summary["ratios"]:
        verdict = "" if r["met"] is None else (" [green]met[/]" if r["met"] else " [red]not met[/]")
        goal = "" if r["goal"] is None else f" (goal {'>=' if r['higher_is_better'] else '<='} {r['goal']})"
        console.print(f"{r['what']}: {r['value']:.2f}x{goal}{verdict}")
    deploy = next(r for r in summary["rows"] if (r["model"], r["form"], r["format"], r["precision"]) ==
                  ("xformer_s", "deploy", "tflite", "fp32"))["graph"]
    console.print(f"TFLite fp32 XFormer-S deploy: {deploy['ops']} ops (goal <= {GOALS['ops']}), "
                  f"{deploy['attention_transposes']} TRANSPOSE in attention layers, "
                  f"{deploy['gpu_incompatible']} GPU-incompatible ops")
    if summary["export_seconds"] is not None:
        met = summary["export_seconds"] <= GOALS["export_s"]
        console.print(f"{summary['export_command']}: {summary['export_seconds']:.0f} s (goal <= {GOALS['export_s']} s) "
                      f"{'[green]met[/]' if met else '[red]not met[/]'}")


if __name__ == "__main__":
    main()
