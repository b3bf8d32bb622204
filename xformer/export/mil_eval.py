"""Linux-side checks of a saved CoreML package: its MIL program, loaded back from disk and walked op by op.

CoreML prediction needs macOS, so a conversion bug would otherwise go unnoticed on Linux. This module loads
the program the package really contains (`coremltools.converters.mil.frontend.milproto.load`), reports its
structure (op histogram, every tensor's rank, ops per attention layer), and evaluates it with a small torch
implementation of each MIL op type our models produce. An op type without an implementation raises, naming
it, so the check never silently skips part of a graph. Tensors the program keeps in fp16 are rounded to fp16
after every op (arithmetic inside an op runs in fp32, as the Neural Engine and GPU accumulate); an fp32
program can also be evaluated as if every tensor were fp16, which predicts what its fp16 export will do.
macOS prediction (`xformer.runtimes.coreml_runtime`) stays the reference where it is available.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ExportError, ModelFileError, require

__all__ = ["MILEvaluator", "load_program", "program_stats"]

_CONSTEXPR_OPS = ("constexpr_affine_dequantize", "constexpr_lut_to_dense")  # compressed weights (int8, palettes)


def load_program(path: str | Path):
    """The main function of the MIL program stored in an .mlpackage (no macOS needed)."""
    ct = require("coremltools", "reading CoreML packages", "coreml")
    load = require("coremltools.converters.mil.frontend.milproto.load", "reading CoreML packages", "coreml").load

    try:
        spec = ct.utils.load_spec(str(path))
        weights_dir = ct.models.MLModel(str(path), skip_model_load=True).weights_dir
        program = load(spec, spec.specificationVersion, weights_dir)
    except Exception as err:  # protobuf and coremltools raise many types for a broken package
        raise ModelFileError(f"{Path(path).name} is not a readable ML program package ({err})") from err
    return program.functions["main"]


def _is_tensor(var) -> bool:
    types = require("coremltools.converters.mil.mil.types", "evaluating MIL programs", "coreml")
    return types.is_tensor(var.sym_type)


def _weight_consumer(function, const_name: str):
    """The first compute op reading the weight const named `const_name` (possibly through a decompression op)."""
    matches = [op for op in function.operations if op.op_type in ("const", *_CONSTEXPR_OPS)
               and (op.name == const_name or op.name.startswith(const_name + "_"))]
    frontier = [v for op in matches for v in op.outputs]
    while frontier:
        var = frontier.pop(0)
        for child in var.child_ops:
            if child.op_type in _CONSTEXPR_OPS:
                frontier.extend(child.outputs)
            else:
                return child
    return None


def _ops_between(start, end) -> list:
    """Ops on some path from `start` to `end`, both included: one attention layer, whatever it lowered to."""
    forward, stack = set(), [start]
    while stack:
        op = stack.pop()
        if op not in forward:
            forward.add(op)
            stack.extend(child for out in op.outputs for child in out.child_ops)
    between, stack = set(), [end]
    while stack:
        op = stack.pop()
        if op in forward and op not in between:
            between.add(op)
            stack.extend(var.op for var in _input_vars(op) if var.op is not None)
    return [op for op in start.enclosing_block.operations if op in between]


def _input_vars(op) -> list:
    return [v for value in op.inputs.values() for v in (value if isinstance(value, list | tuple) else [value])]


def program_stats(function, attention_weights: dict[str, tuple[str, str]] | None = None) -> dict:
    """Op histogram (consts counted apart), the max rank of every tensor, and the ops of each attention layer.

    `attention_weights` maps a layer name to the const names of its input and output projection weights; the
    layer's ops are those on the paths from the first projection to the second.
    """
    compute = [op for op in function.operations if op.op_type != "const" and op.op_type not in _CONSTEXPR_OPS]
    tensors = list(function.inputs.values()) + [v for op in function.operations for v in op.outputs]
    ranks = [v.rank for v in tensors if _is_tensor(v)]
    histogram = collections.Counter(op.op_type for op in compute)
    layers = {}
    for layer, (first, last) in (attention_weights or {}).items():
        start, end = _weight_consumer(function, first), _weight_consumer(function, last)
        if start is None or end is None:
            raise ExportError(f"attention layer {layer}: weights {first!r} / {last!r} not found in the MIL program")
        ops = _ops_between(start, end)
        layers[layer] = {"ops": len(ops), "op_types": dict(collections.Counter(op.op_type for op in ops)),
                         "transposes": sum(op.op_type == "transpose" for op in ops),
                         "max_rank": max(v.rank for op in ops for v in op.outputs if _is_tensor(v))}
    return {"ops": len(compute), "consts": len(function.operations) - len(compute),
            "op_histogram": dict(sorted(histogram.items())), "max_rank": max(ranks), "attention_layers": layers}


class _Op:
    """One compute op, resolved once: its handler, which env entries it reads and its compile-time params.

    `Operation.inputs` rebuilds a dict on every access, far too slow to call per op and per image.
    """

    def __init__(self, op, handler: Callable):
        self.name, self.handler = op.name, handler
        self.refs, self.params = {}, {}
        for key, value in op.inputs.items():
            self.refs[key] = [v.name for v in value] if isinstance(value, list | tuple) else value.name
            if not isinstance(value, list | tuple) and value.val is not None:
                self.params[key] = value.val
        self.outputs = [v.name for v in op.outputs]
        self.env: dict = {}

    def t(self, key: str):
        """A runtime input (a tensor, or a list of them for variadic inputs such as concat's values)."""
        ref = self.refs[key]
        return [self.env[r] for r in ref] if isinstance(ref, list) else self.env[ref]

    def p(self, key: str, default=None):
        """A compile-time input (axes, strides, ...) as a Python value, or `default` when the op omits it."""
        value = self.params.get(key, default)
        return value.tolist() if isinstance(value, np.ndarray | np.generic) else value

    def has(self, key: str) -> bool:
        return key in self.refs


def _conv(a: _Op):
    x, weight = a.t("x"), a.t("weight")
    if x.dim() != 4:
        raise ExportError(f"MIL conv {a.name}: only 2-D convolutions are evaluated, got a rank-{x.dim()} input")
    strides, dilations = a.p("strides", [1, 1]), a.p("dilations", [1, 1])
    pad_type = a.p("pad_type", "valid")
    if pad_type not in ("custom", "valid"):
        raise ExportError(f"MIL conv {a.name}: pad_type {pad_type!r} is not evaluated (only custom and valid)")
    top, bottom, left, right = a.p("pad") if pad_type == "custom" else (0, 0, 0, 0)
    padding = (top, left)
    if (top, left) != (bottom, right):
        x, padding = F.pad(x, (left, right, top, bottom)), 0
    bias = a.t("bias") if a.has("bias") else None
    return F.conv2d(x, weight, bias, strides, padding, dilations, a.p("groups", 1))


def _slice_by_index(a: _Op):
    x = a.t("x")
    rank = x.dim()
    begin, end = a.p("begin"), a.p("end")
    stride = a.p("stride", [1] * rank)
    begin_mask, end_mask = a.p("begin_mask", [False] * rank), a.p("end_mask", [False] * rank)
    squeeze = a.p("squeeze_mask", [False] * rank)
    if any(s <= 0 for s in stride):
        raise ExportError(f"MIL slice_by_index {a.name}: negative strides are not evaluated")
    index = []
    for axis, size in enumerate(x.shape):
        b = 0 if begin_mask[axis] else begin[axis] + (size if begin[axis] < 0 else 0)
        e = size if end_mask[axis] else end[axis] + (size if end[axis] < 0 else 0)
        index.append(b if squeeze[axis] else slice(b, e, stride[axis]))
    return x[tuple(index)]


def _split(a: _Op):
    x, axis = a.t("x"), a.p("axis")
    sizes = a.p("split_sizes") or [x.shape[axis] // a.p("num_splits")] * a.p("num_splits")
    return torch.split(x, sizes, dim=axis)


def _concat(a: _Op):
    if a.p("interleave", False):
        raise ExportError(f"MIL concat {a.name}: interleaved concat is not evaluated")
    return torch.cat(a.t("values"), dim=a.p("axis"))


def _reduce(fn: Callable) -> Callable:
    def reduce(a: _Op):
        x, axes = a.t("x"), a.p("axes")
        axes = list(range(x.dim())) if axes is None else axes
        return fn(x, dim=axes, keepdim=a.p("keep_dims", False))

    return reduce


def _layer_norm(a: _Op):
    x, axes, eps = a.t("x"), a.p("axes"), a.p("epsilon", 1e-5)
    axes = [a % x.dim() for a in axes]
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.dim())]
    if a.has("gamma"):
        y = y * a.t("gamma").reshape(shape)
    if a.has("beta"):
        y = y + a.t("beta").reshape(shape)
    return y


