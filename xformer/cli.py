"""The `xformer` command. Each subcommand is a small function over the library API; errors that users can
fix (XFormerError) print one line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich import box
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

    # Names are never cut: on a narrow terminal (80 columns) the description column is the one left out.
    described = console.width >= 120
    table = Table(title="Registered models", box=box.SIMPLE_HEAD)
    for column in ("name", "task", "params (M)", "GMACs", "input", "attention"):
        table.add_column(column, justify="right" if column in ("params (M)", "GMACs") else "left", no_wrap=True)
    if described:
        table.add_column("description", ratio=1)
    for name in list_models():
        entry = get_model_entry(name)
        model = create_model(name)
        size = entry.preprocess.input_size
        table.add_row(name, entry.task, f"{count_params(model) / 1e6:.2f}", f"{count_macs(model, size) / 1e9:.2f}",
                      f"{size[0]}x{size[1]}", entry.attention, *([entry.description] if described else []))
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
    if runtime.config.task == "segment":
        _predict_masks(runtime, images, args.save)
        return
    if runtime.config.task == "detect":
        _predict_boxes(runtime, images, args.save, args.conf)
        return
    if args.conf is not None:
        raise OptionError(f"--conf is a detector's score threshold; {runtime.path.name} is a {runtime.config.task} "
                          "model: drop --conf")
    if args.save:
        raise OptionError(f"--save draws a segmentation overlay or a detector's boxes, but {runtime.path.name} is a "
                          "classifier; drop --save")
    for image in images:
        predictions = runtime.predict(image, k=args.top_k)
        shown = Path(image).name if Path(image).is_absolute() else image  # keeps a relative path's class folder
        table = Table(title=f"{shown}  ({runtime.name}: {runtime.path.name})")
        for column in ("rank", "class", "label", "prob", "logit"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for rank, p in enumerate(predictions, 1):
            table.add_row(str(rank), str(p.index), p.label, f"{p.score:.4f}", f"{p.logit:.4f}")
        console.print(table)


def _save_path(save: str, image, images: list, tag: str) -> Path:
    """--save PATH for one image, or PATH/STEM_TAG.png per image when PATH is a folder."""
    if len(images) == 1 and Path(save).suffix:
        return Path(save)
    return Path(save) / f"{Path(image).stem}_{tag}.png"


def _predict_boxes(runtime, images: list, save: str | None, conf: float | None) -> None:
    """A detector's boxes per image (in the image's pixels); with --save, the image with them drawn."""
    from PIL import Image

    from .checkpoint import atomic_path
    from .runtimes.detection import nms_config

    if save and len(images) > 1 and Path(save).suffix:
        raise OptionError(f"--save {save} names one file but {len(images)} images were given; pass a folder")
    for image in images:
        result = runtime.predict(image, score_threshold=conf)
        shown = Path(image).name if Path(image).is_absolute() else image
        table = Table(title=f"{shown}  ({runtime.name}: {runtime.path.name}, {len(result)} boxes)")
        for column in ("label", "score", "x1", "y1", "x2", "y2"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for label, score, xyxy in zip(result.labels, result.scores.tolist(), result.boxes.tolist()):
            table.add_row(label, f"{score:.3g}", *(f"{v:.1f}" for v in xyxy))
        console.print(table)
        if not len(result):
            threshold = conf if conf is not None else nms_config(runtime.metadata).score_threshold
            console.print(f"{shown}: no detection above --conf {threshold:g}"
                          f"{'; seeded weights' if getattr(runtime, 'seeded', False) else ''}", highlight=False)
        if save:
            out = _save_path(save, image, images, "det")
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                result.draw(image).save(tmp, format=Image.registered_extensions().get(out.suffix.lower(), "PNG"))
            console.print(f"wrote {out} ({len(result)} boxes drawn)", highlight=False)


def _predict_masks(runtime, images: list, save: str | None) -> None:
    """Class shares per image; with --save, the colour overlay (one file, or DIR/STEM_seg.png for several)."""
    from .checkpoint import atomic_path

    if save and len(images) > 1 and Path(save).suffix:
        raise OptionError(f"--save {save} names one file but {len(images)} images were given; pass a folder")
    for image in images:
        result = runtime.predict(image)
        shown = Path(image).name if Path(image).is_absolute() else image
        table = Table(title=f"{shown}  ({runtime.name}: {runtime.path.name})")
        for column in ("class", "pixels"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for label, share in result.areas().items():
            table.add_row(label, f"{share:.1%}")
        console.print(table)
        if save:
            out = _save_path(save, image, images, "seg")
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                result.overlay(image).save(tmp, format="PNG")
            console.print(f"wrote {out} (colour overlay, {result.mask.shape[1]}x{result.mask.shape[0]})",
                          highlight=False)


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
    format_options = {option for f in FORMATS.values() for option in f.options} | {"det_outputs"}
    options = {k: v for k, v in vars(args).items() if k in format_options and v is not None}
    if own and getattr(model, "model_config", None) is None:
        options["labels"] = _read_labels(args.labels) if args.labels else None
    records = export(model, formats=args.formats, precisions=args.precisions.split(",") if args.precisions else None,
                     imgsz=args.imgsz, out_dir=args.out, deploy=not args.no_deploy, validate=not args.no_validate,
                     jobs=args.jobs, **options)
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


def _cmd_dataset(args: argparse.Namespace) -> None:
    if args.name == "shapes":
        from .shapes import SHAPE_CLASSES, write_shapes

        size = args.size or 96
        train, val = args.train or 600, args.val or 150
        root = write_shapes(args.out, train=train, val=val, size=size)
        console.print(f"wrote {train} + {val} rendered images (up to {size}x{size}) with exact boxes of "
                      f"{len(SHAPE_CLASSES)} classes ({', '.join(SHAPE_CLASSES)}) to {root}: train/ and val/ "
                      "images/ + annotations.json (COCO format)", highlight=False)
        console.print(f"next: xformer train xformer_xxs_yolov3 --data {root} --imgsz {size}", highlight=False,
                      soft_wrap=True)
        return
    if args.name == "scenes":
        from .scenes import SCENE_CLASSES, write_scenes

        height, width = (args.size, 2 * args.size) if args.size else (128, 256)
        train, val = args.train or 400, args.val or 100
        root = write_scenes(args.out, train=train, val=val, height=height, width=width)
        console.print(f"wrote {train} + {val} rendered scenes ({height}x{width}) with exact masks of "
                      f"{len(SCENE_CLASSES)} classes ({', '.join(SCENE_CLASSES)}) to {root}: train/ and val/ "
                      "images/ + masks/, classes.txt", highlight=False)
        console.print(f"next: xformer train xformer_xxs_seg --data {root} --imgsz {height}x{width}", highlight=False)
        return
    from .datasets import write_digits

    root = write_digits(args.out, size=args.size or 32)
    console.print(f"wrote scikit-learn's digits to {root}: train/ 1257 and val/ 540 images in 10 class folders "
                  f"({args.size}x{args.size} PNG)", highlight=False)
    console.print(f"next: xformer train xformer_xxs --data {root} --imgsz 64", highlight=False)


def _cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    given = {f: getattr(args, f) for f in TrainConfig.__dataclass_fields__ if hasattr(args, f)}
    train(given, resume=args.resume, console=console)


def _cmd_val(args: argparse.Namespace) -> int:
    from .checkpoint import atomic_path
    from .train import validate

    result = validate(args.source, args.data, ckpt=args.ckpt, model_name=args.model, batch=args.batch,
                      threads=args.threads, workers=args.workers, strict=args.strict, progress=err_console)
    if result.skipped:
        err_console.print(f"[yellow]skipped {len(result.skipped)} unreadable image(s)[/] (first: {result.skipped[0]})",
                          highlight=False)
    title = (f"{Path(args.source).name}: {result.format} {result.precision} on {result.data} "
             f"({result.images} images, {result.runtime})")
    if result.task == "segment":
        _print_segmentation(title, result)
    elif result.task == "detect":
        _print_detection(title, result)
    else:
        _print_classification(title, result)
    if args.out:
        out = Path(args.out)
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {out}", highlight=False)


def _agreement(result, unit: str) -> str:
    if result.agreement is None:
        return "unknown (pass --ckpt with the weights it was exported from)" if result.format != "torch" else "-"
    return f"{result.agreement:.2%} ({unit})"


def _print_segmentation(title: str, result) -> None:
    table = Table(title=title)
    for column in ("class", "pixels", "IoU"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, entry in result.per_class.items():
        table.add_row(name, str(entry["pixels"]), "-" if entry["iou"] is None else f"{entry['iou']:.2%}")
    table.add_section()
    table.add_row("mean", "", f"{result.miou:.2%}")
    console.print(table)
    names = list(result.per_class)
    matrix = Table(title="confusion matrix (rows: truth, columns: prediction; share of the row's pixels)")
    matrix.add_column("truth \\ pred")
    for name in names:
        matrix.add_column(name[:10], justify="right")
    for name, row in zip(names, result.confusion):
        total = max(1, sum(row))
        matrix.add_row(name, *(f"{v / total:.1%}" if v else "." for v in row))
    console.print(matrix)
    console.print(f"mIoU {result.miou:.2%}  pixel accuracy {result.pixel_acc:.2%}  argmax agreement with PyTorch "
                  f"{_agreement(result, 'pixels')}  ({result.seconds:.1f} s)", highlight=False)


def _print_detection(title: str, result) -> None:
    table = Table(title=title)
    for column in ("class", "boxes", "AP", "AP50"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, entry in result.per_class.items():
        table.add_row(name, str(entry["boxes"]), *("-" if entry[k] is None else f"{entry[k]:.2%}"
                                                    for k in ("ap", "ap50")))
    table.add_section()
    table.add_row("all", str(result.boxes), f"{result.ap:.2%}", f"{result.ap50:.2%}")
    console.print(table)
    console.print(f"AP {result.ap:.2%}  AP50 {result.ap50:.2%}  AP75 {result.ap75:.2%} (COCO, pycocotools)  "
                  f"{result.detections} detections  agreement with PyTorch {_agreement(result, 'detections')}  "
                  f"({result.seconds:.1f} s)", highlight=False)


def _print_classification(title: str, result) -> None:
    table = Table(title=title)
    for column in ("class", "images", "top-1"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, entry in result.per_class.items():
        table.add_row(name, str(entry["images"]), f"{entry['top1']:.2%}")
    table.add_section()
    table.add_row("all", str(result.images), f"{result.top1:.2%}")
    console.print(table)
    agreement = "unknown (pass --ckpt with the weights it was exported from)" if result.agreement is None and \
        result.format != "torch" else f"{result.agreement:.2%}" if result.agreement is not None else "-"
    console.print(f"top-1 {result.top1:.2%}  top-5 {result.top5:.2%}  agreement with PyTorch {agreement}  "
                  f"({result.seconds:.1f} s)", highlight=False)


TRAIN_DESCRIPTION = """\
Train a registered model from scratch, or fine-tune a checkpoint, on DIR/train and evaluate on DIR/val after
every epoch: class folders (classifiers), images/ + masks/ (segmenters), images/ + annotations.json in COCO
format (detectors).

