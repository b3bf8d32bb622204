"""The result record: one schema for every target (host CPU, phone, local benchmark_model), so tables compare
like with like, and the results file that holds a run's records."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .stats import LatencyStats

__all__ = ["RESULTS_FORMAT", "BenchResult", "host_environment", "load_results", "now", "save_results"]

RESULTS_FORMAT = "xformer-bench/1"


@dataclass
class BenchResult:
    """One benchmarked configuration; a field the target cannot measure stays None.

    Times are ms; file sizes MB (1e6 bytes, as the export report); memory MiB (as benchmark_model prints it).
    """

    model: str  # architecture, e.g. xformer_s
    source: str  # what was benchmarked: model name, checkpoint or file as given
    format: str  # torch, torch-compile, onnx, tflite, pte, coreml
    precision: str  # fp32, fp16, int8, ...
    runtime: str  # torch, onnxruntime, litert, executorch, coreml, benchmark_model
    runtime_version: str
    target: str  # host, android:SERIAL, local-benchmark-model
    device: str  # CPU model or phone model
    threads: int
    input_size: tuple[int, int]  # (height, width)
    batch: int = 1
    delegate: str | None = None  # xnnpack, gpu, nnapi (benchmark_model targets)
    file: str | None = None
    file_size_mb: float | None = None
    params: int | None = None
    macs: int | None = None  # per image
    init_ms: float | None = None  # load/compile until ready, excluded from latency
    first_ms: float | None = None  # the first inference
    warmup_mean_ms: float | None = None  # warm-up runs after the first
    latency: LatencyStats | None = None
    fps: float | None = None  # images per second = 1000 * batch / latency.headline
    peak_memory_mb: float | None = None
    memory_method: str | None = None  # what peak_memory_mb measures
    parity: dict | None = None  # against PyTorch: max_abs_err, cosine, top1_agreement
    accuracy: dict | None = None  # with --data: top1, top5, images, pytorch_top1, delta_pt, margin_pt, flagged
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    timestamp: str = ""
    environment: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.latency is not None

    @property
    def median_ms(self) -> float | None:
        return self.latency.headline if self.latency else None

    @property
    def key(self) -> tuple:
        """What identifies a configuration across runs (for --compare)."""
        return (self.model, self.format, self.precision, self.runtime, self.target, self.threads,
                tuple(self.input_size), self.batch, self.delegate)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["latency"] = self.latency.to_dict() if self.latency else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BenchResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["input_size"] = tuple(values["input_size"])
        values["latency"] = LatencyStats.from_dict(d["latency"]) if d.get("latency") else None
        return cls(**values)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def host_environment() -> dict:
    """Where host numbers come from: CPU, cores, OS and the versions of everything that runs a model."""
    from .. import __version__

    packages = ("torch", "numpy", "onnxruntime", "ai-edge-litert", "executorch", "coremltools")
    threading = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                 if k in os.environ}
    return {"cpu": _cpu_model(), "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "machine": platform.machine(), "os": platform.platform(), "python": sys.version.split()[0],
            "xformer": __version__, **threading, **{name: v for name in packages if (v := _version(name))}}


def save_results(results: list[BenchResult], path: str | Path, config: dict | None = None) -> Path:
    from ..checkpoint import atomic_path

    path = Path(path)
    document = {"format": RESULTS_FORMAT, "created": now(), "config": config or {},
                "results": [r.to_dict() for r in results]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def load_results(path: str | Path) -> list[BenchResult]:
    """Records from a results.json written by `save_results` (or `xformer bench --out`)."""
    from ..errors import UsageError

    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != RESULTS_FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, expected {RESULTS_FORMAT!r}")
        return [BenchResult.from_dict(d) for d in document["results"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"cannot read benchmark results from {path} ({err}); pass a results.json written by "
                           "`xformer bench --out DIR`") from err
