"""Model -> files: the deploy form, one exporter module per format behind a table, metadata and parity.

Heavy converters (onnx, litert-torch, tensorflow, coremltools) are imported only when a format runs.
"""

from .exporter import ArtifactRecord, export
from .formats import FORMATS, ExportFormat

__all__ = ["FORMATS", "ArtifactRecord", "ExportFormat", "export"]
