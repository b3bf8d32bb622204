"""The `xformer` command. Each subcommand is a small function over the library API; errors that users can
fix (XFormerError) print one line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from . import __version__, android, logs
from .benchmarks import command as bench
from .console import console, err_console
from .errors import ModelFileError, OptionError, XFormerError

SEEDED_NOTE = ("[yellow]note:[/] {name} has no trained weights here (none can be downloaded); using deterministic "
               "seeded weights, so predictions are not meaningful. Pass a checkpoint for real results.")


def _cmd_models(args: argparse.Namespace) -> None:
    from .complexity import count_macs, count_params
    from .models import create_model, get_model_entry, list_models

    table = Table(title="Registered models")
    for column in ("name", "params (M)", "GMACs", "input", "attention", "description"):
        table.add_column(column, justify="right" if column in ("params (M)", "GMACs") else "left")
    for name in list_models():
        entry = get_model_entry(name)
        model = create_model(name)
        size = entry.preprocess.input_size
        table.add_row(name, f"{count_params(model) / 1e6:.2f}", f"{count_macs(model, size) / 1e9:.2f}",
                      f"{size[0]}x{size[1]}", entry.attention, entry.description)
    console.print(table)


def _cmd_info(args: argparse.Namespace) -> None:
    from .runtimes import CHECKPOINT_SUFFIXES

    path = Path(args.source)
    if path.suffix in CHECKPOINT_SUFFIXES or not path.suffix:
        _info_checkpoint(args)
    else:
        from .export.metadata import read_metadata

        metadata = read_metadata(path)
        _print_metadata(path.name, metadata)


def _info_checkpoint(args: argparse.Namespace) -> None:
    from .checkpoint import load_model, weights_sha256
    from .complexity import count_macs, count_params

    model, seeded = load_model(args.source, args.model)
    config = model.model_config
    if seeded:
        err_console.print(SEEDED_NOTE.format(name=args.source), soft_wrap=True)
    info = {**config.to_dict(), "params": count_params(model),
            "gmacs": round(count_macs(model, config.preprocess.input_size) / 1e9, 3),
            "weights_sha256": weights_sha256(model)}
    _print_metadata(str(args.source), info)


def _print_metadata(title: str, metadata: dict) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in metadata.items():
        if key == "labels":
            value = f"{len(value)} labels: {', '.join(value[:5])}{', ...' if len(value) > 5 else ''}"
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        table.add_row(key, str(value))
    console.print(table)


def _cmd_predict(args: argparse.Namespace) -> None:
    from .runtimes import load
    from .samples import sample_images

    runtime = load(args.source, threads=args.threads, **({"model_name": args.model} if args.model else {}))
    if getattr(runtime, "seeded", False):
        err_console.print(SEEDED_NOTE.format(name=args.source), soft_wrap=True)
    images = list(args.images) + (sample_images() if args.samples else [])
    if not images:
        raise OptionError("give one or more image files, or --samples to use the bundled sample photos")
    for image in images:
        predictions = runtime.predict(image, k=args.top_k)
        table = Table(title=f"{Path(image).name}  ({runtime.name}: {runtime.path.name})")
        for column in ("rank", "class", "label", "prob", "logit"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for rank, p in enumerate(predictions, 1):
            table.add_row(str(rank), str(p.index), p.label, f"{p.score:.4f}", f"{p.logit:.4f}")
        console.print(table)


def _cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .export.custom import is_build_function, load_build_function
    from .export.exporter import export, print_summary
    from .export.formats import FORMATS

    own = is_build_function(args.source)
    if args.labels and not own:
        raise OptionError("--labels describes a model of your own (FILE.py:FUNCTION); checkpoints and registered "
                          "models carry their labels")
    if own:
        model, seeded = load_build_function(args.source), False
    else:
        model, seeded = load_model(args.source, args.model)
    if seeded:
        err_console.print(SEEDED_NOTE.format(name=args.source), soft_wrap=True)
    format_options = {option for f in FORMATS.values() for option in f.options}
    options = {k: v for k, v in vars(args).items() if k in format_options and v is not None}
    if own and getattr(model, "model_config", None) is None:
        options["labels"] = _read_labels(args.labels) if args.labels else None
    records = export(model, formats=args.formats, precisions=args.precisions.split(",") if args.precisions else None,
                     imgsz=args.imgsz, out_dir=args.out, deploy=not args.no_deploy, validate=not args.no_validate,
                     **options)
    print_summary(records, console)
    return 0 if all(r.ok and r.parity_passed for r in records) else 1


def _read_labels(path: str) -> list[str]:
    try:
        return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise OptionError(f"cannot read --labels {path} ({err}); give a text file with one label per line") from err


def _cmd_validate(args: argparse.Namespace) -> int:
    from .export.validate import per_layer_file, validate_file

    if args.per_layer and Path(args.file).suffix != ".tflite":
        raise ModelFileError(f"--per-layer reads the intermediate tensors of .tflite files, not {args.file}")
    if args.images and not args.per_layer:
        raise OptionError("--images picks the inputs of --per-layer; add --per-layer")
    report = validate_file(args.file, args.ckpt, args.model)
    _print_metadata(f"parity of {Path(args.file).name} against PyTorch", report.to_dict())
    if args.per_layer:
        _print_per_layer(Path(args.file).name, per_layer_file(args.file, args.ckpt, args.model, args.images))
    return 0 if report.passed else 1


def _print_per_layer(name: str, report, rows: int = 15) -> None:
    table = Table(title=f"{name}: layers adding the most error (relative to fp32 PyTorch)")
    for column in ("#", "layer", "kind", "output of", "added", "rel. error", "cosine"):
        table.add_column(column, justify="left" if column in ("layer", "kind", "output of") else "right")
    order = {id(r): i for i, r in enumerate(report.rows)}
    for r in sorted(report.rows, key=lambda r: -r.added)[:rows]:
        table.add_row(str(order[id(r)]), r.layer or "(model)", r.kind, r.output_of or "logits", f"{r.added:+.4f}",
                      f"{r.rel_error:.4f}", f"{r.cosine:.5f}")
    console.print(table)
    kinds = ", ".join(f"{kind} {added:.3f}" for kind, added in list(report.by_kind.items())[:6])
    console.print(f"error added by module kind: {kinds}")
    worst = report.worst
    console.print(f"most divergent: {worst.layer or '(model)'} ({worst.kind}) adds {worst.added:.4f}; "
                  f"output relative error {report.rows[-1].rel_error:.4f} over {len(report.rows)} layers")


def _add_export_parser(sub) -> None:
    from .export.formats import FORMATS

    formats = "\n".join(f"  {f.name:8s} {f.suffix:10s} precisions: {', '.join(f.precisions)} "
                         f"(extra: {f.extra}) - {f.description}" for f in FORMATS.values())
    p = sub.add_parser("export", help="export a model to ONNX / TFLite / CoreML and check every file against PyTorch",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Export a checkpoint or model name to mobile formats. Each file is written "
                                   "atomically, checked against PyTorch on real photos, and described in "
                                   "OUT/export_report.json.\n\nformats:\n" + formats)
    p.add_argument("source", help="model name (seeded weights), .safetensors checkpoint, .pt/.pth state_dict, or "
                                  "FILE.py:FUNCTION returning an nn.Module classifier of your own")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth)")
    p.add_argument("--labels", metavar="FILE", help="FILE.py:FUNCTION models: class labels, one per line "
                                                    "(default class_0, class_1, ...)")
    p.add_argument("--formats", default="onnx", help=f"comma-separated: {','.join(FORMATS)} (default onnx)")
    p.add_argument("--precisions", help="comma-separated precisions (default: each format's default)")
    p.add_argument("--imgsz", help="input size, e.g. 256 or 512x1024 (multiple of 32; default: the model's)")
    p.add_argument("--out", default="runs/export", help="output directory (default runs/export)")
    p.add_argument("--no-deploy", action="store_true", help="export the training form (for comparison/debugging)")
    p.add_argument("--no-validate", action="store_true", help="skip the parity check against PyTorch")
    p.add_argument("--dynamic-batch", action="store_true", default=None, help="ONNX: dynamic batch axis")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", default=None, help="ONNX: skip onnxsim")
    p.add_argument("--opset", type=int, help="ONNX opset (default and minimum 18)")
    p.add_argument("--tflite-converter", choices=("litert-torch", "onnx2tf"),
                   help="TFLite: PyTorch -> TFLite with litert-torch (default) or ONNX -> TFLite with onnx2tf")
    p.add_argument("--calib", metavar="DIR", help="int8/w8a16: folder of calibration images, 100+ recommended "
                                                  "(default: the bundled sample photos)")
    p.add_argument("--int8-io", action="store_true", default=None,
                   help="TFLite int8: int8 input and output tensors (default float32; scale and zero point are in "
                        "the file's metadata)")
    p.add_argument("--coreml-input", choices=("image", "tensor"),
                   help="CoreML: an image input, as Xcode and Vision expect (default), or a float32 tensor "
                        "preprocessed by the caller")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--nhwc", dest="channels_last_io", action="store_true", default=None,
                        help="NHWC image input (default for TFLite; CoreML: with --coreml-input tensor)")
    layout.add_argument("--nchw", dest="channels_last_io", action="store_false",
                        help="NCHW image input (default for ONNX)")
    p.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xformer",
        description="XFormer Mobile: export the XFormer vision backbone to ONNX, TFLite and CoreML, "
                    "check every file against PyTorch, and benchmark it.")
    parser.add_argument("--version", action="version", version=f"xformer-mobile {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show the converters' and runtimes' own log lines")
    parser.add_argument("--debug", action="store_true", help="--verbose, and a traceback with every error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("models", help="list registered models with params, GMACs and input size")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("info", help="describe a checkpoint, model name or exported file "
                                    "(config, preprocessing, labels)")
    p.add_argument("source", help="checkpoint (.safetensors/.pt/.pth), exported file "
                                  "(.onnx/.tflite/.mlpackage) or model name")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth) that carries no config")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("predict", help="top-k classes for images, using the model's own preprocessing contract")
    p.add_argument("source", help="model name, checkpoint or exported file")
    p.add_argument("images", nargs="*", help="image files (JPEG/PNG/...)")
    p.add_argument("--samples", action="store_true",
                   help="also run on the sample photos shipped with scikit-image and matplotlib")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth)")
    p.add_argument("-k", "--top-k", type=int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the runtime")
    p.set_defaults(func=_cmd_predict)

    _add_export_parser(sub)

    p = sub.add_parser("validate", help="parity of an exported file against the PyTorch reference")
    p.add_argument("file", help="exported .onnx/.tflite/.mlpackage")
    p.add_argument("--ckpt", help="checkpoint it was exported from, or FILE.py:FUNCTION for a model of your own "
                                  "(default: the model named in its metadata, seeded weights; the weights' sha256 "
                                  "must match)")
    p.add_argument("--model", help="architecture of a plain state_dict given with --ckpt")
    p.add_argument("--per-layer", action="store_true",
                   help="TFLite: error of every layer's output against fp32 PyTorch, to find where a quantised "
                        "file diverges (SiLU, XFA, ...)")
    p.add_argument("--images", metavar="DIR", help="--per-layer inputs: images like the calibration set "
                                                   "(default: the bundled sample photos)")
    p.set_defaults(func=_cmd_validate)

    bench.register(sub)
    android.register(sub)
    return parser


GLOBAL_FLAGS = ("--verbose", "--debug")


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """--verbose and --debug work anywhere on the line, for every subcommand (argparse wants them first)."""
    return [a for a in argv if a in GLOBAL_FLAGS] + [a for a in argv if a not in GLOBAL_FLAGS]


def main(argv: list[str] | None = None) -> int:
    """Run one command. Errors users can fix print one line, `error: ...`, and exit with the error's exit_code
    (2: what was given cannot be used, 1: the work failed); a traceback only with --debug."""
    args = build_parser().parse_args(_hoist_global_flags(sys.argv[1:] if argv is None else list(argv)))
    logs.configure(verbose=args.verbose or args.debug)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except Exception as err:
        if args.debug:
            err_console.print_exception(show_locals=False)
        err_console.print(f"[bold red]error:[/] {escape(_describe(err))}", highlight=False, soft_wrap=True)
        return getattr(err, "exit_code", 1) if isinstance(err, XFormerError) else 1
    return status or 0


def _describe(err: Exception) -> str:
    """One line for any error: ours as written, the operating system's with its path, anything else as a bug."""
    if isinstance(err, XFormerError):
        return " ".join(str(err).split())
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}; check the path, its permissions and the free disk space"
    return (f"unexpected {type(err).__name__}: {err}. This is a bug in xformer-mobile; rerun with --debug and report "
            "the traceback")
