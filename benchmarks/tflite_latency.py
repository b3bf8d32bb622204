"""LiteRT CPU latency of TFLite files: fp32 vs int8 (1 and 2 threads), optionally both converter routes.

    python -m benchmarks.tflite_latency                      # xformer_s: fp32, fp16, dynamic-int8, int8
    python -m benchmarks.tflite_latency --routes             # + the onnx2tf route's fp32 file, and the route table
    python -m benchmarks.tflite_latency --model xformer_xxs --runs 15

Files are exported into --out unless already there. Every configuration is timed in each of --rounds
interleaved rounds (median of --runs invokes per round) and the median of the round medians is reported, so
a burst of load from other processes on a shared machine hits all configurations alike. Ratios come from one
run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from xformer.export import export
from xformer.export.metadata import read_tflite_metadata
from xformer.runtimes.litert_runtime import LiteRTRuntime


def _files(model: str, out: Path, precisions: list[str], converter: str) -> dict[str, dict]:
    """precision -> export record (as dict), exporting what is missing."""
    found, missing = {}, []
    for precision in precisions:
        path = out / f"{model}_{precision}.tflite"
        if path.exists() and read_tflite_metadata(path)["export"].get("converter") == converter:
            found[precision] = {"path": path, "details": None, "parity": None}
        else:
            missing.append(precision)
    if missing:
        for r in export(model, formats="tflite", precisions=missing, out_dir=out, tflite_converter=converter):
            if not r.ok:
                raise SystemExit(f"{model} {r.precision} ({converter}) failed: {r.error}")
            found[r.precision] = {"path": r.path, "details": r.details, "parity": r.parity}
    return found


def _time(runtimes: dict[tuple, LiteRTRuntime], runs: int, rounds: int) -> dict[tuple, float]:
    inputs = {key: np.random.default_rng(0).random(rt.inputs[0].shape, dtype=np.float32)
              for key, rt in runtimes.items()}
    for key, rt in runtimes.items():  # warm-up: XNNPACK packs weights on the first invoke
        for _ in range(3):
            rt.run(inputs[key])
    medians: dict[tuple, list[float]] = {key: [] for key in runtimes}
    for _ in range(rounds):
        for key, rt in runtimes.items():
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                rt.run(inputs[key])
                samples.append((time.perf_counter() - start) * 1e3)
            medians[key].append(statistics.median(samples))
    return {key: statistics.median(values) for key, values in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="xformer_s", help="registered model name (default xformer_s)")
    parser.add_argument("--out", default="runs/tflite_latency",
                        help="where the .tflite files are exported, or reused from an earlier run")
    parser.add_argument("--precisions", default="fp32,fp16,dynamic-int8,int8", help="comma list of TFLite precisions")
    parser.add_argument("--routes", action="store_true", help="also export fp32 with onnx2tf and compare routes")
    parser.add_argument("--runs", type=int, default=20, help="invokes per round and configuration")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median of their medians)")
    args = parser.parse_args()

    out = Path(args.out)
    files = {("litert-torch", p): f for p, f in _files(args.model, out, args.precisions.split(","),
                                                        "litert-torch").items()}
    if args.routes:
        onnx2tf_out = out / "onnx2tf"
        files.update({("onnx2tf", p): f for p, f in _files(args.model, onnx2tf_out, ["fp32"], "onnx2tf").items()})
    runtimes = {(route, precision, threads): LiteRTRuntime(f["path"], threads=threads)
                for (route, precision), f in files.items() for threads in (1, 2)}
    latency = _time(runtimes, args.runs, args.rounds)

    print(f"\n{args.model}: LiteRT (ai-edge-litert {next(iter(runtimes.values())).version}, XNNPACK) median ms, "
          f"{args.rounds} rounds x {args.runs} runs")
    print(f"{'route':14s} {'precision':13s} {'MB':>6s} {'1 thread':>9s} {'2 threads':>10s} {'vs fp32 (1 / 2)':>16s}")
    for (route, precision), f in files.items():
        one, two = latency[(route, precision, 1)], latency[(route, precision, 2)]
        base1, base2 = latency[(route, "fp32", 1)], latency[(route, "fp32", 2)]
        size = f["path"].stat().st_size / 1e6
        speedup = f"{base1 / one:7.2f}x / {base2 / two:.2f}x"
        print(f"{route:14s} {precision:13s} {size:6.2f} {one:9.2f} {two:10.2f} {speedup}")
    if args.routes:
        from xformer.export.tflite_graph import gpu_compatibility, read_graph

        print("\nconverter routes, fp32:")
        for route in ("litert-torch", "onnx2tf"):
            f = files[(route, "fp32")]
            graph = read_graph(f["path"])
            layers = graph.attention_layers()
            in_xfa = sum(layer["transposes"] for layer in layers.values()) if layers else "n/a"
            parity = f["parity"] or {}
            err = f"{parity['max_abs_err']:.1e}" if "max_abs_err" in parity else "(reused file)"
            print(f"{route:14s} ops {len(graph.ops)}, TRANSPOSE {graph.transposes} (in XFA: {in_xfa}), "
                  f"GPU-incompatible {gpu_compatibility(f['path']).count}, max abs err {err}, "
                  f"{latency[(route, 'fp32', 1)]:.2f} / {latency[(route, 'fp32', 2)]:.2f} ms")


if __name__ == "__main__":
    main()