MobileViT's recipe: AdamW, linear warm-up then cosine, label smoothing 0.1, weight EMA, random resized
crop + flip. Detectors default to mmdetection's YOLOv3 recipe instead: SGD lr 0.003 (loss summed over the
batch), momentum 0.9, weight decay 5e-4, gradient norm clipped at 35, batch 24, random scale 0.5-1.5,
translate 0.1, flip. Writes best/last .safetensors, resume.pt, metrics.csv/.json and curves.png.
More processes or machines: torchrun --nproc-per-node N -m xformer train ... (--batch stays global)."""


def _size_arg(text: str) -> int | str:
    """--imgsz: an int for a square size (as runs have always recorded it), else the "HxW" text."""
    return int(text) if text.isdigit() else text


def _add_train_parsers(sub) -> None:
    p = sub.add_parser("dataset", help="write a small data set with exact labels (digits, rendered scenes or shapes)",
                       description="digits: scikit-learn's handwritten digits (bundled, no download) as "
                                   "DIR/train/0..9 and DIR/val/0..9 PNGs, split 1257/540 with a fixed seed. "
                                   "scenes: deterministic rendered street scenes with exact segmentation masks, "
                                   "DIR/{train,val}/{images,masks} and DIR/classes.txt. "
                                   "shapes: deterministic rendered shapes with exact boxes for detection, "
                                   "DIR/{train,val}/images and DIR/{train,val}/annotations.json (COCO format).")
    p.add_argument("name", choices=("digits", "scenes", "shapes"), help="which data set")
    p.add_argument("out", help="folder to create")
    p.add_argument("--size", type=int, help="digits: PNG side (default 32); scenes: height, width is twice "
                                            "(default 128); shapes: longest image side (default 96)")
    p.add_argument("--train", type=int, help="scenes/shapes: training images (default 400/600)")
    p.add_argument("--val", type=int, help="scenes/shapes: held-out images (default 100/150)")
    p.set_defaults(func=_cmd_dataset)

    p = sub.add_parser("train", help="train or fine-tune a classifier on an image folder (also under torchrun)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=TRAIN_DESCRIPTION)
    p.add_argument("source", nargs="?", help="model name (from scratch) or checkpoint (fine-tune)")
    p.add_argument("--data", help="data set root with train/ and val/ class folders")
    p.add_argument("--epochs", type=int, help="epochs (default 30)")
    p.add_argument("--batch", type=int, help="global batch size, split over processes (default 64; detectors 24)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), help="default adamw (detectors: sgd)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.002; detectors 0.003)")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default 0.01; detectors 5e-4)")
    p.add_argument("--clip-grad", type=float, help="largest gradient norm (default none; detectors 35)")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up epochs (default 3)")
    p.add_argument("--label-smoothing", type=float, help="default 0.1 (detectors 0)")
    p.add_argument("--ema-decay", type=float, help="weight EMA decay (default 0.9995, ramped up)")
    p.add_argument("--imgsz", type=_size_arg, help="training and evaluation size, 256 or HxW such as 256x512, "
                                                   "multiples of 32 (default: the model's)")
    p.add_argument("--crop-scale", type=float, help="smallest area fraction of the random resized crop "
                                                    "(default 0.08)")
    p.add_argument("--hflip", type=float, help="probability of a left-right flip (default 0.5; 0 for text/digits)")
    p.add_argument("--scale-min", type=float, help="segmentation, detection: smallest random rescale (default 0.5)")
    p.add_argument("--scale-max", type=float, help="segmentation, detection: largest random rescale (default 2.0; "
                                                   "detectors 1.5)")
    p.add_argument("--translate", type=float, help="detection: largest random shift, a fraction of the input "
                                                   "(default 0.1)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"),
                   help="mixed precision (default auto: bf16/fp16 on CUDA, off on CPU)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--new-head", action="store_true", default=None,
                   help="fine-tune: a fresh classifier even when the class count matches the checkpoint's")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth)")
    p.add_argument("--out", help="run directory (default runs/train/ARCH, numbered when taken)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its resume.pt")
    p.add_argument("--workers", type=int, help="data loader processes per process (default: up to 4)")
    p.add_argument("--threads", type=int, help="CPU threads per process (default: half the cores per process)")
    p.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--strict", action="store_true", default=None,
                   help="an unreadable image is an error (default: counted and skipped)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("val", help="accuracy (classifiers), mIoU (segmenters) or COCO AP (detectors) of a checkpoint "
                                   "or any exported file",
                       description="Classifiers: top-1/top-5 and per-class accuracy on DIR/val/CLASS/* (or a "
                                   "folder of class folders). Segmenters: mIoU, per-class IoU and the confusion "
                                   "matrix on DIR/val/{images,masks} or Cityscapes' leftImg8bit/gtFine val split "
                                   "(whole image at the file's input size, scored at the labels' resolution). "
                                   "Detectors: COCO AP, AP50, AP75 and per-class AP (pycocotools) on "
                                   "DIR/val/images + DIR/val/annotations.json or COCO's annotations/ + val2017/, "
                                   "letterboxed to the file's input size, scored in the images' own pixels. "
                                   "Through the runtime of the file, with the preprocessing embedded in it; "
                                   "agreement with the PyTorch weights when they are known.")
    p.add_argument("source", help="checkpoint, model name or exported file (.onnx/.tflite/.mlpackage)")
    p.add_argument("--data", required=True, help="data set root (its val/ split is used) or one split")
    p.add_argument("--ckpt", help="the checkpoint the file was exported from, for the agreement column")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth)")
    p.add_argument("--batch", type=int, default=32, help="batch size where the file takes any (default 32)")
    p.add_argument("--threads", type=int, help="CPU threads for the runtime")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (default 0)")
    p.add_argument("--strict", action="store_true", help="an unreadable image is an error (default: skipped)")
    p.add_argument("--out", help="write the result as JSON to this file")
    p.set_defaults(func=_cmd_val)


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
    p.add_argument("--jobs", type=int, help="worker processes exporting formats in parallel (default: the usable "
                   "CPU cores, at most one per independent job; 1 exports in this process)")
    p.add_argument("--dynamic-batch", action="store_true", default=None, help="ONNX: dynamic batch axis")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", default=None, help="ONNX: skip onnxsim")
    p.add_argument("--opset", type=int, help="ONNX opset (default and minimum 18)")
    p.add_argument("--tflite-converter", choices=("litert-torch", "onnx2tf"),
                   help="TFLite: PyTorch -> TFLite with litert-torch (default) or ONNX -> TFLite with onnx2tf")
    p.add_argument("--calib", metavar="DIR", help="int8/int8-qop/w8a16: folder of calibration images, 100+ recommended "
                                                  "(default: the bundled sample photos)")
    p.add_argument("--int8-io", action="store_true", default=None,
                   help="TFLite int8: int8 input and output tensors (default float32; scale and zero point are in "
                        "the file's metadata)")
    p.add_argument("--int8-float-layers", metavar="auto|NAMES",
                   help="TFLite int8: keep these modules (comma-separated names, e.g. layer5.1.fusion.conv) in "
                        "float, or `auto`: a per-layer sensitivity sweep keeps the most sensitive ones float until "
                        "top-1 agreement with float reaches 99%% on held-out --calib images; the sweep and choice "
                        "go to export_report.json")
    p.add_argument("--coreml-input", choices=("image", "tensor"),
                   help="CoreML: an image input, as Xcode and Vision expect (default), or a float32 tensor "
                        "preprocessed by the caller")
    p.add_argument("--pte-backend", choices=("xnnpack", "coreml"),
                   help="ExecuTorch: lower to XNNPACK (default; CPU, fp32 and int8) or Core ML (fp32; runs on Apple "
                        "devices, lowered and checked structurally on Linux)")
    forms = "; ".join(f"{f.name}: {', '.join(f.det_outputs)}" for f in FORMATS.values())
    p.add_argument("--det-outputs", choices=("raw", "decoded", "nms"),
                   help="detectors: the file's outputs: raw head maps, decoded boxes + scores, or final detections "
                        f"with NMS in the graph (per format, default first: {forms})")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--nhwc", dest="channels_last_io", action="store_true", default=None,
                        help="NHWC image input (default for TFLite; CoreML: with --coreml-input tensor)")
    layout.add_argument("--nchw", dest="channels_last_io", action="store_false",
                        help="NCHW image input (default for ONNX)")
    p.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xformer",
        description="XFormer Mobile: train the XFormer vision backbone, export it to ONNX, TFLite and CoreML, "
                    "check every file against PyTorch, and measure its accuracy and speed.")
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

    p = sub.add_parser("predict", help="top-k classes (or a segmentation mask) for images, using the model's own "
                                       "preprocessing contract")
    p.add_argument("source", help="model name, checkpoint or exported file")
    p.add_argument("images", nargs="*", help="image files (JPEG/PNG/...)")
    p.add_argument("--samples", action="store_true",
                   help="also run on the sample photos shipped with scikit-image and matplotlib")
    p.add_argument("--model", help="architecture of a plain state_dict (.pt/.pth)")
    p.add_argument("-k", "--top-k", type=int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--save", metavar="PATH", help="segmenters: write the colour overlay to this PNG; detectors: the "
                                                  "image with its boxes and labels drawn (a folder for several images)")
    p.add_argument("--conf", type=float, default=None,
                   help="detectors: score threshold of the boxes shown (default: the file's own, 0.05; files with "
                        "NMS in the graph cannot go lower)")
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

    _add_train_parsers(sub)
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
