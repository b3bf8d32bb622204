"""The export spine: one call turns a model or checkpoint into files for every requested format and
precision, checks each against PyTorch, and writes `export_report.json`.

Every format goes through the same steps (Ultralytics-style): validate the request against the format
table, build the deploy form, export to a temporary file and rename it into place, time it, measure
parity, print "format: path, size, seconds" or the error, and carry on with the next format.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from torch import nn

from ..checkpoint import atomic_path, load_model
from ..errors import ExportError, XFormerError
from .deploy import TARGETS as DEPLOY_TARGETS
from .deploy import deploy_model, has_deploy_form
from .formats import ExportFormat, parse_formats
from .metadata import build_metadata

__all__ = ["ArtifactRecord", "export", "normalize_imgsz"]

REPORT_NAME = "export_report.json"
console = Console(stderr=True)


@dataclass
class ArtifactRecord:
    """What one export produced: the file, how long it took, what is inside and how well it matches PyTorch."""

    format: str
    precision: str
    path: Path | None = None
    ok: bool = False
    error: str | None = None
    size_mb: float = 0.0
    seconds: float = 0.0
    deploy: bool = True
    op_histogram: dict = field(default_factory=dict)
    max_rank: int | None = None
    parity: dict | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path) if self.path else None
        return d

    @property
    def parity_passed(self) -> bool:
        return self.parity is None or bool(self.parity.get("passed", True))


def normalize_imgsz(imgsz: int | tuple[int, int] | list[int] | str | None, default: tuple[int, int]) -> tuple[int, int]:
    """(height, width) from 256, "256", "512x1024", (512, 1024); both must be multiples of 32."""
    if imgsz is None:
        size = default
    elif isinstance(imgsz, str):
        parts = imgsz.lower().replace(",", "x").split("x")
        try:
            size = (int(parts[0]), int(parts[-1]))
        except ValueError as err:
            raise ExportError(f"image size {imgsz!r} is not a number or HxW (e.g. 256 or 512x1024)") from err
    elif isinstance(imgsz, int):
        size = (imgsz, imgsz)
    else:
        size = (int(imgsz[0]), int(imgsz[-1]))
    if any(s <= 0 or s % 32 for s in size):
        raise ExportError(f"image size {size[0]}x{size[1]} is not a multiple of 32 (the network's stride); "
                          f"try {max(32, round(size[0] / 32) * 32)}")
    return size


def _plan(formats: list[ExportFormat], precisions: list[str] | None) -> list[tuple[ExportFormat, str]]:
    if not precisions:
        return [(f, p) for f in formats for p in f.default_precisions]
    for p in precisions:
        if not any(p in f.precisions for f in formats):
            supported = "; ".join(f"{f.name}: {', '.join(f.precisions)}" for f in formats)
            raise ExportError(f"precision {p!r} is not supported by {', '.join(f.name for f in formats)} "
                              f"(supported: {supported})")
    plan = [(f, p) for f in formats for p in precisions if p in f.precisions]
    for f in formats:
        skipped = [p for p in precisions if p not in f.precisions]
        if skipped:
            console.print(f"[yellow]note:[/] {f.name} does not support {', '.join(skipped)}; skipped")
    return plan


def _check_request(plan: list[tuple[ExportFormat, str]], channels_last_io: bool | None, options: dict) -> None:
    """Options that cannot apply to what was asked for fail here, before any slow conversion."""
    planned = {(f.name, p) for f, p in plan}
    if options.get("int8_io") and ("tflite", "int8") not in planned:
        raise ExportError("--int8-io applies to TFLite int8 files only; add --precisions int8 or drop --int8-io")
    if options.get("calib") is not None:
        from .calibration import image_files

        image_files(Path(options["calib"]))
    if channels_last_io and options.get("coreml_input", "image") == "image" and any(n == "coreml" for n, _ in planned):
        raise ExportError("CoreML image inputs take pixel buffers, whose layout CoreML handles; --nhwc applies to "
                          "tensor inputs only: add --coreml-input tensor or drop --nhwc")


def _file_size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def export(source: nn.Module | str | Path, formats: str | list[str] = ("onnx",), precisions: list[str] | None = None,
           imgsz: int | tuple[int, int] | str | None = None, out_dir: str | Path = "runs/export", deploy: bool = True,
           validate: bool = True, **options) -> list[ArtifactRecord]:
    """Export `source` (a model, checkpoint path or registered name) to every format x precision.

    `options` are format options from the format table (dynamic_batch, simplify, opset, channels_last_io,
    calib, ...). Returns one record per file; failures are recorded, not raised, so one format failing
    does not stop the others. Raises ExportError only for a request that is wrong as a whole.
    """
    plan = _plan(parse_formats(formats), list(precisions) if precisions else None)
    model = source if isinstance(source, nn.Module) else load_model(source)[0]
    config = model.model_config
    input_size = normalize_imgsz(imgsz, config.preprocess.input_size)
    out_dir = Path(out_dir)
    records = []
    reference_inputs = None
    channels_last_io = options.pop("channels_last_io", None)  # passed to exporters as its own argument
    _check_request(plan, channels_last_io, options)
    for fmt, precision in plan:
        record = ArtifactRecord(fmt.name, precision, deploy=deploy)
        start = time.perf_counter()
        try:
            fmt.require()
            channels_last = fmt.channels_last_default if channels_last_io is None else channels_last_io
            target = fmt.name if fmt.name in DEPLOY_TARGETS else "generic"
            if deploy and has_deploy_form(model):
                form = deploy_model(model, channels_last, target)
            else:
                form = _training_form(model, channels_last)
            metadata = build_metadata(model, format=fmt.name, precision=precision,
                                      layout="NHWC" if channels_last else "NCHW", input_size=input_size,
                                      deploy=deploy)
            path = out_dir / f"{config.arch}_{precision}{fmt.suffix}"
            with atomic_path(path, directory=fmt.directory) as tmp:
                details = fmt.load_exporter()(form, tmp, input_size=input_size, channels_last_io=channels_last,
                                              metadata=metadata, precision=precision, reference=model, **options)
            record.path, record.ok = path, True
            record.seconds = time.perf_counter() - start
            record.size_mb = _file_size_mb(path)
            record.op_histogram = details.pop("op_histogram", {})
            record.max_rank = details.pop("max_rank", None)
            record.details = details
            console.print(f"[green]{fmt.name} {precision}:[/] {path}, {record.size_mb:.2f} MB, {record.seconds:.1f} s")
            if validate:
                reference_inputs = _validate(record, model, input_size, reference_inputs)
        except XFormerError as err:
            record.error = str(err)
        except Exception as err:  # a converter crash is recorded and the other formats still run
            record.error = f"{type(err).__name__}: {err}"
        if record.error:
            record.seconds = time.perf_counter() - start
            console.print(f"[bold red]{fmt.name} {precision} failed:[/] {record.error}", highlight=False)
        records.append(record)
    write_report(records, out_dir, model)
    return records


def _training_form(model: nn.Module, channels_last_io: bool) -> nn.Module:
    from .deploy import ChannelsLastInput

    if not channels_last_io:
        return model
    wrapped = ChannelsLastInput(model).eval()
    wrapped.model_config = model.model_config
    return wrapped


def _validate(record: ArtifactRecord, model: nn.Module, input_size: tuple[int, int], cache):
    """Parity of the new file against `model`; the reference logits are computed once per export call."""
    from ..runtimes import load
    from .parity import check_parity, parity_inputs, reference_logits

    try:
        runtime = load(record.path)
    except XFormerError as err:
        record.parity = {"passed": None, "not_run": str(err)}
        console.print(f"  parity not run: {err}")
        # CoreML cannot predict off macOS; its exporter evaluated the saved MIL program instead, which then
        # stands for the parity here (and fails the record when it fails).
        mil = record.details.get("mil_parity")
        if mil is not None:
            record.parity = {**mil, "not_run": str(err)}
            verdict = "[green]ok[/]" if mil["passed"] else f"[bold red]FAILED[/] ({'; '.join(mil['failures'])})"
            agreement = f"top-1 {mil['top1_agreement']:.0%}" if mil.get("pixel_agreement") is None else \
                f"argmax pixels {mil['pixel_agreement']:.4%}"
            console.print(f"  MIL parity: max abs err {mil['max_abs_err']:.2e}, cosine {mil['cosine']:.6f}, "
                          f"{agreement} {verdict}")
        return cache
    if cache is None:
        spec = model.model_config.preprocess.with_input_size(input_size)
        batch, photos = parity_inputs(spec)
        cache = (batch, photos, reference_logits(model, batch))
    batch, photos, expected = cache
    report = check_parity(runtime, model, record.precision, inputs=(batch, photos), expected=expected)
    record.parity = report.to_dict()
    verdict = "[green]ok[/]" if report.passed else f"[bold red]FAILED[/] ({'; '.join(report.failures)})"
    agreement = f"top-1 {report.top1_agreement:.0%}" if report.pixel_agreement is None else \
        f"argmax pixels {report.pixel_agreement:.4%}"
    console.print(f"  parity: max abs err {report.max_abs_err:.2e}, cosine {report.cosine:.6f}, {agreement} "
                  f"({report.photos} photos + {report.random_inputs} random) {verdict}")
    return cache


def write_report(records: list[ArtifactRecord], out_dir: Path, model: nn.Module) -> Path:
    """Merge these records into out_dir/export_report.json (one entry per file, newest wins)."""
    path = out_dir / REPORT_NAME
    existing = {}
    if path.is_file():
        try:
            entries = json.loads(path.read_text())["files"]
            existing = {e["path"] or f"{e['format']}:{e['precision']}": e for e in entries}
        except (json.JSONDecodeError, KeyError, TypeError):
            existing = {}
    for r in records:
        existing[str(r.path) if r.path else f"{r.format}:{r.precision}"] = {"arch": model.model_config.arch,
                                                                             **r.to_dict()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"files": list(existing.values())}, indent=2, default=str))
    return path


def print_summary(records: list[ArtifactRecord], out: Console | None = None) -> None:
    """The export table, then the exact commands to use each file."""
    out = out or Console()
    table = Table(title="Export")
    for column in ("format", "precision", "file", "MB", "s", "max rank", "max abs err", "cosine", "top-1", "status"):
        table.add_column(column, justify="right" if column in ("MB", "s", "max rank") else "left")
    for r in records:
        p = r.parity or {}
        status = "failed" if not r.ok else "parity FAILED" if not r.parity_passed else "ok"
        table.add_row(r.format, r.precision, r.path.name if r.path else "-", f"{r.size_mb:.2f}", f"{r.seconds:.1f}",
                      str(r.max_rank or "-"), f"{p['max_abs_err']:.1e}" if "max_abs_err" in p else "-",
                      f"{p['cosine']:.6f}" if "cosine" in p else "-",
                      f"{p['pixel_agreement']:.3%} px" if p.get("pixel_agreement") is not None else
                      f"{p['top1_agreement']:.0%}" if "top1_agreement" in p else p.get("not_run", "-")[:30],
                      status if r.ok else f"failed: {r.error[:60]}")
    out.print(table)
    for r in records:
        gpu = r.details.get("gpu")
        if r.ok and gpu is not None:  # TFLite: what decides whether a phone's GPU delegate takes the whole graph
            in_attention = r.details.get("attention_transposes")
            out.print(f"  {r.path.name}: {r.details['ops']} ops, {r.details['transposes']} TRANSPOSE"
                      f"{'' if in_attention is None else f' ({in_attention} in attention layers)'}, "
                      f"GPU-incompatible ops: {gpu['incompatible']} {gpu['incompatible_ops'] or ''}")
    for r in records:
        if r.ok:
            out.print(f"  xformer predict {r.path} image.jpg    xformer bench {r.path}")
