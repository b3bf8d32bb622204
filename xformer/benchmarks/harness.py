"""The benchmark run: a `BenchConfig` in, one `BenchResult` per configuration out, whatever the target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import OptionError
from .plan import RunPlan
from .record import BenchResult
from .sources import peers_of, resolve_sources

__all__ = ["HOST_FORMATS", "TARGETS", "BenchConfig", "make_target", "run_benchmarks"]

HOST_FORMATS = ["torch", "onnx", "tflite"]
TARGETS = ("host", "android[:SERIAL]", "local-benchmark-model")


@dataclass
class BenchConfig:
    """Everything a benchmark run needs; `xformer bench` flags and suite files map onto these fields."""

    sources: list[str]
    formats: list[str] | None = None  # None: torch, onnx, tflite on the host; tflite on benchmark_model targets
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    threads: list[int] = field(default_factory=lambda: [1])
    imgsz: list[int | list[int]] = field(default_factory=list)  # 256 or [h, w]; empty: each model's own size
    batch: int = 1
    warmup: int = 5
    runs: int = 30
    min_seconds: float = 0.0
    max_seconds: float = 30.0
    rounds: int = 5  # host: timed runs are interleaved across a model's configurations in this many rounds
    peers: bool = False  # add mobilevit_s, mobilenetv2_100 and deit_tiny (detectors: mobilenetv2_yolov3)
    target: str = "host"
    delegates: list[str] = field(default_factory=lambda: ["xnnpack"])
    taskset: str | None = None
    benchmark_model: str | None = None
    benchmark_model_args: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    model: str | None = None  # architecture of a plain state_dict
    data: str | None = None  # image folder: adds a top-1 column, judged against PyTorch's
    margin_float: float = 0.3  # percentage points below PyTorch's top-1 that flag a float row
    margin_int8: float = 1.0  # ... and a quantised row

    @property
    def all_sources(self) -> list[str]:
        extra = [p for p in peers_of(self.sources) if self.peers and p not in self.sources]
        return list(self.sources) + extra

    @property
    def calibration_folder(self) -> str | None:
        """With --data, static int8 files are calibrated on its training split (else on its val images)."""
        if not self.data:
            return None
        from ..datasets import find_split

        train = Path(self.data) / "train"
        return str(train if train.is_dir() else find_split(self.data, "val"))

    @property
    def plan(self) -> RunPlan:
        return RunPlan(self.warmup, self.runs, self.min_seconds, self.max_seconds)

    @property
    def target_formats(self) -> list[str]:
        if self.formats:
            return list(self.formats)
        return HOST_FORMATS if self.target == "host" else ["tflite"]

    def validate(self) -> None:
        problems = []
        if not self.all_sources:
            problems.append("give at least one model name, checkpoint or exported file (or --peers)")
        if self.runs < 1 or self.warmup < 0 or self.batch < 1 or self.min_seconds < 0:
            problems.append("--runs and --batch must be >= 1, --warmup and --min-seconds >= 0")
        if self.max_seconds <= 0 or self.max_seconds < self.min_seconds:
            problems.append("--max-seconds must be > 0 and at least --min-seconds")
        if not self.threads or min(self.threads) < 1:
            problems.append("--threads takes positive counts, e.g. --threads 1,2,4")
        if self.target != "host":
            if set(self.target_formats) != {"tflite"}:
                problems.append(f"target {self.target} runs benchmark_model, which takes .tflite only: "
                                "use --formats tflite")
            if self.batch != 1:
                problems.append(f"target {self.target} benchmarks the file's own batch size: drop --batch")
            if self.data:
                problems.append("--data measures accuracy on the host: run it without --target")
        if self.data:
            from ..datasets import find_split

            find_split(self.data, "val")
        if problems:
            raise OptionError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


def make_target(config: BenchConfig):
    """The target named by `config.target`; adb and the benchmark_model binary are checked here, before exporting."""
    kind, _, serial = config.target.partition(":")
    options = dict(threads=config.threads, plan=config.plan)
    tool = dict(delegates=config.delegates, taskset=config.taskset, extra_args=config.benchmark_model_args)
    if kind == "host" and not serial:
        from .host import HostTarget

        return HostTarget(batch=config.batch, rounds=config.rounds, **options)
    if kind == "android":
        from .android import AndroidTarget

        return AndroidTarget(serial or None, config.benchmark_model, **options, **tool)
    if kind == "local-benchmark-model" and not serial:
        from .benchmark_model import LocalBenchmarkModelTarget

        return LocalBenchmarkModelTarget(config.benchmark_model, **options, **tool)
    raise OptionError(f"unknown target {config.target!r}; choose from {', '.join(TARGETS)}")


def run_benchmarks(config: BenchConfig, console: Console | None = None) -> list[BenchResult]:
    """Resolve (and export) the sources, then benchmark every configuration on the target."""
    console = console or Console(stderr=True)
    config.validate()
    target = make_target(config)
    def log(message: str) -> None:
        console.print(f"[dim]{message}[/]", highlight=False, soft_wrap=True)

    artifacts = resolve_sources(config.all_sources, config.target_formats, config.precisions, config.imgsz or [None],
                                model_name=config.model, cache_dir=Path(config.cache_dir) if config.cache_dir else None,
                                log=log, calib=config.calibration_folder)
    if config.target != "host":
        wrong = [a.source for a in artifacts if a.format != "tflite"]
        if wrong:
            raise OptionError(f"target {config.target} runs .tflite files only, not: {', '.join(wrong)}")
    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=target.planned_runs(artifacts))
        results = target.run(artifacts, lambda n, what: progress.update(task, advance=n, description=what))
    if config.data:
        from .accuracy import add_accuracy

        log(f"measuring top-1 on {config.data}")
        add_accuracy(results, artifacts, config.data, config.margin_float, config.margin_int8,
                     threads=max(config.threads), console=console)
    return results
