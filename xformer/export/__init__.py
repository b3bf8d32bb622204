"""Model -> files: the deploy form, one exporter module per format behind a table, metadata and parity.

Heavy converters (onnx, litert-torch, tensorflow, coremltools) are imported only when a format runs.
"""

import sys
import types

from .custom import describe
from .exporter import ArtifactRecord, export
from .formats import FORMATS, ExportFormat

__all__ = ["FORMATS", "ArtifactRecord", "ExportFormat", "describe", "export"]


class _CallableModule(types.ModuleType):
    """`xformer.export(model, ...)` calls `export`: the package and its main function share the name."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
