"""LiteRT/TFLite's C++ `benchmark_model` tool: its command line, its output, and a target that runs a local copy.

The tool's output changed over the years; `parse_benchmark_model` reads every variant seen in the wild:

- summary, current:  `Inference timings in us: Init: 5579, First inference: 1357602, Warmup (avg): 1.3576e+06,
  Inference (avg): 1.24027e+06`
- summary, old:      `Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722` (also with
  `Inference:` instead of `no stats:`, and the oldest `Average inference timings in us: 137722 , Warmup: ...`)
- stats lines:       `count=50 first=.. curr=.. min=.. max=.. avg=.. std=..`, optionally followed by
  `p5=.. median=.. p95=..`, or `count=1 curr=..` when all runs took the same time. With two stats lines the
  first is the warm-up, the last the timed runs.
- memory:            `Memory footprint delta from the start of the tool (MB): init=.. overall=..` (current) or
  `Peak memory footprint (MB): init=.. overall=..` (old), plus, with --report_peak_memory_footprint,
  `Overall peak memory footprint (MB) via periodic monitoring: ..`
- delegation:        `Replacing 62 out of 66 node(s) with delegate (TfLiteGpuDelegateV2) node, ...` (or the older
  `Replacing 62 node(s) with delegate (...)`), and `Explicitly applied XNNPACK delegate, and the model graph
  will be completely|partially executed by the delegate ...`. Anything under 100% is warned about loudly:
  the nodes left on the CPU usually cost more than the delegate saves.

Lines may carry any prefix (`INFO: `, `VERBOSE: `, logcat's `I tflite  : `, glog timestamps). Times in us
become ms.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceError, OptionError
from .plan import RunPlan
from .record import BenchResult, host_environment, now
from .sources import Artifact
from .stats import LatencyStats

__all__ = ["BENCHMARK_MODEL_ENV", "DELEGATES", "BenchmarkModelOutput", "LocalBenchmarkModelTarget",
           "benchmark_model_args", "binary_id", "failed_record", "find_benchmark_model", "parse_benchmark_model",
           "record_from_run", "result_from_output"]

BENCHMARK_MODEL_ENV = "XFORMER_BENCHMARK_MODEL"
TOOL_TIMEOUT_S = 1800
# Delegate name -> benchmark_model flags; "cpu" is TFLite's built-in kernels without XNNPACK.
DELEGATES = {"xnnpack": ["--use_xnnpack=true"], "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"],
             "cpu": ["--use_xnnpack=false"]}

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
                      rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_OLD_SUMMARY = re.compile(r"Average inference timings in us:(.*)")
_OLD_FIELD = re.compile(rf"(Warmup|Init|Inference|no stats|with stats): ({_NUM})")
_STATS = re.compile(r"\bcount=(\d+)(.*)")
_STAT_FIELD = re.compile(rf"\b(first|curr|min|max|avg|std|p5|median|p95)=({_NUM})")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=({_NUM}) overall=({_NUM})")
_PEAK_MEMORY = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})")
_REPLACING = re.compile(r"Replacing (\d+) (?:out of (\d+) )?node\(s\) with delegate \(([^)]*)\)")
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                      r"executed by the delegate(?: w/ (\d+) delegate kernels)?")
_NOT_APPLIED = re.compile(r"(\S+) delegate.*will not be executed by the delegate")
_INIT_SESSION = re.compile(rf"Initialized session in ({_NUM}) ?ms")
_FILE_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUM})")


@dataclass
class BenchmarkModelOutput:
    """What one benchmark_model run reported, in ms and MB; None where this tool version is silent."""

    init_ms: float | None = None
    first_ms: float | None = None
    warmup_mean_ms: float | None = None
    inference_mean_ms: float | None = None
    latency: LatencyStats | None = None  # the timed runs
    warmup: LatencyStats | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    memory_peak_mb: float | None = None
    model_size_mb: float | None = None
    delegated_nodes: int | None = None  # from the last `Replacing N out of M` line
    total_nodes: int | None = None
    delegate_name: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.inference_mean_ms is not None or self.latency is not None


def _stats_line(rest: str, count: int) -> tuple[LatencyStats, float]:
    """Statistics of one `count=...` line, and the time of its first run."""
    values = {k: float(v) / 1000 for k, v in _STAT_FIELD.findall(rest)}
    if "avg" not in values:  # "count=N curr=X": every run took the same time
        same = values["curr"]
        return LatencyStats(runs=count, mean=same, median=same, std=0.0, min=same, max=same, trimmed_mean=same,
                            p5=same, p90=same, p95=same), same
    return LatencyStats(runs=count, mean=values["avg"], median=values.get("median"), std=values.get("std"),
                        min=values.get("min"), max=values.get("max"), p5=values.get("p5"),
                        p95=values.get("p95")), values.get("first", values["avg"])


def _us(value: str) -> float:
    return float(value) / 1000


def parse_benchmark_model(text: str) -> BenchmarkModelOutput:
    """Parse benchmark_model's stdout+stderr (any version; see the module docstring)."""
    out = BenchmarkModelOutput()
    stats = []
    for line in text.replace("\r", "").splitlines():
        if m := _SUMMARY.search(line):
            out.init_ms, out.first_ms, out.warmup_mean_ms, out.inference_mean_ms = map(_us, m.groups())
        elif m := _OLD_SUMMARY.search(line):
            fields = dict(_OLD_FIELD.findall(m.group(1)))
            inference = fields.get("Inference") or fields.get("no stats")
            if inference is None and (bare := re.match(rf"\s*({_NUM})", m.group(1))):
                inference = bare.group(1)
            out.inference_mean_ms = _us(inference) if inference else None
            out.warmup_mean_ms = _us(fields["Warmup"]) if "Warmup" in fields else None
            out.init_ms = _us(fields["Init"]) if "Init" in fields else out.init_ms
        elif m := _STATS.search(line):
            stats.append(_stats_line(m.group(2), int(m.group(1))))
        elif m := _MEMORY.search(line):
            out.memory_init_mb, out.memory_overall_mb = float(m.group(1)), float(m.group(2))
        elif m := _PEAK_MEMORY.search(line):
            out.memory_peak_mb = float(m.group(1))
        elif m := _REPLACING.search(line):
            replaced, total, name = int(m.group(1)), m.group(2), m.group(3)
            out.delegated_nodes, out.total_nodes, out.delegate_name = replaced, int(total) if total else None, name
            if total and replaced < int(total):
                out.warnings.append(f"DELEGATE COVERAGE {replaced}/{total} nodes ({100 * replaced / int(total):.0f}%)"
                                    f": {name} left {int(total) - replaced} node(s) on the CPU")
        elif m := _APPLIED.search(line):
            if m.group(2) == "partially":
                kernels = f" in {m.group(3)} delegate kernels" if m.group(3) else ""
                out.warnings.append(f"DELEGATE PARTIAL: {m.group(1)} runs only part of the graph{kernels}; "
                                    "the rest falls back to CPU kernels")
        elif m := _NOT_APPLIED.search(line):
            out.warnings.append(f"DELEGATE NOT APPLIED: {m.group(1)} delegate ran no node; everything ran on the CPU")
        elif m := _INIT_SESSION.search(line):
            out.init_ms = out.init_ms if out.init_ms is not None else float(m.group(1))
        elif m := _FILE_SIZE.search(line):
            out.model_size_mb = float(m.group(1))
    if stats:
        out.latency = stats[-1][0]
        if len(stats) > 1:
            out.warmup, first = stats[0]
            out.first_ms = out.first_ms if out.first_ms is not None else first
    elif out.inference_mean_ms is not None:  # a summary line alone: only the mean is known
        out.latency = LatencyStats(runs=0, mean=out.inference_mean_ms, median=None, std=None, min=None, max=None)
    if out.warmup_mean_ms is None and out.warmup is not None:
        out.warmup_mean_ms = out.warmup.mean
    return out


