"""Export a trained model with its calibrated threshold: ``tcdml export CKPT --calibration t.json -o DIR``.

``export_path`` (a checkpoint or an adapter folder), ``export_checkpoint``, ``export_adapter`` and the generic
``export_module`` write the folder ``tcdml.deploy.load_matcher`` serves (docs/deploy.md). Needs torch;
onnx/onnxruntime (``tcdml[deploy]``) for ONNX files.
"""

from tcdml.export.calibration import CalibrationRecord, read_calibration
from tcdml.export.sources import TextEmbedder, export_adapter, export_checkpoint, export_path
from tcdml.export.writer import ExportResult, export_module

__all__ = [
    "CalibrationRecord",
    "ExportResult",
    "TextEmbedder",
    "export_adapter",
    "export_checkpoint",
    "export_module",
    "export_path",
    "read_calibration",
]
