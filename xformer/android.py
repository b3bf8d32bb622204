"""`xformer android MODEL.tflite|MODEL.pte`: put an exported model into the Android demo app (android_demo/), which
runs .tflite files in LiteRT and .pte programs in ExecuTorch.

The app takes labels and preprocessing from the model's own metadata, never from hand-typed constants, so the
file is checked here for everything the app reads before it is copied into the app's assets. The command then
prints how to build and install the app.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .checkpoint import atomic_path
from .console import console
from .errors import ModelFileError, OptionError
from .preprocess import PreprocessSpec

__all__ = ["ASSETS", "build_steps", "check_android_model", "default_project", "install_model", "register"]

ASSETS = Path("app/src/main/assets")
WRAPPER_JAR = Path("gradle/wrapper/gradle-wrapper.jar")
APP_TENSOR_DTYPES = ("float32", "int8", "uint8")
# File suffix -> export format, and the flatbuffer file identifier (bytes 4-7) each starts with.
APP_FORMATS = {".tflite": "tflite", ".pte": "pte"}


def default_project() -> Path:
    """The android_demo/ folder of this checkout."""
    return Path(__file__).resolve().parent.parent / "android_demo"


def _has_identifier(path: Path, fmt: str) -> bool:
    with path.open("rb") as f:
        identifier = f.read(8)[4:8]
    if fmt == "tflite":
        return identifier == b"TFL3"
    return identifier[:2] == b"ET" and identifier[2:].isdigit()  # ExecuTorch: "ET" and the format version


def _metadata_problems(metadata: dict, fmt: str = "tflite") -> list[str]:
    from .export.metadata import METADATA_FORMAT

    problems = []
    if metadata.get("metadata_format") != METADATA_FORMAT:
        problems.append(f"metadata format {metadata.get('metadata_format')!r} (the app reads {METADATA_FORMAT!r})")
    if metadata.get("task", "classify") != "classify":
        problems.append(f"task {metadata['task']!r} (the app shows a classifier's top classes)")
    labels = metadata.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        problems.append("no class labels")
    elif metadata.get("num_classes") not in (None, len(labels)):
        problems.append(f"{len(labels)} labels for {metadata['num_classes']} classes")
    preprocess = metadata.get("preprocess")
    if not isinstance(preprocess, dict):
        problems.append("no preprocessing contract")
    else:
        missing = [name for name in PreprocessSpec.__dataclass_fields__ if name not in preprocess]
        if missing:
            problems.append(f"preprocessing without {', '.join(missing)}")
        else:
            try:
                PreprocessSpec.from_dict(preprocess)
            except (ValueError, TypeError) as err:
                problems.append(str(err))
            if preprocess.get("resize_mode", "crop") != "crop":
                problems.append(f"resize_mode {preprocess['resize_mode']!r} (the app resizes and crops)")
    export = metadata.get("export")
    export = export if isinstance(export, dict) else {}
    if export.get("format", fmt) != fmt:
        problems.append(f"metadata of a {export['format']!r} export")
    for tensor in ("input", "output"):
        info = export.get(tensor)
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype is not None and dtype not in APP_TENSOR_DTYPES:
            problems.append(f"{tensor} dtype {dtype} (the app handles {', '.join(APP_TENSOR_DTYPES)})")
    return problems


def check_android_model(path: str | Path) -> dict:
    """The metadata of a .tflite or .pte the app can use; ModelFileError says what is missing and how to fix it."""
    from .export.metadata import read_tflite_metadata

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    fmt = APP_FORMATS.get(path.suffix)
    if fmt is None:
        raise ModelFileError(f"{path.name} is not a .tflite or .pte file; export one with "
                             "`xformer export MODEL --formats tflite` (or pte)")
    if not _has_identifier(path, fmt):
        what = "a TFLite flatbuffer (no TFL3 identifier)" if fmt == "tflite" else "an ExecuTorch program (no ET " \
            "identifier)"
        raise ModelFileError(f"{path.name} is not {what}; export one with `xformer export MODEL --formats {fmt}`")
    metadata = read_tflite_metadata(path, fmt)
    problems = _metadata_problems(metadata, fmt)
    export = metadata.get("export") if isinstance(metadata.get("export"), dict) else {}
    if fmt == "pte" and export.get("backend", "xnnpack") != "xnnpack":
        problems.append(f"the {export['backend']} backend (the app's ExecuTorch runs XNNPACK programs)")
    if problems:
        raise ModelFileError(f"{path.name} cannot be used by the Android app: its metadata has "
                             f"{'; '.join(problems)}. Re-export it with `xformer export MODEL --formats {fmt}`")
    return metadata


def install_model(model: str | Path, project: str | Path | None = None) -> tuple[Path, dict]:
    """Checks `model` and copies it (atomically) into the app's assets; returns the copy and the metadata."""
    model = Path(model)
    metadata = check_android_model(model)
    project = Path(project) if project is not None else default_project()
    if not (project / "settings.gradle").is_file() or not (project / "app").is_dir():
        raise OptionError(f"no Android demo project at {project}: pass --project with the path of the android_demo/ "
                           "folder of an xformer-mobile checkout")
    target = project / ASSETS / model.name
    with atomic_path(target, suffix=".part") as tmp:  # never a half-copied model the build would pick up
        shutil.copyfile(model, tmp)
    return target, metadata


