"""Parallel export: one request split into jobs that share no work, run in worker processes.

Conversions are CPU-bound and single-threaded, so a request for several formats finishes sooner with one
worker per core. A job is a format's precisions that share a conversion (ONNX's float graph, TFLite's float
flatbuffer, CoreML's traced program); precisions that share nothing with the others (the format table's
`own_job`) get a job of their own. The longest jobs start first. Workers export and check one file at a time
and send it back whole (record and printed lines), so the main process keeps one progress bar and prints each
file's lines together, in the order the files finish.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import queue
import signal
import sys

from rich.text import Text

from .. import logs
from ..console import err_console as console
from .formats import FORMATS, ExportFormat

__all__ = ["default_jobs", "export_in_workers", "split_jobs"]

# Seconds per file for XFormer-S at 256x256 on one core (Nov 2026, with parity): only the order of the jobs
# depends on them, so a file not listed counts as a quick one.
_SECONDS = {("onnx", "fp32"): 30, ("tflite", "fp32"): 30, ("tflite", "int8"): 56, ("tflite", "w8a16"): 40,
            ("coreml", "fp32"): 40, ("coreml", "fp16"): 20, ("coreml", "int8"): 20, ("coreml", "palette6"): 25,
            ("pte", "fp32"): 40, ("pte", "int8"): 60}
_QUICK = 5
_GRACE = 10  # seconds a worker gets to clean up after Ctrl-C before it is terminated


def default_jobs() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def split_jobs(plan: list[tuple[ExportFormat, str]]) -> list[list[int]]:
    """The plan's positions grouped into jobs that share no work, the longest (estimated) first."""
    jobs: dict[tuple[str, str], list[int]] = {}
    for index, (fmt, precision) in enumerate(plan):
        jobs.setdefault((fmt.name, precision if precision in fmt.own_job else ""), []).append(index)
    cost = {key: sum(_SECONDS.get((plan[i][0].name, plan[i][1]), _QUICK) for i in job) for key, job in jobs.items()}
    return [jobs[key] for key in sorted(jobs, key=lambda key: -cost[key])]


def export_in_workers(exporter, plan: list[tuple[ExportFormat, str]], jobs: list[list[int]], workers: int,
                      progress, task) -> dict:
    """Run `jobs` in `workers` spawned processes, each with a copy of `exporter` (exporter.FileExporter); returns
    {plan position: ArtifactRecord} for the files they exported. A model that cannot be pickled returns {} at once,
    and files a worker could not get to (it could not unpickle the model, or died) are missing: the caller exports
    those in this process."""
    try:
        payload = pickle.dumps(exporter)
    except Exception:  # a module of the user's own, defined where another process cannot import it
        return {}
    context = multiprocessing.get_context("spawn")
    todo, done = context.Queue(), context.Queue()
    for job in jobs:
        todo.put([(i, plan[i][0].name, plan[i][1]) for i in job])
    for _ in range(workers):
        todo.put(None)
    settings = {"verbose": logs.verbose(), "width": console.width}
    processes = [context.Process(target=_work, args=(payload, settings, todo, done), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    records, running, finished = {}, {}, 0
    try:
        while finished < workers:
            try:
                kind, index, value = done.get(timeout=1)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and done.empty():
                    break
                continue
            if kind == "start":
                running[index] = f"{plan[index][0].name} {plan[index][1]}"
            elif kind == "file":
                record, text = value
                running.pop(index, None)
                if text.strip():
                    console.print(Text.from_ansi(text.rstrip("\n")), soft_wrap=True)
                records[index] = record
                progress.advance(task)
            else:  # "exit": the worker is done, or could not load the model
                finished += 1
            progress.update(task, description=", ".join(running.values()) or "")
    except BaseException:
        _stop(processes)
        raise
    for process in processes:
        process.join()
    return records


def _stop(processes: list) -> None:
    """Ctrl-C (or an error) in this process: interrupt the workers, give them time to remove their temporary
    files, then end them."""
    for process in processes:  # a Ctrl-C in the terminal reached them too: let that one finish first
        process.join(2)
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    for process in processes:
        process.join(_GRACE)
        if process.is_alive():
            process.terminate()
            process.join()


def _work(payload: bytes, settings: dict, todo, done) -> None:
    """A worker: single-threaded conversions, one file at a time, each file's printed lines captured whole."""
    import torch

    logs.configure(settings["verbose"])
    torch.set_num_threads(1)
    console.width = settings["width"]
    try:
        try:
            exporter = pickle.loads(payload)
        except Exception:  # the module's code is not importable here: the main process exports these files
            return
        while (job := todo.get()) is not None:
            for index, name, precision in job:
                done.put(("start", index, None))
                with _captured() as text:
                    record = exporter(FORMATS[name], precision)
                done.put(("file", index, (record, text.getvalue())))
    except KeyboardInterrupt:  # the main process reports the interruption; atomic writes left no partial file
        pass
    finally:
        done.put(("exit", None, None))


class _captured:
    """sys.stdout and sys.stderr (and so the consoles and `quiet_native`'s replay) into one buffer."""

    def __enter__(self) -> io.StringIO:
        self.saved, self.buffer = (sys.stdout, sys.stderr), io.StringIO()
        sys.stdout = sys.stderr = self.buffer
        return self.buffer

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self.saved