def _upsample_bilinear(a: _Op):
    # CoreML maps output pixel i to input coordinate (i + 0.5) / scale - 0.5 (align_corners=False); torch does
    # the same with this very scale when it is given as scale_factor and not recomputed from the sizes.
    scales = (a.p("scale_factor_height", 1.0), a.p("scale_factor_width", 1.0))
    return F.interpolate(a.t("x"), scale_factor=scales, mode="bilinear", align_corners=a.p("align_corners", True),
                         recompute_scale_factor=False)


def _classify(a: _Op):
    probabilities = a.t("probabilities").reshape(-1)
    classes = list(a.p("classes"))
    return classes[int(probabilities.argmax())], dict(zip(classes, probabilities.tolist()))


_OPS: dict[str, Callable] = {
    "add": lambda a: a.t("x") + a.t("y"),
    "sub": lambda a: a.t("x") - a.t("y"),
    "mul": lambda a: a.t("x") * a.t("y"),
    "real_div": lambda a: a.t("x") / a.t("y"),
    "maximum": lambda a: torch.maximum(a.t("x"), a.t("y")),
    "sqrt": lambda a: torch.sqrt(a.t("x")),
    "silu": lambda a: F.silu(a.t("x")),
    "sigmoid": lambda a: torch.sigmoid(a.t("x")),
    "exp": lambda a: torch.exp(a.t("x")),
    "leaky_relu": lambda a: F.leaky_relu(a.t("x"), a.p("alpha", 0.01)),
    "upsample_nearest_neighbor": lambda a: F.interpolate(
        a.t("x"), scale_factor=(a.p("scale_factor_height", 1), a.p("scale_factor_width", 1)), mode="nearest"),
    "relu": lambda a: F.relu(a.t("x")),
    "clip": lambda a: torch.clamp(a.t("x"), a.p("alpha"), a.p("beta")),
    "cast": lambda a: a.t("x"),  # the output's dtype (fp16 / fp32) is applied after every op
    "softmax": lambda a: torch.softmax(a.t("x"), dim=a.p("axis", -1)),
    "reduce_mean": _reduce(torch.mean),
    "reduce_sum": _reduce(torch.sum),
    "conv": _conv,
    "linear": lambda a: F.linear(a.t("x"), a.t("weight"), a.t("bias") if a.has("bias") else None),
    "matmul": lambda a: torch.matmul(a.t("x").transpose(-2, -1) if a.p("transpose_x", False) else a.t("x"),
                                         a.t("y").transpose(-2, -1) if a.p("transpose_y", False) else a.t("y")),
    "layer_norm": _layer_norm,
    "reshape": lambda a: a.t("x").reshape(a.p("shape")),
    "transpose": lambda a: a.t("x").permute(a.p("perm")),
    "squeeze": lambda a: a.t("x").squeeze(a.p("axes")) if a.has("axes") else a.t("x").squeeze(),
    "slice_by_index": _slice_by_index,
    "split": _split,
    "concat": _concat,
    "upsample_bilinear": _upsample_bilinear,
    "classify": _classify,
}


