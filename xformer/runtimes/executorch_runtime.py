"""ExecuTorch (.pte programs) behind the runtime interface, through ExecuTorch's Python runtime (`executorch`).

The XNNPACK delegate runs on ExecuTorch's one process-wide thread pool: `threads` resizes that pool before a
run whenever another runtime left it at another size, so runtimes with different thread counts can take turns
(as `xformer bench` interleaves them). Programs lowered to Core ML need an Apple device and say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ModelFileError, require
from ..export.metadata import read_pte_metadata
from .base import Runtime, TensorInfo

__all__ = ["ExecuTorchRuntime"]

# ExecuTorch ScalarType codes of the dtypes our programs take and return.
_DTYPES = {0: "uint8", 1: "int8", 6: "float32"}
_PORTABLE_LIB = "executorch.extension.pybindings.portable_lib"


def _tensor_info(meta, name: str, layout: str | None = None) -> TensorInfo:
    dtype = _DTYPES.get(meta.dtype(), f"scalar type {meta.dtype()}")
    return TensorInfo(name, tuple(int(d) for d in meta.sizes()), dtype, layout)


class ExecuTorchRuntime(Runtime):
    name = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None):
        runtime = require("executorch.runtime", "running .pte files", "executorch")
        self.path = Path(path)
        self.metadata = None
        try:
            program = runtime.Runtime.get().load_program(self.path)
        except (RuntimeError, ValueError) as err:
            raise ModelFileError(f"{self.path.name} cannot be loaded by the ExecuTorch runtime ({err}); re-export it "
                                 "with `xformer export ... --formats pte`") from err
        self.metadata = read_pte_metadata(self.path)
        backend = self.metadata.get("export", {}).get("backend", "xnnpack")
        available = runtime.Runtime.get().backend_registry.is_available
        if backend == "coreml" and not available("CoreMLBackend"):
            raise ModelFileError(f"{self.path.name} is lowered to Core ML, whose delegate runs on Apple devices only "
                                 "(an ExecuTorch build with the Core ML backend); export with --pte-backend xnnpack "
                                 "to run it here")
        self.threads = threads
        self._pool = require(_PORTABLE_LIB, "running .pte files", "executorch")
        self._use_threads()
        try:
            self.method = program.load_method("forward")
        except (RuntimeError, ValueError) as err:
            raise ModelFileError(f"{self.path.name}: the ExecuTorch runtime cannot load its forward method ({err}); "
                                 "re-export it with `xformer export ... --formats pte`") from err
        meta = self.method.metadata
        layout = self.metadata["preprocess"].get("layout", "NHWC")
        self.inputs = [_tensor_info(meta.input_tensor_meta(0), "image", layout)]
        self.outputs = [_tensor_info(meta.output_tensor_meta(0), "logits")]
        self._program = program  # the method borrows from it
        from importlib.metadata import version

        self.version = version("executorch")

    def _use_threads(self) -> None:
        if self.threads and self._pool._threadpool_get_thread_count() != self.threads:
            self._pool._unsafe_reset_threadpool(self.threads)

    def _run(self, array: np.ndarray) -> np.ndarray:
        self._use_threads()
        (out,) = self.method.execute([torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))])
        return out.numpy().astype(np.float32, copy=False)
