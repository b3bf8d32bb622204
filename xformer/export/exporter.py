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

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn

from ..checkpoint import atomic_path, load_model
from ..complexity import count_params
from ..console import console as stdout_console
from ..console import err_console as console
from ..errors import MissingExtraError, OptionError, XFormerError
from ..logs import quiet_native
from ..models import list_models
from ..preprocess import PreprocessSpec
from .custom import describe, is_build_function, load_build_function
from .deploy import TARGETS as DEPLOY_TARGETS
from .deploy import deploy_model, has_deploy_form
from .detection_outputs import DetectorOutputs, detection_metadata, resolve_det_outputs
from .formats import FORMATS, ExportFormat, parse_formats
from .metadata import build_metadata
from .parallel import default_jobs, export_in_workers, split_jobs
from .parity import NOT_JUDGED

__all__ = ["ArtifactRecord", "export", "normalize_imgsz"]

REPORT_NAME = "export_report.json"
_FLAGS = {"simplify": "--no-simplify", "channels_last_io": "--nhwc/--nchw"}


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

    @property
    def status(self) -> str:
        """One word for the summary: failed, parity FAILED, not checked (parity could not run here) or ok."""
        if not self.ok:
            return "failed"
        if not self.parity_passed:
            return "parity FAILED"
        if self.parity is not None and self.parity.get("passed") is None:
            return "not checked"
        if self.parity is not None and self.parity.get("judged") is False:
            return "not judged"
        return "ok"


def normalize_imgsz(imgsz: int | tuple[int, int] | list[int] | str | None, default: tuple[int, int],
                    stride: int = 32) -> tuple[int, int]:
    """(height, width) from 256, "256", "512x1024", (512, 1024); both must be multiples of the network's stride
    (32 for the registered models; a module of your own is taken at any size)."""
    if imgsz is None:
        size = default
    elif isinstance(imgsz, str):
        parts = imgsz.lower().replace(",", "x").split("x")
        try:
            size = (int(parts[0]), int(parts[-1]))
        except ValueError as err:
            raise OptionError(f"image size {imgsz!r} is not a number or HxW (e.g. 256 or 512x1024)") from err
    elif isinstance(imgsz, int):
        size = (imgsz, imgsz)
    else:
        size = (int(imgsz[0]), int(imgsz[-1]))
    if any(s <= 0 or s % stride for s in size):
        raise OptionError(f"image size {size[0]}x{size[1]} is not a multiple of {stride} (the network's stride); "
                          f"try {max(stride, round(size[0] / stride) * stride)}")
    return size


def _plan(formats: list[ExportFormat], precisions: list[str] | None) -> list[tuple[ExportFormat, str]]:
    if not precisions:
        return [(f, p) for f in formats for p in f.default_precisions]
    for p in precisions:
        if not any(p in f.precisions for f in formats):
            supported = "; ".join(f"{f.name}: {', '.join(f.precisions)}" for f in formats)
            raise OptionError(f"precision {p!r} is not supported by {', '.join(f.name for f in formats)} "
                              f"(supported: {supported})")
    plan = [(f, p) for f in formats for p in precisions if p in f.precisions]
    for f in formats:
        skipped = [p for p in precisions if p not in f.precisions]
        if skipped:
            console.print(f"[yellow]note:[/] {f.name} does not support {', '.join(skipped)}; skipped")
    return plan


