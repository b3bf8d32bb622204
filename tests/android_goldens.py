"""Golden files for the Android app's Java core, written by the Python reference.

The Java tests (android_demo/core/src/test/.../Golden*Test.java) read `manifest.json` and the raw files next to
it and must reproduce: PIL's resize bit for bit, `xformer.preprocess.preprocess` within 1e-5 (integer inputs
exactly), EXIF orientation, the metadata embedded in a .tflite, `top_k` on raw model outputs, and the latency
statistics of `xformer bench`, and, on real .tflite files from our exporter (fp32, and static int8 with float
and with int8 I/O), the input tensor the LiteRT interpreter was fed and the top-5 it led to; the same for real
.pte programs (fed to the ExecuTorch runtime). Images travel as raw RGB bytes that Python decoded, so both sides
start from the same pixels.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from xformer.export import export
from xformer.export.metadata import read_tflite_metadata
from xformer.models import create_model
from xformer.preprocess import INTERPOLATIONS, PreprocessSpec, preprocess
from xformer.runtimes import Prediction, TensorInfo, load, top_k
from xformer.samples import sample_images

__all__ = ["export_golden_models", "quantize", "write_goldens"]

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
SPECS = {
    "default": PreprocessSpec(layout="NHWC"),
    "imagenet": PreprocessSpec(input_size=(224, 224), resize_size=256, interpolation="bilinear", layout="NHWC",
                               **IMAGENET),
    "nchw_bgr_nearest": PreprocessSpec(input_size=(192, 160), resize_size=200, interpolation="nearest",
                                       channel_order="BGR", layout="NCHW", **IMAGENET),
    "no_crop": PreprocessSpec(input_size=(200, 240), resize_size=300, crop="none", layout="NHWC"),
    "direct_resize": PreprocessSpec(resize_size=None, layout="NHWC"),
}
# The smallest variant at a small input keeps the exports (converting takes the time, not the size) cheap.
GOLDEN_ARCH, GOLDEN_IMGSZ = "xformer_xxs", 64
# name -> (precision, int8 I/O): float I/O has the int8 file quantise inside; int8 I/O leaves it to the app.
GOLDEN_EXPORTS = {"fp32": ("fp32", False), "int8": ("int8", False), "int8_io": ("int8", True)}
# (dtype, scale, zero point) of integer model inputs, as an interpreter reports them.
QUANTIZED_INPUTS = {
    "int8": ("int8", float(np.float32(1 / 255)), -128),
    "uint8": ("uint8", float(np.float32(1 / 255)), 0),
    "int8_clipping": ("int8", float(np.float32(0.0186)), 14),
}


def quantize(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """Float input -> integer tensor, in float32 arithmetic with ties to even."""
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / np.float32(scale) + np.float32(zero_point))
    return np.clip(q, info.min, info.max).astype(dtype)


class _Writer:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._pixels: dict[int, str] = {}

    def raw(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return name

    def pixels(self, name: str, image: Image.Image) -> dict:
        """Raw RGB bytes of an image (written once per distinct image)."""
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        key = hash(rgb.tobytes())
        if key not in self._pixels:
            self._pixels[key] = self.raw(f"{name}.rgb", rgb.tobytes())
        return {"file": self._pixels[key], "width": rgb.shape[1], "height": rgb.shape[0]}


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _resize_cases(w: _Writer, photo: Image.Image) -> list[dict]:
    """Up- and downscaling along each axis, both pass orders (Pillow 13 runs the vertical pass first when the
    height shrinks by more than twice as many pixels as the width), and random sizes on noise."""
    rng = np.random.default_rng(2)
    noise_sizes = [(100, 61), (13, 9), (37, 50), (60, 23), (1, 1), (5, 200), (36, 5), (40, 2)]
    noise_sizes += [tuple(int(v) for v in rng.integers(1, 80, 2)) for _ in range(12)]
    sources = {"noise": (_noise(37, 23, 0), noise_sizes),
               "photo": (photo, [(288, 192), (131, 97), (451, 600), (1000, 300), (256, 256), (440, 100)])}
    cases = []
    for source_name, (image, sizes) in sources.items():
        source = w.pixels(source_name, image)
        for width, height in sizes:
            for interpolation, resample in INTERPOLATIONS.items():
                name = f"resize_{source_name}_{width}x{height}_{interpolation}"
                out = np.asarray(image.resize((width, height), resample), dtype=np.uint8)
                cases.append({"name": name, "source": source, "width": width, "height": height,
                              "interpolation": interpolation, "expected": w.raw(f"{name}.rgb", out.tobytes())})
    return cases


def _decoded(w: _Writer, image_path: Path) -> dict:
    """The decoded file's pixels before EXIF orientation, and the orientation Pillow reads."""
    with Image.open(image_path) as decoded:
        return {"source": w.pixels(image_path.stem, decoded), "orientation": decoded.getexif().get(0x0112, 1)}


