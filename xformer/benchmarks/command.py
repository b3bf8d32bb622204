"""`xformer bench`: argparse setup and handler; the work happens in the benchmarks API."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from dataclasses import fields

from ..console import console, err_console
from ..errors import XFormerError
from .benchmark_model import BENCHMARK_MODEL_ENV, DELEGATES
from .harness import TARGETS, BenchConfig
from .sources import DETECTION_PEERS, FORMATS, PEERS

__all__ = ["register"]



def _list(kind: Callable = str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(item.strip()) for item in text.split(",") if item.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, e.g. 1,2,4 ({err})") from err

    return parse


def _size(text: str) -> int | list[int]:
    """One --imgsz entry: 256 (square) or HxW such as 512x1024."""
    parts = text.lower().split("x")
    return int(parts[0]) if len(parts) == 1 else [int(parts[0]), int(parts[1])]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="latency/FPS/memory of models, checkpoints or exported files on this CPU or a phone",
        description="Benchmark models side by side. A model name or checkpoint is exported on the fly to each "
                    "format (cached); exported files run as they are. Median latency is the headline.")
    p.add_argument("sources", nargs="*", help="model names, checkpoints (.safetensors/.pt) or exported files "
                                               "(.onnx/.tflite/.pte/.mlpackage)")
    p.add_argument("--peers", action="store_true", default=None, help=f"also benchmark {', '.join(PEERS)} (detectors: "
                   f"{', '.join(DETECTION_PEERS)})")
    p.add_argument("--formats", type=_list(), help=f"comma list of {', '.join(FORMATS)} "
                                                    "(default torch,onnx,tflite; tflite on benchmark_model targets)")
    p.add_argument("--precisions", type=_list(), help="comma list, e.g. fp32,fp16,int8 (default fp32; "
                                                       "PyTorch formats run fp32 only)")
    p.add_argument("--threads", type=_list(int), help="CPU thread counts, e.g. 1,2,4 (default 1)")
    p.add_argument("--imgsz", type=_list(_size), help="input sizes, e.g. 224,256 or 512x1024,1024x2048 (default: "
                                                       "each model's own; "
                                                     "exported files keep theirs)")
    p.add_argument("--batch", type=int, help="batch size (default 1)")
    p.add_argument("--warmup", type=int, help="warm-up runs after the first inference (default 5)")
    p.add_argument("--runs", type=int, help="timed runs (default 30)")
    p.add_argument("--min-seconds", type=float, help="keep timing until this many seconds per configuration")
    p.add_argument("--max-seconds", type=float, help="stop timing a configuration after this many seconds, even "
                                                      "short of --runs (default 30)")
    p.add_argument("--rounds", type=int, help="host: interleave each model's configurations in N rounds (default 5)")
    p.add_argument("--target", help=f"where to run: {', '.join(TARGETS)} (default host)")
    p.add_argument("--delegates", type=_list(), help=f"benchmark_model delegates: {', '.join(DELEGATES)} "
                                                      "(default xnnpack)")
    p.add_argument("--taskset", help="benchmark_model targets: CPU mask to pin to, e.g. f0 (big cores)")
    p.add_argument("--benchmark-model", help=f"LiteRT benchmark_model binary (or ${BENCHMARK_MODEL_ENV})")
    p.add_argument("--benchmark-model-args", type=shlex.split, help="extra benchmark_model flags, quoted")
    p.add_argument("--cache-dir", help="where on-the-fly exports are cached (default ~/.cache/xformer/exports; "
                                          "delete it to re-export)")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth)")
    p.add_argument("--data", help="image folder (data set root with val/, or class folders): adds top-1 to every "
                                   "row and flags rows below PyTorch's by more than the margins")
    p.add_argument("--margin-float", type=float, help="flag float rows this many points below PyTorch (default 0.3)")
    p.add_argument("--margin-int8", type=float, help="flag quantised rows this many points below (default 1.0)")
    p.add_argument("--suite", help="YAML suite file with these settings (flags given here override it)")
    p.add_argument("--out", help="write results.json, results.csv, results.md and plots to this directory")
    p.add_argument("--compare", help="an earlier results.json: show speed-up or regression per row")
    p.set_defaults(func=_cmd_bench)


def _config(args: argparse.Namespace) -> BenchConfig:
    from .suite import load_suite

    values = load_suite(args.suite) if args.suite else {}
    for f in fields(BenchConfig):
        given = getattr(args, f.name, None)
        if given not in (None, []):
            values[f.name] = given
    return BenchConfig(**{"sources": [], **values})


def _cmd_bench(args: argparse.Namespace) -> None:
    from .harness import run_benchmarks
    from .record import load_results
    from .report import accuracy_table, compare_results, ratios_table, results_table, write_reports

    config = _config(args)
    if args.out:  # before minutes of measuring, not after
        from .plots import require_plotting

        require_plotting()
    old = load_results(args.compare) if args.compare else None
    results = run_benchmarks(config, err_console)
    compare = compare_results(results, old) if old is not None else None
    console.print(results_table(results, compare))
    ratios = ratios_table(results)
    if ratios is not None:
        console.print(ratios)
    accuracy = accuracy_table(results)
    if accuracy is not None:
        console.print(accuracy)
    for r in results:
        what = " ".join(filter(None, (r.model, r.format, r.precision, r.delegate, f"x{r.threads}")))
        for warning in r.warnings:
            err_console.print(f"[bold red]WARNING[/] {what}: {warning}", highlight=False, soft_wrap=True)
        if r.error:
            err_console.print(f"[red]failed[/] {what}: {r.error}", highlight=False, soft_wrap=True)
    if args.out:
        for path in write_reports(results, args.out, config.to_dict(), compare):
            console.print(f"wrote {path}", highlight=False)
    if not any(r.ok for r in results):
        raise XFormerError("no configuration produced numbers; the reasons are listed above")