def option_flag(option: str) -> str:
    """The `xformer export` flag of a format option (the format table names options as Python keywords)."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def _check_request(plan: list[tuple[ExportFormat, str]], channels_last_io: bool | None, options: dict,
                   validate: bool) -> None:
    """Options that cannot apply to what was asked for fail here, before any slow conversion."""
    planned = {(f.name, p) for f, p in plan}
    if validate:
        from ..samples import sample_images

        try:
            sample_images()
        except MissingExtraError as err:
            raise MissingExtraError("the parity check (on the sample photos; or pass --no-validate)", err.extra,
                                    "scikit-image / matplotlib") from err
    requested = list(dict.fromkeys(f for f, _ in plan))
    given = {**options, "channels_last_io": channels_last_io}
    for option, value in given.items():
        takers = [f.name for f in FORMATS.values() if option in f.options]
        if value is None or not takers or any(option in f.options for f in requested):
            continue
        raise OptionError(f"{option_flag(option)} is an option of {', '.join(takers)}, and this request exports "
                          f"{', '.join(f.name for f in requested)}: drop {option_flag(option)} or add "
                          f"--formats {','.join([*(f.name for f in requested), takers[0]])}")
    if options.get("opset") is not None:
        from .onnx_export import MIN_OPSET

        if options["opset"] < MIN_OPSET:
            raise OptionError(f"--opset {options['opset']} is too old: the ONNX exporter needs opset >= {MIN_OPSET}")
    if options.get("int8_io") and ("tflite", "int8") not in planned:
        raise OptionError("--int8-io applies to TFLite int8 files only; add --precisions int8 or drop --int8-io")
    if options.get("int8_float_layers") is not None:
        if ("tflite", "int8") not in planned:
            raise OptionError("--int8-float-layers applies to TFLite int8 files only; add --precisions int8 or drop it")
        if options["int8_float_layers"] == "auto" and options.get("calib") is None:
            raise OptionError("--int8-float-layers auto judges int8 on held-out calibration images, and the sample "
                              "photos are too few: add --calib DIR (100+ images like the model's inputs)")
    if options.get("calib") is not None:
        from .calibration import image_files

        image_files(Path(options["calib"]))
    if options.get("pte_backend") == "coreml" and ("pte", "int8") in planned:
        raise OptionError("the Core ML backend of .pte files lowers fp32 only; drop int8 or use --pte-backend xnnpack")
    if channels_last_io and options.get("coreml_input", "image") == "image" and any(n == "coreml" for n, _ in planned):
        raise OptionError("CoreML image inputs take pixel buffers, whose layout CoreML handles; --nhwc applies to "
                          "tensor inputs only: add --coreml-input tensor or drop --nhwc")


def _file_size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def export(source: nn.Module | str | Path, formats: str | list[str] = ("onnx",), precisions: list[str] | None = None,
           imgsz: int | tuple[int, int] | str | None = None, out_dir: str | Path = "runs/export", deploy: bool = True,
           validate: bool = True, input_size: int | tuple[int, int] | None = None, labels: list[str] | None = None,
           preprocess: PreprocessSpec | None = None, jobs: int | None = 1, **options) -> list[ArtifactRecord]:
    """Export `source` to every format x precision: a registered name, a checkpoint path, `file.py:build_fn`, a
    registered model, or any classifier `nn.Module` of your own.

    A module of your own is described by `input_size`, `labels` and `preprocess` (see `custom.describe`) and
    exported as it is. `options` are format options from the format table (dynamic_batch, simplify, opset,
    channels_last_io, calib, ...). `jobs` worker processes export formats in parallel: 1 (the default) exports in
    this process, None one per usable CPU core (as `xformer export` does), at most one per independent job; the
    workers are spawned, so a script that asks for them needs the `if __name__ == "__main__":` guard. Returns one
    record per file, in plan order; failures are recorded, not raised, so one format failing does not stop the
    others. Raises OptionError for a request that is wrong as a whole.
    """
    plan = _plan(parse_formats(formats), list(precisions) if precisions else None)
    if jobs is not None and jobs < 1:
        raise OptionError(f"--jobs {jobs}: give 1 (export in this process) or more worker processes")
    if is_build_function(source):
        source = load_build_function(source)
    model = source if isinstance(source, nn.Module) else load_model(source)[0]
    own = getattr(model, "model_config", None) is None
    if own:
        model = describe(model, input_size or (normalize_imgsz(imgsz, (0, 0), stride=1) if imgsz else None), labels,
                         preprocess)
    elif any(v is not None for v in (input_size, labels, preprocess)):
        raise OptionError(f"input_size, labels and preprocess describe a module of your own; "
                          f"{model.model_config.arch} carries its config already (use imgsz for another size)")
    config = model.model_config
    input_size = normalize_imgsz(imgsz, config.preprocess.input_size, stride=32 if config.arch in list_models() else 1)
    out_dir = Path(out_dir)
    channels_last_io = options.pop("channels_last_io", None)  # passed to exporters as its own argument
    det_outputs = options.pop("det_outputs", None)  # a detector's output form, per format
    _check_request(plan, channels_last_io, options, validate)
    detector = config.task == "detect"
    if det_outputs is not None and not detector:
        raise OptionError(f"--det-outputs chooses a detector's outputs; {config.arch} is a {config.task} model: "
                          "drop --det-outputs")
    det_forms = {f.name: resolve_det_outputs(f, det_outputs) for f, _ in plan} if detector else {}
    request = ExportRequest(out_dir, input_size, deploy, validate, channels_last_io, options, det_forms)
    groups = split_jobs(plan)
    workers = min(default_jobs() if jobs is None else jobs, len(groups))
    done: dict[int, ArtifactRecord] = {}
    columns = (TextColumn("export {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=len(plan))
        exporter = FileExporter(model, request)
        if workers > 1:
            done = export_in_workers(exporter, plan, groups, workers, progress, task)
        for index, (fmt, precision) in enumerate(plan):  # what the workers did not export (or all, in one job)
            if index not in done:
                progress.update(task, description=f"{fmt.name} {precision}")
                done[index] = exporter(fmt, precision, lambda stage: progress.update(task, description=stage))
                progress.advance(task)
    records = [done[index] for index in range(len(plan))]
    write_report(records, out_dir, model)
    return records


@dataclass
class ExportRequest:
    """What every file of one export call shares besides the model (picklable: worker processes get a copy)."""

    out_dir: Path
    input_size: tuple[int, int]
    deploy: bool
    validate: bool
    channels_last_io: bool | None
    options: dict
    det_forms: dict[str, str | None]


class FileExporter:
    """Exports and checks one file at a time, keeping what a request's files share in one process: the deploy
    forms (one per target and layout) and the parity inputs and reference logits (computed once)."""

    def __init__(self, model: nn.Module, request: ExportRequest):
        self.model, self.request = model, request
        self.forms: dict[tuple, nn.Module] = {}
        self.reference_inputs = None

    def __call__(self, fmt: ExportFormat, precision: str, stage=None) -> ArtifactRecord:
        r = self.request
        record = _export_one(self.model, fmt, precision, r.out_dir, r.input_size, r.deploy, r.channels_last_io,
                             self.forms, r.options, r.det_forms.get(fmt.name))
        if record.ok and r.validate:
            if stage is not None:
                stage(f"{fmt.name} {precision}: parity")
            with quiet_native():
                self.reference_inputs = _validate(record, self.model, r.input_size, self.reference_inputs,
                                                  r.options.get("calib"))
        return record


def _export_one(model: nn.Module, fmt: ExportFormat, precision: str, out_dir: Path, input_size: tuple[int, int],
                deploy: bool, channels_last_io: bool | None, forms: dict[tuple, nn.Module],
                options: dict, det_form: str | None) -> ArtifactRecord:
    """One file: the form to ship (built once per target and layout; a detector's with its output form on top),
    converted, timed and reported."""
    config = model.model_config
    record = ArtifactRecord(fmt.name, precision, deploy=deploy)
    start = time.perf_counter()
    with quiet_native():  # converters' own log lines are dropped; ours are kept, in order
        try:
            fmt.require()
            channels_last = fmt.channels_last_default if channels_last_io is None else channels_last_io
            target = fmt.name if fmt.name in DEPLOY_TARGETS else "generic"
            key = (target if deploy and has_deploy_form(model) else "training", channels_last)
            if key not in forms:
                forms[key] = deploy_model(model, channels_last, target) if key[0] != "training" else \
                    _training_form(model, channels_last)
            form = forms[key]
            metadata = build_metadata(model, format=fmt.name, precision=precision,
                                      layout="NHWC" if channels_last else "NCHW", input_size=input_size,
                                      deploy=deploy, params=count_params(model))
            if det_form is not None:
                form = DetectorOutputs(form, model, det_form).eval()
                metadata["detection"] = detection_metadata(model, det_form)
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
            console.print(f"[green]{fmt.name} {precision}:[/] {path}, {record.size_mb:.2f} MB, "
                          f"{record.seconds:.1f} s")
            slow = fmt.reference_kernels.get(precision)
            if slow:
                record.details["reference_kernels_on_cpu"] = slow
                console.print(f"  [bold yellow]warning:[/] {slow}", highlight=False, soft_wrap=True)
        except XFormerError as err:
            record.error = str(err)
        except Exception as err:  # a converter crash is recorded and the other formats still run
            record.error = f"{type(err).__name__}: {err}"
    if record.error:
        record.seconds = time.perf_counter() - start
        console.print(f"[bold red]{fmt.name} {precision} failed:[/] {record.error}", highlight=False)
    return record


def _training_form(model: nn.Module, channels_last_io: bool) -> nn.Module:
    from .deploy import ChannelsLastInput

    if not channels_last_io:
        return model
    wrapped = ChannelsLastInput(model).eval()
    wrapped.model_config = model.model_config
    return wrapped


def _validate(record: ArtifactRecord, model: nn.Module, input_size: tuple[int, int], cache,
              calib: str | None = None):
    """Parity of the new file against `model`; the reference logits are computed once per export call.

    The images are the calibration folder's when one is given (PARITY_IMAGES of them, evenly spaced): they
    are what the model is for, so a quantised file is judged on its own domain; a digits classifier's logits
    on photos of cats say nothing about its int8 error. Otherwise the sample photos."""
    from ..runtimes import load
    from .parity import check_parity, parity_inputs, reference_logits

    try:
        runtime = load(record.path)
    except XFormerError as err:
        record.parity = {"passed": None, "not_run": str(err)}
        console.print(f"  parity not run: {err}")
        # CoreML cannot predict off macOS; its exporters (.mlpackage, and .pte lowered to Core ML) evaluated the
        # saved MIL program instead, which then stands for the parity here (and fails the record when it fails).
        mil = record.details.get("mil_parity")
        if mil is not None:
            record.parity = {**mil, "not_run": str(err)}
            verdict = _verdict(mil)
            if "matched" in mil:  # a detector's
                console.print(f"  MIL parity: {_boxes_line(mil, 'photos')} {verdict}", soft_wrap=True)
                return cache
            agreement = f"top-1 {mil['top1_agreement']:.0%}" if mil.get("pixel_agreement") is None else \
                f"argmax pixels {mil['pixel_agreement']:.4%}"
            console.print(f"  MIL parity: max abs err {mil['max_abs_err']:.2e}, cosine {mil['cosine']:.6f}, "
                          f"{agreement} {verdict}")
        return cache
    detector = model.model_config.task == "detect"
    try:
        if cache is None:
            spec = model.model_config.preprocess.with_input_size(input_size)
            batch, photos = parity_inputs(spec, _parity_images(calib))
            cache = (batch, photos, None if detector else reference_logits(model, batch))
        batch, photos, expected = cache
        if detector:
            return _validate_detections(record, runtime, model, (batch, photos), cache, calib)
        report = check_parity(runtime, model, record.precision, inputs=(batch, photos), expected=expected)
    except Exception as err:  # the file exists but could not be checked: that fails the check, never passes it
        message = str(err) if isinstance(err, XFormerError) else f"{type(err).__name__}: {err}"
        record.parity = {"passed": False, "failures": [f"parity could not be measured: {message}"]}
        console.print(f"  [bold red]parity FAILED[/]: could not be measured ({message})", highlight=False)
        return cache
    record.parity = report.to_dict()
    verdict = _verdict(record.parity)
    agreement = f"top-1 {report.top1_agreement:.0%}" if report.pixel_agreement is None else \
        f"argmax pixels {report.pixel_agreement:.4%}"
    console.print(f"  parity: max abs err {report.max_abs_err:.2e}, cosine {report.cosine:.6f}, {agreement} "
                  f"({report.photos} {'calibration images' if calib else 'photos'} + {report.random_inputs} random) "
                  f"{verdict}", soft_wrap=True)
    return cache


def _validate_detections(record: ArtifactRecord, runtime, model: nn.Module, inputs, cache, calib: str | None):
    from .parity import check_detection_parity

    report = check_detection_parity(runtime, model, record.precision, inputs)
    record.parity = report.to_dict()
    console.print(f"  parity: {_boxes_line(record.parity, 'calibration images' if calib else 'photos')} "
                  f"{_verdict(record.parity)}", soft_wrap=True)
    return cache


def _boxes_line(parity: dict, images: str) -> str:
    return (f"{parity['matched']}/{parity['reference_boxes']} boxes matched, {parity['missing']} missing, "
            f"{parity['extra']} extra ({parity['borderline']} at the threshold, {parity['ties']} NMS ties), "
            f"min IoU {parity['min_iou']:.4f}, max score err {parity['max_score_err']:.1e} ({parity['photos']} "
            f"{images} + {parity['random_inputs']} random, score >= {parity['score_threshold']:.2g})")


PARITY_IMAGES = 16


def _parity_images(calib: str | None) -> list[Path] | None:
    if calib is None:
        return None
    from .calibration import image_files

    files = image_files(Path(calib))
    return files[:: -(-len(files) // PARITY_IMAGES)]


def _verdict(parity: dict) -> str:
    if not parity["passed"]:
        return f"[bold red]FAILED[/] ({'; '.join(parity['failures'])})"
    return "[green]ok[/]" if parity.get("judged", True) else f"[yellow]{NOT_JUDGED}[/]"


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
    """The export table (fits 80 columns: format and precision are in the file name), what failed and why,
    then the commands to use each file."""
    out = out or stdout_console
    table = Table(title="Export", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("file", "MB", "s", "max err", "cosine", "top-1", "status"):
        table.add_column(column, justify="left" if column in ("file", "status") else "right", no_wrap=True)
    for r in records:
        p = r.parity or {}
        table.add_row(r.path.name if r.path else f"{r.format} {r.precision}", f"{r.size_mb:.2f}" if r.ok else "-",
                      f"{r.seconds:.1f}", f"{p['max_abs_err']:.1e}" if "max_abs_err" in p else "-",
                      f"{p['cosine']:.6f}" if "cosine" in p else "-",
                      f"{p['pixel_agreement']:.3%} px" if p.get("pixel_agreement") is not None else
                      f"{p['top1_agreement']:.0%}" if "top1_agreement" in p else "-", r.status)
    out.print(table)
    for r in records:
        reason = r.error or "; ".join((r.parity or {}).get("failures") or []) or (r.parity or {}).get("not_run")
        if r.status == "not judged":
            reason = (f"{NOT_JUDGED}; quantisation error depends on the weights: export a trained checkpoint "
                      "to judge it")
        if reason and r.status != "ok":
            out.print(f"  {r.path.name if r.path else f'{r.format} {r.precision}'}: {reason}", highlight=False,
                      soft_wrap=True)
    for r in records:
        gpu = r.details.get("gpu")
        if r.ok and gpu is not None:  # TFLite: what decides whether a phone's GPU delegate takes the whole graph
            in_attention = r.details.get("attention_transposes")
            out.print(f"  {r.path.name}: {r.details['ops']} ops, {r.details['transposes']} TRANSPOSE"
                      f"{'' if in_attention is None else f' ({in_attention} in attention layers)'}, "
                      f"GPU-incompatible ops: {gpu['incompatible']} {gpu['incompatible_ops'] or ''}",
                      highlight=False, soft_wrap=True)
    for r in records:
        delegation = r.details.get("delegation")
        if r.ok and delegation is not None:  # ExecuTorch: every op outside a delegate runs on reference kernels
            portable = ", ".join(f"{op} x{n}" for op, n in delegation["portable_ops"].items()) or "none"
            backends = ", ".join(f"{n} {name}" for name, n in delegation["backends"].items()) or "no delegate"
            out.print(f"  {r.path.name}: {backends} partition(s), {delegation['delegated_ops']} ops delegated "
                      f"({delegation['coverage']:.0%}); on portable kernels: {portable}")
    for r in records:
        if r.ok:
            out.print(f"  use: xformer predict {r.path} image.jpg; xformer bench {r.path}", highlight=False,
                      soft_wrap=True)
