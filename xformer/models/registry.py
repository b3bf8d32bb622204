"""Registry of model variants. A variant is data: a builder with its architecture config, the preprocessing
contract it was designed for, and a short description. `create_model` attaches a `ModelConfig` to every
model it builds, which checkpoints and exported files carry so no consumer has to guess."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import torch
from torch import nn

from ..preprocess import PreprocessSpec
from ..weights import mark_seeded

__all__ = ["CITYSCAPES_CLASSES", "ModelConfig", "ModelEntry", "coco_labels", "create_model", "get_model_entry",
           "imagenet_labels", "list_models", "register_model"]

DEFAULT_SEED = 0


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the usual index order."""
    text = resources.files("xformer.data").joinpath("imagenet1k_labels.txt").read_text(encoding="utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    assert len(labels) == 1000, f"imagenet1k_labels.txt holds {len(labels)} names, expected 1000"
    return labels


@cache
def coco_labels() -> tuple[str, ...]:
    """COCO's 80 detection classes, in the contiguous index order detectors use (not COCO's sparse ids)."""
    text = resources.files("xformer.data").joinpath("coco80_labels.txt").read_text(encoding="utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    assert len(labels) == 80, f"coco80_labels.txt holds {len(labels)} names, expected 80"
    return labels


TASKS = ("classify", "segment", "detect")


def default_labels(num_classes: int, task: str = "classify") -> list[str]:
    if task == "segment" and num_classes == len(CITYSCAPES_CLASSES):
        return list(CITYSCAPES_CLASSES)
    if task == "detect" and num_classes == 80:
        return list(coco_labels())
    return list(imagenet_labels()) if num_classes == 1000 else [f"class_{i}" for i in range(num_classes)]


# Cityscapes' 19 evaluation classes in train-id order (the default of the segmenters).
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and use it: saved in checkpoints, embedded in exported files."""

    arch: str
    num_classes: int = 1000
    options: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    # what the output means: "classify" (N x classes logits), "segment" (N x classes x H x W), "detect" (raw YOLOv3
    # head maps, one per level: see xformer.models.detection)
    task: str = "classify"

    def to_dict(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "options": dict(self.options),
                "labels": list(self.labels), "preprocess": self.preprocess.to_dict(), "task": self.task}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(arch=d["arch"], num_classes=int(d.get("num_classes", 1000)), options=dict(d.get("options", {})),
                   labels=list(d.get("labels", [])), preprocess=PreprocessSpec.from_dict(d.get("preprocess", {})),
                   task=d.get("task", "classify"))


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    preprocess: PreprocessSpec
    description: str
    attention: str
    task: str = "classify"
    num_classes: int = 1000  # default class count (19 Cityscapes classes for segmenters, 80 COCO for detectors)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(preprocess: PreprocessSpec, description: str, attention: str = "-", task: str = "classify",
                   num_classes: int = 1000):
    """Decorator: register a builder `fn(num_classes=..., **options) -> nn.Module` under its function name."""
    assert task in TASKS, task

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, preprocess, description, attention, task, num_classes)
        return fn

    return wrap


def _import_variants() -> None:
    # Importing the family modules runs their @register_model decorators.
    from . import detection, mobilenetv2, segmentation, vit, xformer  # noqa: F401


def list_models(task: str | None = None) -> list[str]:
    """Registered names, all or those of one task ("classify", "segment", "detect")."""
    _import_variants()
    return sorted(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)


def get_model_entry(name: str) -> ModelEntry:
    _import_variants()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))} "
                         "(see `xformer models`)")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int | None = None, labels: list[str] | None = None,
                 preprocess: PreprocessSpec | None = None, seed: int | None = DEFAULT_SEED, **options) -> nn.Module:
    """Build a registered variant in eval mode, with a `model_config` attribute describing it.

    `seed` makes the initial weights deterministic (no pretrained weights can be downloaded, so seeded
    weights are what a bare model name means); pass None to draw from the global RNG.
    """
    entry = get_model_entry(name)
    num_classes = entry.num_classes if num_classes is None else num_classes
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels given for {num_classes} classes")
    if seed is None:
        model = entry.builder(num_classes=num_classes, **options)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = entry.builder(num_classes=num_classes, **options)
    model.model_config = ModelConfig(arch=name, num_classes=num_classes, options=copy.deepcopy(options),
                                     labels=list(labels) if labels is not None else default_labels(num_classes,
                                                                                                    entry.task),
                                     preprocess=preprocess or entry.preprocess, task=entry.task)
    mark_seeded(model)
    return model.eval()