class MILEvaluator:
    """Evaluates a loaded MIL function with torch, one op at a time.

    `fp16_everywhere=True` rounds every float tensor (weights included) to fp16, as if the program had been
    converted with fp16 compute precision; otherwise only the tensors the program itself keeps in fp16 are.
    """

    def __init__(self, function, fp16_everywhere: bool = False):
        types = require("coremltools.converters.mil.mil.types", "evaluating MIL programs", "coreml")
        unknown = sorted({op.op_type for op in function.operations} - {"const", *_CONSTEXPR_OPS, *_OPS})
        if unknown:
            raise ExportError(f"the MIL evaluator has no implementation of op type(s) {', '.join(unknown)}; "
                              "add them to xformer/export/mil_eval.py before trusting this package")
        fp16_types = (types.fp16, types.fp32) if fp16_everywhere else (types.fp16,)
        self.fp16 = {v.name for op in function.operations for v in op.outputs
                     if _is_tensor(v) and v.dtype in fp16_types}
        self.inputs = list(function.inputs)
        self.outputs = [v.name for v in function.outputs]
        self.constants, self.ops = {}, []
        for op in function.operations:
            if op.op_type == "const" or op.op_type in _CONSTEXPR_OPS:
                value = op.outputs[0].val if op.op_type == "const" else op.materialized_val_inference()
                self.constants[op.outputs[0].name] = self._constant(value, op.outputs[0].name)
            else:
                self.ops.append(_Op(op, _OPS[op.op_type]))

    def _constant(self, value, name: str):
        if isinstance(value, np.ndarray | np.generic) and value.dtype.kind == "f":
            return self._round(torch.from_numpy(np.asarray(value, dtype=np.float32)), name)
        if isinstance(value, np.ndarray | np.generic) and value.dtype.kind in "iub":
            return torch.from_numpy(np.asarray(value))
        return value

    def _round(self, value, name: str):
        if name in self.fp16 and isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.to(torch.float16).to(torch.float32)
        return value

    @torch.inference_mode()
    def __call__(self, **inputs: np.ndarray) -> dict:
        """Run the program on named float inputs; returns every output by name (tensors as numpy arrays)."""
        missing = [name for name in self.inputs if name not in inputs]
        if missing:
            raise ExportError(f"the MIL program needs input(s) {', '.join(missing)}, got {', '.join(inputs) or 'none'}")
        env = dict(self.constants)
        for name in self.inputs:
            env[name] = self._round(torch.from_numpy(np.asarray(inputs[name], dtype=np.float32)), name)
        for op in self.ops:
            op.env = env
            results = op.handler(op)
            results = results if len(op.outputs) > 1 else (results,)
            for name, value in zip(op.outputs, results):
                env[name] = self._round(value, name)
        return {name: env[name].numpy() if isinstance(env[name], torch.Tensor) else env[name] for name in self.outputs}