def benchmark_model_args(graph: str, threads: int, delegate: str, plan: RunPlan,
                         extra: list[str] | None = None) -> list[str]:
    if delegate not in DELEGATES:
        raise OptionError(f"unknown delegate {delegate!r}; choose from {', '.join(DELEGATES)}")
    return [f"--graph={graph}", f"--num_threads={threads}", f"--warmup_runs={plan.warmup}",
            f"--num_runs={plan.runs}", f"--min_secs={plan.min_seconds:g}", f"--max_secs={plan.max_seconds:g}",
            *DELEGATES[delegate], *(extra or [])]


def find_benchmark_model(path: str | None) -> Path:
    """The user's benchmark_model binary (option, else $XFORMER_BENCHMARK_MODEL); we cannot ship one."""
    given = path or os.environ.get(BENCHMARK_MODEL_ENV)
    if not given:
        raise OptionError(
            "this target runs LiteRT's benchmark_model tool, which no package here ships: download or build it "
            "(TensorFlow's 'TFLite Model Benchmark Tool' page links nightly binaries for linux_x86-64 and "
            f"android_aarch64), then pass --benchmark-model PATH or set {BENCHMARK_MODEL_ENV}")
    binary = Path(given)
    if not binary.is_file():
        raise OptionError(f"benchmark_model binary not found: {binary}; fix --benchmark-model or "
                           f"{BENCHMARK_MODEL_ENV}")
    if not os.access(binary, os.X_OK):
        raise OptionError(f"benchmark_model binary {binary} is not executable: chmod +x {binary}")
    return binary


