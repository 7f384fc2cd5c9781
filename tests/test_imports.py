"""Heavy libraries load on use, never at `import tcdml` (so `tcdml --help` starts fast)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "matplotlib", "pytorch_lightning", "lightning", "timm", "faiss", "torchvision")


def test_import_tcdml_and_cli_stay_light() -> None:
    code = (
        "import sys, tcdml, tcdml.cli.main, tcdml.io; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"imported at start-up: {loaded}"


def test_metrics_need_no_lightning_timm_or_matplotlib() -> None:
    code = (
        "import sys, tcdml.metrics, tcdml.calibration; "
        "print(','.join(m for m in ('matplotlib', 'pytorch_lightning', 'lightning', 'timm', 'faiss') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"imported by tcdml.metrics: {loaded}"
