"""The PyTorch reference behind the runtime interface: a checkpoint (or a model name with seeded weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_model, weights_sha256
from .base import Runtime, TensorInfo

__all__ = ["TorchRuntime"]


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, source: str | Path | nn.Module, threads: int | None = None, model_name: str | None = None):
        if isinstance(source, nn.Module):
            self.model, self.seeded = source.eval(), False
            self.path = Path(source.model_config.arch)
        else:
            self.model, self.seeded = load_model(source, model_name)
            self.path = Path(str(source))
        if threads:
            torch.set_num_threads(threads)
        config = self.model.model_config
        self.metadata = {**config.to_dict(), "weights_sha256": weights_sha256(self.model),
                         "torch_version": torch.__version__}
        # Any batch and any size that is a multiple of 32: only the layout is fixed.
        self.inputs = [TensorInfo("image", (-1, 3, -1, -1), "float32", "NCHW")]
        if config.task == "detect":  # the raw maps of each level (see xformer.models.detection)
            channels = len(self.model.anchors[0]) * (5 + config.num_classes)
            self.outputs = [TensorInfo(f"stride{s}", (-1, channels, -1, -1), "float32") for s in self.model.strides]
        else:
            shape = (1, config.num_classes, -1, -1) if config.task == "segment" else (1, config.num_classes)
            self.outputs = [TensorInfo("logits", shape, "float32")]
        self.version = torch.__version__

    def _run(self, array: np.ndarray) -> np.ndarray | list[np.ndarray]:
        with torch.inference_mode():
            outputs = self.model(torch.from_numpy(array))
        return [o.numpy() for o in outputs] if isinstance(outputs, (list, tuple)) else outputs.numpy()