def binary_id(binary: Path) -> str:
    """benchmark_model prints no version: the binary's digest identifies which build produced the numbers."""
    return "sha256:" + hashlib.sha256(binary.read_bytes()).hexdigest()[:12]


def result_from_output(out: BenchmarkModelOutput, artifact: Artifact, **fields) -> BenchResult:
    """A record from a parsed run; FPS from the median, or the mean when this tool version prints no median."""
    warnings = list(out.warnings)
    latency = out.latency
    if latency is not None and latency.median is None:
        warnings.append("this benchmark_model prints no median; FPS and rankings use its mean")
    memory = out.memory_peak_mb if out.memory_peak_mb is not None else out.memory_overall_mb
    method = ("benchmark_model peak RSS via periodic monitoring" if out.memory_peak_mb is not None else
              "benchmark_model RSS delta from tool start (overall)" if memory is not None else None)
    return BenchResult(model=artifact.model, source=artifact.source, format=artifact.format,
                       precision=artifact.precision, runtime="benchmark_model", input_size=artifact.input_size,
                       file=str(artifact.path), params=artifact.params,
                       file_size_mb=artifact.size_mb if artifact.size_mb is not None else out.model_size_mb,
                       macs=artifact.macs, init_ms=out.init_ms, first_ms=out.first_ms,
                       warmup_mean_ms=out.warmup_mean_ms, latency=latency,
                       fps=1000 / latency.headline if latency else None, peak_memory_mb=memory,
                       memory_method=method, delegated_nodes=out.delegated_nodes, total_nodes=out.total_nodes,
                       warnings=warnings, timestamp=now(), **fields)


class LocalBenchmarkModelTarget:
    """A benchmark_model binary for this machine (Linux), optionally pinned to CPUs with taskset."""

    name = "local-benchmark-model"

    def __init__(self, binary: str | None, threads: list[int], plan: RunPlan, delegates: list[str],
                 taskset: str | None = None, extra_args: list[str] | None = None):
        self.binary = find_benchmark_model(binary)
        if taskset and not shutil.which("taskset"):
            raise DeviceError("--taskset needs the taskset command (Debian package util-linux)")
        self.threads, self.plan, self.delegates = threads, plan, delegates
        self.taskset, self.extra_args = taskset, extra_args

    def planned_runs(self, artifacts: list[Artifact]) -> int:
        return len(artifacts) * len(self.threads) * len(self.delegates) * (1 + self.plan.warmup + self.plan.runs)

    def run(self, artifacts: list[Artifact], advance: Callable[[int, str], None]) -> list[BenchResult]:
        environment = host_environment()
        version = binary_id(self.binary)
        results = []
        for artifact in artifacts:
            for threads in self.threads:
                for delegate in self.delegates:
                    fields = dict(runtime_version=version, target=self.name, device=environment["cpu"],
                                  threads=threads, delegate=delegate, environment=environment)
                    args = benchmark_model_args(str(artifact.path), threads, delegate, self.plan, self.extra_args)
                    command = [*(["taskset", self.taskset] if self.taskset else []), str(self.binary), *args]
                    results.append(_run_tool(command, artifact, fields))
                    advance(1 + self.plan.warmup + self.plan.runs, f"{artifact.model} {delegate} x{threads}")
        return results


def _run_tool(command: list[str], artifact: Artifact, fields: dict) -> BenchResult:
    if artifact.error:
        return failed_record(artifact, artifact.error, fields)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return failed_record(artifact, f"benchmark_model did not finish in {TOOL_TIMEOUT_S} s; lower --runs or "
                                       "--max-seconds", fields)
    except OSError as err:  # not an executable for this machine (wrong architecture, a script without #!)
        return failed_record(artifact, f"benchmark_model could not be started ({err}); pass a binary built for "
                                       "this machine", fields)
    return record_from_run(proc.returncode, proc.stdout + proc.stderr, artifact, fields)


def record_from_run(returncode: int, text: str, artifact: Artifact, fields: dict) -> BenchResult:
    """A record from one finished benchmark_model run, or a failed record quoting the tool's last lines."""
    out = parse_benchmark_model(text)
    if returncode != 0 or not out.found:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        return failed_record(artifact, f"benchmark_model exited with {returncode}: {tail}", fields)
    return result_from_output(out, artifact, **fields)


def failed_record(artifact: Artifact, error: str, fields: dict) -> BenchResult:
    """A row that says why a configuration has no numbers."""
    return BenchResult(model=artifact.model, source=artifact.source, format=artifact.format,
                       precision=artifact.precision, runtime="benchmark_model", input_size=artifact.input_size,
                       file=str(artifact.path) if artifact.path else None, params=artifact.params,
                       macs=artifact.macs, error=error, timestamp=now(), **fields)
