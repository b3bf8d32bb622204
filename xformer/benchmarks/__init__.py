"""Benchmarks: latency, FPS and memory of models and exported files on the host CPU or a phone, peers side by
side, one result schema for every target, and reports (table, JSON, CSV, markdown, plots).

    from xformer.benchmarks import BenchConfig, run_benchmarks, write_reports
    results = run_benchmarks(BenchConfig(["xformer_s"], formats=["torch", "onnx"], threads=[1, 2], peers=True))
    write_reports(results, "runs/bench")

Importing this package loads neither matplotlib nor any runtime; those load when used.
"""

from .harness import BenchConfig, run_benchmarks
from .record import BenchResult, load_results, save_results
from .report import compare_results, results_table, write_reports
from .sources import FORMATS, PEERS
from .stats import LatencyStats, summarize

__all__ = ["FORMATS", "PEERS", "BenchConfig", "BenchResult", "LatencyStats", "compare_results", "load_results",
           "results_table", "run_benchmarks", "save_results", "summarize", "write_reports"]
