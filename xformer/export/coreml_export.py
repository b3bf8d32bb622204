"""CoreML export: an ML program (.mlpackage) that Xcode shows as an image classifier (or, for segmenters, a
plain multi-array of per-pixel class logits), checked on Linux.

Route: `torch.export.export(...).run_decompositions({})` into `coremltools.convert` (mlprogram, iOS 16+).
torch.export works with any numpy (the TorchScript route needs numpy < 2.4), is the path PyTorch supports
going forward, and is what the ONNX exporter uses too, so both formats start from the same graph.

Conversion runs in two steps because coremltools cannot combine a classifier with typed outputs: step one
converts to a MIL program with fp32 `logits` and `probabilities` (the default for fp16 programs on iOS 16+
would be fp16 outputs, which apps rarely expect); step two adds the classifier (labels, `classLabel` and
`classLabel_probs`, so Xcode's preview works) and compresses the weights for `int8` (linear, per channel)
and `palette6` (6-bit k-means palettes). Both compute in fp16. Palettisation is a precision rather than a
flag so that its file, tolerance and report entry never collide with the fp16 file's.

The image input is a CoreML ImageType when the PreprocessSpec fits one (pixels times one scale); per-channel
mean/std cannot be expressed there, so they are folded into the model as its first op and the report says so.
`coreml_input="tensor"` takes a float32 tensor already preprocessed by the contract instead.

After saving, the package is loaded back from disk and its MIL program checked (`mil_eval`): op histogram,
every tensor's rank, ops per attention layer, and the program evaluated op by op against PyTorch on the
sample photos. That check is the parity on Linux; on macOS, prediction through `CoreMLRuntime` runs as well.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import has_seeded_weights
from ..errors import OptionError, require
from ..preprocess import PreprocessSpec
from .metadata import METADATA_KEY, dumps
from .parity import compare, detection_report, match_detections, parity_inputs, reference_logits

__all__ = ["CoreMLClassifier", "CoreMLDetector", "export_coreml", "mil_detection_parity", "mil_parity"]

INPUT_KINDS = ("image", "tensor")
EVALUATOR = "MIL program of the saved package, evaluated op by op with torch (xformer.export.mil_eval)"
# coremltools draws a tqdm bar for every conversion stage; (module, name) of the tqdm each stage uses.
_PROGRESS_BARS = (("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
                  ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
                  ("coremltools.optimize.coreml._quantization_passes", "tqdm"))


class CoreMLClassifier(nn.Module):
    """What the package computes: normalisation CoreML cannot express (if any), the model, logits and softmax
    (a segmenter's package has its logits only: CoreML's classifier wrapper describes one label per image)."""

    def __init__(self, model: nn.Module, spec: PreprocessSpec | None = None, probabilities: bool = True):
        super().__init__()
        self.model = model
        self.probabilities = probabilities
        self.normalize = spec is not None
        if spec is not None:
            self.register_buffer("mean", torch.tensor(spec.mean).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(spec.std).reshape(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.normalize:
            image = (image - self.mean) / self.std
        logits = self.model(image)
        return (logits, logits.softmax(dim=-1)) if self.probabilities else (logits,)


class CoreMLDetector(nn.Module):
    """What a detector's package (or, for `nms`, the first model of its pipeline) computes: normalisation CoreML
    cannot express (if any), then the form's outputs; for `nms`, the NMS model's inputs: `raw_confidence` (N, C)
    and `raw_coordinates` (N, 4) centre x, y, width, height as fractions of the input, as Vision expects."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int], spec: PreprocessSpec | None = None):
        super().__init__()
        self.classifier = CoreMLClassifier(model, spec, probabilities=False)
        self.form = model.form
        height, width = input_size
        self.register_buffer("size", torch.tensor([width, height], dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        (outputs,) = self.classifier(image)
        if self.form != "nms":
            return tuple(outputs)
        boxes, scores = outputs
        centre, extent = (boxes[0, :, :2] + boxes[0, :, 2:]) / 2, boxes[0, :, 2:] - boxes[0, :, :2]
        return scores[0], torch.cat([centre / self.size, extent / self.size], dim=1)


def _coreml_output_names(model: nn.Module) -> list[str]:
    form = getattr(model, "form", None)
    if form is None:
        return ["logits"]
    return ["raw_confidence", "raw_coordinates"] if form == "nms" else list(model.output_names)


def _nms_pipeline(ct, decoder, metadata: dict):
    """The decoder followed by coremltools' NonMaximumSuppression model (per class, the metadata's thresholds):
    outputs `confidence` (K, C) and `coordinates` (K, 4), which Xcode previews as an object detector."""
    detection, labels = metadata["detection"], list(metadata["labels"])
    decoder_spec = decoder.get_spec()
    nms = ct.proto.Model_pb2.Model()
    nms.specificationVersion = decoder_spec.specificationVersion
    for source, name in zip(decoder_spec.description.output, ("confidence", "coordinates")):
        nms.description.input.add().CopyFrom(source)
        output = nms.description.output.add()
        output.CopyFrom(source)
        output.name = name
        array = output.type.multiArrayType
        del array.shape[:]
        columns = len(labels) if name == "confidence" else 4
        for lower, upper in ((0, -1), (columns, columns)):  # any number of boxes kept
            bound = array.shapeRange.sizeRanges.add()
            bound.lowerBound, bound.upperBound = lower, upper
    config = nms.nonMaximumSuppression
    config.confidenceInputFeatureName, config.coordinatesInputFeatureName = "raw_confidence", "raw_coordinates"
    config.confidenceOutputFeatureName, config.coordinatesOutputFeatureName = "confidence", "coordinates"
    config.iouThreshold, config.confidenceThreshold = detection["iou_threshold"], detection["score_threshold"]
    config.pickTop.perClass = True
    config.stringClassLabels.vector.extend(labels)
    return ct.models.utils.make_pipeline(decoder, ct.models.MLModel(nms, skip_model_load=True))


@contextlib.contextmanager
def _quiet_conversion():
    """No progress bars and no converter warnings (torch.export internals, untested versions) on stderr."""
    tqdm = require("tqdm", "CoreML export", "coreml")
    quiet = functools.partial(tqdm.tqdm, disable=True)
    patched = []
    for module_name, attr in _PROGRESS_BARS:
        module = require(module_name, "CoreML export", "coreml")
        patched.append((module, attr, getattr(module, attr)))
        setattr(module, attr, quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)


def import_coremltools():
    """coremltools, without its import-time notes (untested torch version, macOS-only libraries missing)."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return require("coremltools", "CoreML export", "coreml")
    finally:
        logger.setLevel(level)


def _attention_weights(classifier: CoreMLClassifier) -> dict[str, tuple[str, str]]:
    """Attention layer name (as the ONNX report names it) -> MIL const names of its qkv and proj weights.

    torch.export names a parameter `p_` + its dotted path with underscores; coremltools keeps that name and
    may append a suffix (`_to_fp16`, ...), which `mil_eval.program_stats` allows for.
    """
    layers = {}
    for name, module in classifier.named_modules():
        if name.endswith(".attn") and isinstance(getattr(module, "qkv", None), nn.Conv2d | nn.Linear):
            key = name
            while key.startswith(("model.", "classifier.")):  # the wrappers: classifier, detector, NHWC
                key = key.removeprefix("model.").removeprefix("classifier.")
            layers[key] = tuple("p_" + f"{name}.{p}.weight".replace(".", "_") for p in ("qkv", "proj"))
    return layers


def _input_type(ct, kind: str, spec: PreprocessSpec, shape: tuple[int, ...]):
    if kind == "tensor":
        return ct.TensorType(name="image", shape=shape, dtype=np.float32)
    layout = ct.colorlayout.BGR if spec.channel_order == "BGR" else ct.colorlayout.RGB
    return ct.ImageType(name="image", shape=shape, scale=spec.scale, color_layout=layout)


def _compression(ct, precision: str):
    """The weight compression pass for step two, or None (fp16/fp32 weights)."""
    cto = require("coremltools.optimize.coreml", "CoreML weight compression", "coreml")

    if precision == "palette6":
        require("sklearn", "CoreML palettisation (k-means over each weight tensor)", "coreml")
        name, config = "compression::palettize_weights", cto.OpPalettizerConfig(mode="kmeans", nbits=6)
    elif precision == "int8":
        name = "compression::linear_quantize_weights"
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    else:
        return None
    pipeline = ct.PassPipeline.EMPTY
    pipeline.append_pass(name)
    pipeline.set_options(name, {"config": cto.OptimizationConfig(global_config=config)})
    return pipeline


_DETECTION_OUTPUTS = {
    "confidence": "per box kept by NMS, the score of every class",
    "coordinates": "per box kept by NMS: centre x, centre y, width, height as fractions of the input",
    "raw_confidence": "per anchor of every cell, objectness x class probability of every class (before NMS)",
    "raw_coordinates": "per anchor of every cell: centre x, centre y, width, height as fractions of the input",
    "boxes": "x1, y1, x2, y2 in input pixels, every anchor of every cell",
    "scores": "objectness x class probability per box and class; run NMS on these",
    **{f"stride{s}": f"raw YOLOv3 head map at stride {s}; decode with the metadata's anchors" for s in (32, 16, 8)},
}


def _describe(mlmodel, metadata: dict, kind: str, shape: tuple[int, ...], normalization: str,
              coremltools_version: str) -> None:
    """What Xcode shows: author, license, version, descriptions, and our metadata document."""
    spec = PreprocessSpec.from_dict(metadata["preprocess"])
    height, width = spec.input_size
    arch, sha = metadata["arch"], metadata["weights_sha256"]
    mlmodel.author = "xformer-mobile"
    mlmodel.license = "Apache-2.0 (xformer-mobile); the weights keep the license of their checkpoint"
    mlmodel.version = metadata["xformer_version"]
    what = "semantic segmenter" if metadata.get("task") == "segment" else "image classifier"
    mlmodel.short_description = (f"{arch} {what}, {metadata['num_classes']} classes, "
                                 f"{metadata['export']['precision']}, weights sha256 {sha[:12]}; "
                                 "exported and checked against PyTorch by xformer-mobile")
    resize = f"short side resized to {spec.resize_size} ({spec.interpolation}), " if spec.resize_size else ""
    if kind == "image":
        mlmodel.input_description["image"] = (f"{spec.channel_order} image {width}x{height}: {resize}"
                                              f"{spec.crop} crop; {normalization}")
    else:
        mlmodel.input_description["image"] = (f"float32 {spec.layout} tensor {'x'.join(map(str, shape))} ({resize}"
                                              f"{spec.crop} crop, pixels * {spec.scale:.6g}, (x - mean) / std "
                                              "as in xformer_metadata.preprocess)")
    detection = metadata.get("detection")
    if detection is not None:
        what = f"object detector ({detection['outputs']} outputs)"
        mlmodel.short_description = (f"{arch} {what}, {metadata['num_classes']} classes, "
                                     f"{metadata['export']['precision']}, weights sha256 {sha[:12]}; "
                                     "exported and checked against PyTorch by xformer-mobile")
        present = {output.name for output in mlmodel.get_spec().description.output}
        for name, text in _DETECTION_OUTPUTS.items():
            if name in present:
                mlmodel.output_description[name] = text
    elif metadata.get("task") == "segment":
        mlmodel.output_description["logits"] = ("class scores per pixel at a quarter of the input resolution "
                                                 "(1 x classes x H/4 x W/4); upsample bilinearly, then argmax")
    else:
        mlmodel.output_description["logits"] = "raw class scores, before softmax"
        mlmodel.output_description["classLabel"] = "most likely class"
        mlmodel.output_description["classLabel_probs"] = "softmax probability of every class"
    user = mlmodel.user_defined_metadata
    user[METADATA_KEY] = dumps(metadata)
    user.update({"arch": arch, "weights_sha256": sha, "preprocess": dumps(metadata["preprocess"]),
                 "xformer_version": metadata["xformer_version"], "torch_version": metadata["torch_version"],
                 "coremltools_version": coremltools_version})


def _program_inputs(batch: np.ndarray, kind: str, spec: PreprocessSpec, channels_last_io: bool) -> np.ndarray:
    """The parity batch (preprocessed NCHW floats) as the package takes it: pixels for an ImageType."""
    if kind == "image":
        mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
        return np.round((batch * std + mean) / np.float32(spec.scale)).astype(np.float32)
    return np.ascontiguousarray(batch.transpose(0, 2, 3, 1)) if channels_last_io else batch


def mil_parity(function, reference: nn.Module, spec: PreprocessSpec, kind: str, channels_last_io: bool,
               precision: str) -> dict:
    """The saved program against PyTorch on the photos and seeded random inputs, judged by the precision's
    tolerance (parity.TOLERANCES, as prediction on macOS is).

    fp32 programs are evaluated twice: exactly, and with every tensor rounded to fp16 (what an fp16 export of
    the same graph computes). `top1_near_ties` counts photos whose reference top-1 leads the runner-up by no
    more than twice the error on that photo: there the precision, not the conversion, decides the top-1.
    """
    from .mil_eval import MILEvaluator

    batch, photos = parity_inputs(spec)
    expected = reference_logits(reference, batch)
    trained = not has_seeded_weights(reference)
    inputs = _program_inputs(batch, kind, spec, channels_last_io)

    def check(evaluator: MILEvaluator, tolerance: str) -> dict:
        logits = np.concatenate([evaluator(image=x[None])["logits"].reshape(1, *expected.shape[1:]) for x in inputs])
        report = compare(expected, logits, photos, tolerance, trained).to_dict()
        if expected.ndim > 2:  # segmenters: judged per pixel, no top-1 to be near a tie
            return report
        runner_up, leader = np.sort(expected[:photos], axis=1)[:, -2:].T
        error = np.abs(expected[:photos] - logits[:photos]).max(axis=1)
        report["top1_near_ties"] = int((leader - runner_up <= 2 * error).sum())
        return report

    result = {**check(MILEvaluator(function), precision), "evaluator": EVALUATOR}
    if precision == "fp32":
        rounded = check(MILEvaluator(function, fp16_everywhere=True), "fp16")
        result["fp16_rounded"] = rounded
        result["passed"] = result["passed"] and rounded["passed"]
        result["failures"] = result["failures"] + [f"fp16-rounded: {f}" for f in rounded["failures"]]
    return result


# Every precision of one request converts the same traced program (the exporter passes the same deploy form).
_programs: dict[tuple, tuple] = {}


def _program(classifier: CoreMLClassifier | CoreMLDetector, example: torch.Tensor):
    """The decomposed torch.export program of `classifier` (a detector's wraps one), traced once per model,
    wrapper, normalisation and shape."""
    inner = classifier.classifier if isinstance(classifier, CoreMLDetector) else classifier
    key = (id(inner.model), type(classifier), getattr(classifier, "form", None), inner.normalize,
           inner.probabilities, tuple(example.shape))
    if key not in _programs:
        _programs.clear()
        _programs[key] = (inner.model, torch.export.export(classifier, (example,)).run_decompositions({}))
    return _programs[key][1]


def export_coreml(model: nn.Module, path: Path, *, input_size: tuple[int, int], channels_last_io: bool,
                  metadata: dict, precision: str, reference: nn.Module, coreml_input: str = "image", **_) -> dict:
    """Convert `model` (deploy form) to an .mlpackage at `path`, then check the saved package; returns details."""
    ct = import_coremltools()
    from .mil_eval import load_program, program_stats

    if coreml_input not in INPUT_KINDS:
        raise OptionError(f"coreml_input must be one of {', '.join(INPUT_KINDS)}, got {coreml_input!r}")
    compression = _compression(ct, precision)
    spec = PreprocessSpec.from_dict(metadata["preprocess"])
    fold = coreml_input == "image" and not spec.is_identity_normalization
    normalization = ("mean/std are per channel, which an ImageType cannot express: folded into the model"
                     if fold else f"pixels * {spec.scale:.6g} in the ImageType" if coreml_input == "image"
                     else "done by the caller")
    segment, detection = metadata.get("task") == "segment", metadata.get("detection")
    if detection is not None:
        classifier = CoreMLDetector(model, input_size, spec if fold else None).eval()
    else:
        classifier = CoreMLClassifier(model, spec if fold else None, probabilities=not segment).eval()
    height, width = input_size
    shape = (1, height, width, 3) if channels_last_io else (1, 3, height, width)
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    metadata = {**metadata, "export": {**metadata["export"], "coreml_input": coreml_input,
                                       "normalization": normalization}}
    with _quiet_conversion(), torch.no_grad():
        program = _program(classifier, example)
        outputs = ["logits", "probabilities"] if detection is None and not segment else _coreml_output_names(model)
        mil = ct.convert(program, inputs=[_input_type(ct, coreml_input, spec, shape)],
                         outputs=[ct.TensorType(name=name, dtype=np.float32) for name in outputs],
                         convert_to="milinternal", minimum_deployment_target=ct.target.iOS16,
                         compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
        # The output dtypes are fixed by now; coremltools' classifier step reorders the outputs and would index
        # this list past its end.
        mil.functions["main"].set_output_types(None)
        classifier_config = None if segment or detection else ct.ClassifierConfig(
            list(metadata["labels"]), predicted_feature_name="classLabel",
            predicted_probabilities_output="probabilities")
        mlmodel = ct.convert(mil, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                             classifier_config=classifier_config,
                             compute_precision=ct.precision.FLOAT32,  # step one already chose the precision
                             pass_pipeline=compression or ct.PassPipeline.EMPTY,
                             skip_model_load=True)
    _describe(mlmodel, metadata, coreml_input, shape, normalization, ct.__version__)
    mlmodel.save(str(path))

    function = load_program(path)
    stats = program_stats(function, _attention_weights(classifier))
    details = {"exporter": "torch.export -> coremltools (mlprogram)", "minimum_deployment_target": "iOS16",
               "coreml_input": coreml_input, "normalization": normalization, **stats}
    if stats["max_rank"] > 4:
        details["warnings"] = [f"tensors of rank {stats['max_rank']}: CoreML allows 5, but the Neural Engine "
                               "and this project's deploy forms keep every tensor at rank <= 4"]
    if detection is None:
        details["mil_parity"] = mil_parity(function, reference, spec, coreml_input, channels_last_io, precision)
        return details
    details["mil_parity"] = mil_detection_parity(function, reference, spec, coreml_input, channels_last_io,
                                                 precision, metadata)
    if detection["outputs"] == "nms":  # the checked program becomes the first model of the pipeline
        pipeline = _nms_pipeline(ct, ct.models.MLModel(str(path), skip_model_load=True), metadata)
        _describe(pipeline, metadata, coreml_input, shape, normalization, ct.__version__)
        shutil.rmtree(path)
        pipeline.save(str(path))
        details["nms"] = "coremltools NonMaximumSuppression model (per class) after the program, as a pipeline"
    return details


def mil_detection_parity(function, reference: nn.Module, spec: PreprocessSpec, kind: str, channels_last_io: bool,
                         precision: str, metadata: dict) -> dict:
    """A detector's saved program against PyTorch, box for box (parity.match_detections); an `nms` package's
    program is judged on its boxes before the NMS model, put through the same NMS as a `decoded` file."""
    from .mil_eval import MILEvaluator

    batch, photos = parity_inputs(spec)
    inputs = _program_inputs(batch, kind, spec, channels_last_io)
    detection = metadata["detection"]
    form = detection["outputs"]
    names = ["boxes", "scores"] if form == "nms" else detection["output_names"]
    judged = {**metadata, "detection": {**detection, "outputs": "decoded" if form == "nms" else form}}
    evaluator = MILEvaluator(function)
    height, width = spec.input_size
    size = np.array([width, height] * 2, np.float32)
    results = []
    with torch.no_grad():
        for x, pixels in zip(batch, inputs):
            out = evaluator(image=pixels[None])
            if form == "nms":
                centre, extent = np.split(out["raw_coordinates"] * size, 2, axis=1)
                out = {"boxes": np.concatenate([centre - extent / 2, centre + extent / 2], axis=1)[None],
                       "scores": out["raw_confidence"][None]}
            results.append(match_detections(reference(torch.from_numpy(x[None])), [out[n] for n in names], judged,
                                            precision))
    report = detection_report(results, photos, precision, not has_seeded_weights(reference)).to_dict()
    return {**report, "evaluator": EVALUATOR}
