"""The metadata every exported file embeds, and how each format stores it.

One JSON document (`build_metadata`) describes the model: its ModelConfig (arch, options, labels,
PreprocessSpec with the file's own input layout), versions, the weights' sha256 and the export settings.
Each format stores the same document under the name `xformer_metadata`:

- ONNX: a `metadata_props` entry;
- TFLite: a zip archive appended to the flatbuffer (as TFLite's own metadata packing does; interpreters
  ignore trailing bytes) holding `xformer_metadata.json` and `labels.txt`, readable with any zip library,
  including java.util.zip in the Android app;
- CoreML: `user_defined_metadata["xformer_metadata"]`;
- ExecuTorch (.pte): the same zip as TFLite, appended to the program (the runtime reads the program and its
  segments at offsets from the file's header, so the trailing archive is never read; see pte_export.py).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..checkpoint import weights_sha256
from ..errors import ModelFileError, require

__all__ = ["METADATA_KEY", "METADATA_FORMAT", "build_metadata", "read_metadata", "read_pte_metadata",
           "read_tflite_metadata", "write_tflite_metadata"]

METADATA_KEY = "xformer_metadata"
METADATA_FORMAT = "xformer-metadata/1"
TFLITE_METADATA_ENTRY = "xformer_metadata.json"
TFLITE_LABELS_ENTRY = "labels.txt"


def build_metadata(model: nn.Module, *, format: str, precision: str, layout: str = "NCHW",
                   input_size: tuple[int, int] | None = None, **export_info) -> dict:
    """The metadata document for one exported file of `model`."""
    config = model.model_config
    spec = config.preprocess
    if input_size is not None and tuple(input_size) != spec.input_size:
        spec = spec.with_input_size(tuple(input_size))
    spec = replace(spec, layout=layout)
    return {"metadata_format": METADATA_FORMAT, **config.to_dict(), "preprocess": spec.to_dict(),
            "xformer_version": __version__, "torch_version": torch.__version__.split("+")[0],
            "weights_sha256": weights_sha256(model),
            "export": {"format": format, "precision": precision, **export_info}}


def dumps(metadata: dict) -> str:
    """Canonical JSON (sorted keys, no whitespace variance) so exports are byte-for-byte reproducible."""
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"))


def _zip_bytes(metadata: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in ((TFLITE_METADATA_ENTRY, dumps(metadata)),
                           (TFLITE_LABELS_ENTRY, "\n".join(metadata.get("labels", [])) + "\n")):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed time: reproducible files
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()


def write_tflite_metadata(flatbuffer: bytes, metadata: dict) -> bytes:
    """The flatbuffer with our metadata zip appended (zip offsets made absolute, so readers need no prefix)."""
    out = io.BytesIO()
    out.write(flatbuffer)
    with zipfile.ZipFile(io.BytesIO(_zip_bytes(metadata))) as src, zipfile.ZipFile(out, "a") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
    return out.getvalue()


def read_tflite_metadata(path: str | Path, format: str = "tflite") -> dict:
    """The document in the zip appended to a .tflite (or, with format="pte", a .pte) file."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(TFLITE_METADATA_ENTRY))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path.name} carries no xformer metadata (labels, preprocessing); export it with "
                             f"`xformer export ... --formats {format}`") from err


def read_pte_metadata(path: str | Path) -> dict:
    return read_tflite_metadata(path, format="pte")


def _read_onnx_metadata(path: Path) -> dict:
    onnx = require("onnx", "reading ONNX metadata", "onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others from protobuf
        raise ModelFileError(f"{path.name} is not a readable ONNX file ({err})") from err
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path.name} carries no xformer metadata; export it with `xformer export`")
    return json.loads(props[METADATA_KEY])


def _read_coreml_metadata(path: Path) -> dict:
    ct = require("coremltools", "reading CoreML metadata", "coreml")
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as err:
        raise ModelFileError(f"{path.name} is not a readable .mlpackage ({err})") from err
    user = dict(spec.description.metadata.userDefined)
    if METADATA_KEY not in user:
        raise ModelFileError(f"{path.name} carries no xformer metadata; export it with `xformer export`")
    return json.loads(user[METADATA_KEY])


def read_metadata(path: str | Path) -> dict:
    """The metadata document embedded in an exported file, whatever its format."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"file not found: {path}")
    readers = {".onnx": _read_onnx_metadata, ".tflite": read_tflite_metadata, ".mlpackage": _read_coreml_metadata,
               ".pte": read_pte_metadata}
    if path.suffix not in readers:
        raise ModelFileError(f"no metadata reader for {path.suffix!r} files: expected .onnx, .tflite, .mlpackage "
                             "or .pte")
    return readers[path.suffix](path)