def _preprocess_case(w: _Writer, name: str, image_path: Path, spec: PreprocessSpec,
                     quantized: tuple[str, float, int] | None = None) -> dict:
    """One image -> expected input tensor."""
    tensor = preprocess(image_path, spec)
    case = {"name": name, **_decoded(w, image_path), "spec": spec.to_dict()}
    if image_path.suffix.lower() in (".jpg", ".jpeg"):
        case["jpeg"] = w.raw(f"{name}.jpg", image_path.read_bytes())
    if quantized is None:
        case["input"] = {"dtype": "float32", "scale": 0.0, "zero_point": 0}
        case["expected"] = w.raw(f"{name}.input", tensor.astype("<f4").tobytes())
    else:
        dtype, scale, zero_point = quantized
        case["input"] = {"dtype": dtype, "scale": scale, "zero_point": zero_point}
        case["expected"] = w.raw(f"{name}.input", quantize(tensor, dtype, scale, zero_point).tobytes())
    return case


def _exif_photos(root: Path, photo: Path) -> list[tuple[int, Path]]:
    """A portrait, odd-sized JPEG crop of a photo, saved once per EXIF orientation 1..8."""
    with Image.open(photo) as image:
        crop = image.convert("RGB").crop((40, 10, 341, 287))  # 301x277: odd sizes, landscape before rotation
    paths = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = root / f"exif_{orientation}.jpg"
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
        path.write_bytes(buffer.getvalue())
        paths.append((orientation, path))
    return paths


def _preprocess_cases(w: _Writer, photos: list[Path], scratch: Path) -> list[dict]:
    cases = [_preprocess_case(w, f"default_{p.stem}", p, SPECS["default"]) for p in photos]
    for spec_name, spec in SPECS.items():
        if spec_name != "default":
            cases += [_preprocess_case(w, f"{spec_name}_{p.stem}", p, spec) for p in photos[:3]]
    for q_name, quantized in QUANTIZED_INPUTS.items():
        spec = SPECS["imagenet"] if q_name == "int8_clipping" else SPECS["default"]
        cases += [_preprocess_case(w, f"{q_name}_{p.stem}", p, spec, quantized) for p in photos[:3]]
    for orientation, path in _exif_photos(scratch, photos[1]):
        cases.append(_preprocess_case(w, f"exif_{orientation}", path, SPECS["default"]))
    return cases