def _cmd_android(args: argparse.Namespace) -> None:
    target, metadata = install_model(args.model, args.project)
    spec = PreprocessSpec.from_dict(metadata["preprocess"])
    project = target.parents[len(ASSETS.parts)]
    export = metadata.get("export") if isinstance(metadata.get("export"), dict) else {}
    size_mb = target.stat().st_size / 1e6
    resize = f"short side {spec.resize_size}, {spec.crop} crop" if spec.resize_size else "resize to input"
    console.print(f"copied {args.model} ({size_mb:.1f} MB) -> {target}", highlight=False, soft_wrap=True)
    console.print(f"  {metadata.get('arch')}, {export.get('precision', 'unknown precision')}, "
                  f"{len(metadata['labels'])} labels, input {spec.input_size[0]}x{spec.input_size[1]} {spec.layout}, "
                  f"{spec.interpolation}, {resize}", highlight=False, soft_wrap=True)
    models = sorted(p.name for p in target.parent.iterdir() if p.suffix in APP_FORMATS)
    console.print(f"models in the app: {', '.join(models)}", highlight=False, soft_wrap=True)
    console.print("\n" + build_steps(project), highlight=False, soft_wrap=True)


def build_steps(project: Path) -> str:
    """How to build and install the app from `project`, with or without the Gradle wrapper jar (a binary the
    repository does not carry)."""
    steps = ["Build and install on a device with USB debugging on:",
             f"  Android Studio: File > Open {project}, then Run (it fetches Gradle 8.7 and offers to install "
             "SDK platform 34)"]
    if (project / WRAPPER_JAR).is_file():
        steps.append(f"  or: cd {project} && ./gradlew installDebug   (JDK 17, ANDROID_HOME set to the Android SDK)")
    else:
        steps += [f"  or, with JDK 17, ANDROID_HOME set and any local Gradle >= 7 (once, to write {WRAPPER_JAR}):",
                  "    mkdir -p /tmp/gradle-wrapper && cd /tmp/gradle-wrapper && touch settings.gradle && "
                  "gradle wrapper --gradle-version 8.7",
                  f"    cp /tmp/gradle-wrapper/{WRAPPER_JAR} {project / WRAPPER_JAR}",
                  f"    cd {project} && ./gradlew installDebug"]
    steps.append("The app lists every .tflite and .pte in its assets.")
    return "\n".join(steps)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("android", help="put an exported .tflite or .pte into the Android demo app and print "
                                              "how to build it")
    p.add_argument("model", help=".tflite or .pte written by `xformer export MODEL --formats tflite` (or pte)")
    p.add_argument("--project", type=Path, default=None,
                   help="the android_demo/ folder (default: the one in this checkout)")
    p.set_defaults(func=_cmd_android)
