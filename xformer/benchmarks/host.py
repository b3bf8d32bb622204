"""The host CPU target: each artifact runs in its own runtime (PyTorch, onnxruntime, LiteRT, ExecuTorch, CoreML),
one session reused across runs, in this process.

Per configuration (artifact x threads): load (init ms), first inference, warm-up, all under `PeakMemory`. Then
the timed runs of every configuration of one model are interleaved in rounds, so a burst of load from a
neighbour on a shared machine hits all of them alike instead of one unlucky configuration. The input is
converted to the runtime's layout once, outside the timed loop.
"""

from __future__ import annotations

import gc
import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
import torch

from ..export.formats import slow_on_cpu
from ..runtimes import Runtime, load
from ..runtimes.torch_runtime import TorchRuntime
from .memory import PeakMemory
from .plan import RunPlan
from .record import BenchResult, host_environment, now
from .sources import Artifact
from .stats import summarize

__all__ = ["HostTarget", "parity"]


def parity(reference: np.ndarray | list, output, metadata: dict | None = None) -> dict:
    """How far a runtime's logits are from PyTorch's on the same input (segmenters: argmax agreement per pixel;
    detectors, whose PyTorch reference is a list of raw maps: their boxes matched, see export/parity.py)."""
    if isinstance(reference, list):
        from ..export.parity import match_detections

        match = match_detections([r[:1] for r in reference], output, metadata)
        matched = len(match["pairs"]) + match["ties"]
        return {"max_abs_err": max(match["errors"], default=0.0), "min_iou": min(match["pairs"], default=1.0),
                "box_agreement": matched / match["reference"] if match["reference"] else 1.0}
    agreement = None
    if reference.ndim == 4:
        agreement = float((reference.argmax(1) == output.reshape(reference.shape).argmax(1)).mean())
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    out = output.reshape(len(output), -1).astype(np.float64)
    cosine = (ref * out).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1), 1e-12)
    return {"max_abs_err": float(np.abs(ref - out).max()), "cosine": float(cosine.mean()),
            "top1_agreement": float((ref.argmax(1) == out.argmax(1)).mean()) if agreement is None else agreement}


# The library behind each format, imported before memory is measured (see memory.py).
_RUNTIME_LIBRARIES = {"onnx": "onnxruntime", "tflite": "ai_edge_litert.interpreter", "coreml": "coremltools",
                      "pte": "executorch.runtime", "torch-compile": "torch._dynamo"}


def _import_library(fmt: str) -> None:
    if fmt in _RUNTIME_LIBRARIES:
        try:
            importlib.import_module(_RUNTIME_LIBRARIES[fmt])
        except ImportError:  # the runtime's own load reports the missing extra with its fix
            pass


def _load(artifact: Artifact, threads: int) -> Runtime:
    if artifact.module is None:
        return load(artifact.path, threads=threads)
    runtime = TorchRuntime(artifact.module, threads=threads)
    if artifact.format == "torch-compile":
        runtime.model = torch.compile(runtime.model)  # compiles lazily: the cost lands in first_ms
    return runtime


@dataclass
class _Session:
    """One configuration being measured: its record, its live runtime and input, and its timed samples."""

    artifact: Artifact
    threads: int
    record: BenchResult
    runtime: Runtime | None = None
    array: np.ndarray | None = None
    samples: list[float] = field(default_factory=list)

    def activate(self) -> None:
        # torch's thread count is process-wide; every other runtime keeps its own pool per session.
        if isinstance(self.runtime, TorchRuntime):
            torch.set_num_threads(self.threads)

    def time_runs(self, count: int, deadline_ms: float) -> None:
        """Up to `count` timed runs, stopping early once the timed total reaches `deadline_ms`."""
        self.activate()
        run, array = self.runtime.run, self.array
        total = sum(self.samples)
        for _ in range(count):
            start = time.perf_counter_ns()
            run(array)
            self.samples.append((time.perf_counter_ns() - start) / 1e6)
            total += self.samples[-1]
            if total >= deadline_ms:
                break