def _postprocess_cases(w: _Writer, photos: list[Path]) -> list[dict]:
    """Raw output tensors (float32 and int8) of a seeded model and the top-5 Python derives from them."""
    model = create_model("xformer_xxs", seed=3)
    labels = model.model_config.labels
    cases = []
    for photo in photos[:3]:
        with torch.no_grad():
            logits = model(torch.from_numpy(preprocess(photo, model.model_config.preprocess))).numpy()[0]
        scale = float(np.float32((logits.max() - logits.min()) / 255))
        zero_point = int(np.round(-128 - logits.min() / scale))
        raw = quantize(logits, "int8", scale, zero_point)
        dequantized = (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
        float_info = {"dtype": "float32", "scale": 0.0, "zero_point": 0}
        int8_info = {"dtype": "int8", "scale": scale, "zero_point": zero_point}
        for kind, values, data, info in (("float32", logits, logits.astype("<f4").tobytes(), float_info),
                                         ("int8", dequantized, raw.tobytes(), int8_info)):
            name = f"output_{kind}_{photo.stem}"
            cases.append({"name": name, "output": w.raw(f"{name}.output", data), "info": info, "labels": labels,
                          "top5": _top5(top_k(values, labels, 5))})
    tied = np.array([0.5, 2.0, -1.0, 2.0, 0.5, 2.0, -3.0], dtype=np.float32)
    tied_labels = [f"class {i}" for i in range(tied.size)]
    cases.append({"name": "output_ties", "output": w.raw("output_ties.output", tied.astype("<f4").tobytes()),
                  "info": {"dtype": "float32", "scale": 0.0, "zero_point": 0}, "labels": tied_labels,
                  "top5": _top5(top_k(tied, tied_labels, 5))})
    return cases


def _latency() -> dict:
    """Skewed timings (a few stalls) and their summary by `xformer bench`'s own statistics."""
    from xformer.benchmarks.stats import summarize

    samples = np.random.default_rng(1).gamma(4.0, 2.5, size=37)
    samples[[3, 20]] *= 6
    return {"samples_ms": samples.tolist(), "summary": summarize(samples).to_dict()}


def _top5(predictions: list[Prediction]) -> list[dict]:
    return [{"index": p.index, "label": p.label, "score": p.score, "logit": p.logit} for p in predictions]


def _tensor_info(info: TensorInfo) -> dict:
    return {"dtype": info.dtype, "scale": info.scale, "zero_point": info.zero_point}


def _little_endian(array: np.ndarray) -> bytes:
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def export_golden_models(out_dir: Path) -> dict[str, Path]:
    """Real .tflite files of a seeded model, one per GOLDEN_EXPORTS entry, written by `xformer export`."""
    model = create_model(GOLDEN_ARCH, seed=3)
    paths = {}
    for name, (precision, int8_io) in GOLDEN_EXPORTS.items():
        [record] = export(model, formats="tflite", precisions=[precision], imgsz=GOLDEN_IMGSZ,
                          out_dir=out_dir / name, validate=False, int8_io=int8_io)
        if not record.ok:
            raise RuntimeError(f"exporting the golden {name} model failed: {record.error}")
        paths[name] = record.path
    return paths


def _model_cases(w: _Writer, models: dict[str, Path], photos: list[Path]) -> list[dict]:
    """Per real .tflite and photo: the tensor the LiteRT interpreter was fed, its raw output tensor (int8 for an
    int8-I/O file) and the runtime's top-5, as `xformer predict` computes them."""
    cases = []
    for name, path in models.items():
        runtime = load(path)
        interpreter = runtime.interpreter
        input_index = interpreter.get_input_details()[0]["index"]
        output_index = interpreter.get_output_details()[0]["index"]
        images = []
        for photo in photos:
            top5 = runtime.predict(photo, k=5)
            case_name = f"model_{name}_{photo.stem}"
            images.append({"name": case_name, **_decoded(w, photo),
                           "input": w.raw(f"{case_name}.input", _little_endian(interpreter.get_tensor(input_index))),
                           "output": w.raw(f"{case_name}.output",
                                           _little_endian(interpreter.get_tensor(output_index))),
                           "top5": _top5(top5)})
        cases.append({"name": name, "file": w.raw(f"model_{name}.tflite", path.read_bytes()),
                      "input": _tensor_info(runtime.inputs[0]), "output": _tensor_info(runtime.outputs[0]),
                      "images": images})
    return cases


def _pte_model_cases(w: _Writer, models: dict[str, Path], photos: list[Path]) -> list[dict]:
    """Per real .pte and photo: the float32 tensor the ExecuTorch runtime was fed (the contract's own input), its
    raw logits and the runtime's top-5, as `xformer predict` computes them."""
    cases = []
    for name, path in models.items():
        runtime = load(path, threads=1)
        images = []
        for photo in photos:
            fed = preprocess(photo, runtime.preprocess_spec)
            case_name = f"model_{name}_{photo.stem}"
            images.append({"name": case_name, **_decoded(w, photo),
                           "input": w.raw(f"{case_name}.input", _little_endian(fed)),
                           "output": w.raw(f"{case_name}.output", _little_endian(runtime.run(fed))),
                           "top5": _top5(runtime.predict(photo, k=5))})
        cases.append({"name": name, "file": w.raw(f"model_{name}.pte", path.read_bytes()),
                      "input": _tensor_info(runtime.inputs[0]), "output": _tensor_info(runtime.outputs[0]),
                      "images": images})
    return cases


def _metadata_case(models: list[dict], paths: dict[str, Path]) -> dict:
    """What Python reads from the real int8 file's metadata, for the Java reader to reproduce."""
    case = next(c for c in models if c["name"] == "int8")
    metadata = read_tflite_metadata(paths["int8"])
    return {"file": case["file"], "arch": metadata["arch"], "precision": metadata["export"]["precision"],
            "labels": metadata["labels"], "preprocess": metadata["preprocess"]}


def write_goldens(root: Path, models: dict[str, Path], pte_models: dict[str, Path] | None = None) -> Path:
    """Writes every golden file under `root`, using `models` (from export_golden_models) and `pte_models` (name ->
    .pte file); returns the manifest."""
    w = _Writer(root)
    photos = sample_images()
    with Image.open(photos[1]) as photo:
        resize = _resize_cases(w, photo.convert("RGB"))
    postprocess = _postprocess_cases(w, photos)
    scratch = root / "scratch"
    scratch.mkdir(exist_ok=True)
    model_cases = _model_cases(w, models, photos) + _pte_model_cases(w, pte_models or {}, photos)
    manifest = {"pillow": PIL.__version__, "resize": resize, "preprocess": _preprocess_cases(w, photos, scratch),
                "postprocess": postprocess, "models": model_cases, "latency": _latency(),
                "metadata": _metadata_case(model_cases, models)}
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path