class HostTarget:
    """Benchmarks artifacts on this machine's CPU."""

    name = "host"

    def __init__(self, threads: list[int], plan: RunPlan, batch: int = 1, rounds: int = 5):
        self.threads, self.plan, self.batch, self.rounds = threads, plan, batch, max(1, rounds)

    def planned_runs(self, artifacts: list[Artifact]) -> int:
        return len(artifacts) * len(self.threads) * (1 + self.plan.warmup + self.plan.runs)

    def run(self, artifacts: list[Artifact], advance: Callable[[int, str], None],
            interleave_models: bool = False) -> list[BenchResult]:
        """Records for artifacts x threads; `advance(n, what)` reports progress in runs.

        One model at one input size shares an input, and its configurations' timed runs interleave; with
        `interleave_models` every model at one input size does, so ratios between models come from the same rounds.
        """
        environment = host_environment()
        results = []
        def key(a: Artifact) -> tuple:
            return a.input_size if interleave_models else (a.model, a.input_size)

        for _, group in groupby(artifacts, key=key):
            results += self._run_group(list(group), environment, advance)
        return results

    def _run_group(self, artifacts: list[Artifact], environment: dict,
                   advance: Callable[[int, str], None]) -> list[BenchResult]:
        height, width = artifacts[0].input_size
        x = np.random.default_rng(0).random((self.batch, 3, height, width), dtype=np.float32)
        references: dict[int, np.ndarray | list] = {}  # logits (a detector's raw maps) of each reference on x
        sessions = []
        for artifact in artifacts:
            for threads in self.threads:
                session = _Session(artifact, threads, self._record(artifact, threads, environment))
                # Parity for everything but eager PyTorch, which is the reference itself.
                checked = artifact.reference is not None and artifact.format != "torch"
                if checked and id(artifact.reference) not in references:
                    torch.set_num_threads(threads)
                    with torch.inference_mode():
                        out = artifact.reference(torch.from_numpy(x))
                        references[id(artifact.reference)] = [o.numpy() for o in out] if isinstance(out, list) else \
                            out.numpy()
                self._prepare(session, x, references[id(artifact.reference)] if checked else None)
                advance(1 + self.plan.warmup, f"{artifact.model} {artifact.format} {artifact.precision} x{threads}")
                sessions.append(session)
        plan = self.plan
        live = [s for s in sessions if s.runtime is not None]
        chunk = math.ceil(plan.runs / self.rounds)
        while live:
            for session in live:
                remaining = plan.runs - len(session.samples)
                count = min(chunk, remaining) if remaining > 0 else chunk  # past `runs` only for --min-seconds
                session.time_runs(count, deadline_ms=1000 * plan.max_seconds)
                advance(max(min(count, remaining), 0), session.record.model)
            live = [s for s in live if plan.wants_more(len(s.samples), sum(s.samples) / 1000)]
        for session in sessions:
            self._finish(session)
        gc.collect()
        return [s.record for s in sessions]

    def _record(self, artifact: Artifact, threads: int, environment: dict) -> BenchResult:
        """The row of one configuration; a precision this CPU runs on reference kernels says so in its warnings."""
        slow = slow_on_cpu(artifact.format, artifact.precision)
        return BenchResult(model=artifact.model, source=artifact.source, format=artifact.format,
                           precision=artifact.precision, runtime="", runtime_version="", target=self.name,
                           device=environment["cpu"], threads=threads, input_size=artifact.input_size,
                           batch=self.batch, file=str(artifact.path) if artifact.path else None,
                           file_size_mb=artifact.size_mb, params=artifact.params, macs=artifact.macs,
                           error=artifact.error, timestamp=now(), environment=environment,
                           warnings=[f"REFERENCE KERNELS: {slow}"] if slow else [])

    def _prepare(self, session: _Session, x: np.ndarray, reference: np.ndarray | None) -> None:
        """Load, first inference and warm-up; a failure marks the record and drops the configuration."""
        record = session.record
        if record.error:
            return
        try:
            _import_library(session.artifact.format)
            with PeakMemory() as memory:
                start = time.perf_counter_ns()
                runtime = _load(session.artifact, session.threads)
                record.init_ms = (time.perf_counter_ns() - start) / 1e6
                record.runtime, record.runtime_version = runtime.name, runtime.version
                array = x if runtime.input_layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
                session.runtime, session.array = runtime, array
                session.activate()
                start = time.perf_counter_ns()
                output = runtime.run(array)
                record.first_ms = (time.perf_counter_ns() - start) / 1e6
                warmup = []
                for _ in range(self.plan.warmup):
                    start = time.perf_counter_ns()
                    runtime.run(array)
                    warmup.append((time.perf_counter_ns() - start) / 1e6)
            record.warmup_mean_ms = float(np.mean(warmup)) if warmup else None
            record.peak_memory_mb, record.memory_method = memory.delta_mb, memory.method
            if reference is not None:
                record.parity = parity(reference, output, runtime.metadata)
        except Exception as err:  # one runtime failing must not stop the others; the row says why
            record.error = f"{type(err).__name__}: {err}"
            session.runtime = session.array = None

    def _finish(self, session: _Session) -> None:
        record = session.record
        if session.samples:
            record.latency = summarize(session.samples)
            record.fps = 1000 * self.batch / record.latency.headline
            load, cores = record.environment.get("load_average_1m"), record.environment.get("usable_cores")
            if session.threads > 1 and load and cores and load > cores:
                record.warnings.append(f"the machine was busy (load {load:g} on {cores} cores): threads that "
                                       "spin-wait for each other stall, so multi-thread numbers are unreliable; "
                                       "rerun on a quiet machine (PyTorch: or with OMP_WAIT_POLICY=PASSIVE)")
            if len(session.samples) < self.plan.runs:
                record.warnings.append(f"only {len(session.samples)} of {self.plan.runs} timed runs: stopped at "
                                       f"--max-seconds {self.plan.max_seconds:g}")
        session.runtime = session.array = None
