"""Output hygiene: an export prints our lines and table only, no third-party log line; --verbose shows them."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xformer import logs

ROOT = Path(__file__).parent.parent

# Every line an export of xformer_xxs to ONNX and TFLite fp32 may print: notes, one progress line per file,
# its parity line, the summary table and the commands to use each file.
OURS = re.compile(r"^(?:note: |warning: |(?:onnx|tflite) fp32: \S+, [\d.]+ MB, [\d.]+ s$|  parity: |  use: xformer "
                  r"|  xformer_xxs_fp32\.tflite: \d+ ops|\s*Export\s*$|\s*file\s+MB\s+s\s+max err|\s*─+\s*$"
                  r"|\s*xformer_xxs_fp32\.(?:onnx|tflite)\s+[\d.]+\s+[\d.]+\s.*ok\s*$|\s*$)")


def _xformer(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    for name in logs.QUIET_ENV:  # the CLI must quiet the libraries itself, not rely on the caller's shell
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "xformer", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=900)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hygiene")


@pytest.fixture(scope="module")
def export_output(export_dir) -> subprocess.CompletedProcess:
    return _xformer("export", "xformer_xxs", "--formats", "onnx,tflite", "--imgsz", "64", "--out", str(export_dir))


def test_export_prints_no_third_party_line(export_output):
    assert export_output.returncode == 0, export_output.stderr
    lines = (export_output.stdout + export_output.stderr).splitlines()
    foreign = [line for line in lines if not OURS.match(line)]
    assert foreign == [], "\n".join(foreign)
    assert sum("parity: " in line and line.endswith("ok") for line in lines) == 2


def test_summary_fits_80_columns(export_output):
    table = [line for line in export_output.stdout.splitlines() if not line.startswith("  ")]  # notes below it
    assert table and max(len(line) for line in table) <= 80
    assert any(line.strip().startswith("xformer_xxs_fp32.onnx") for line in table)


def test_predict_with_litert_prints_no_third_party_line(export_output, export_dir):
    result = _xformer("predict", str(export_dir / "xformer_xxs_fp32.tflite"), "--samples", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert "INFO:" not in result.stderr and "XNNPACK" not in result.stderr, result.stderr
    assert all(line.startswith("note:") for line in result.stderr.splitlines() if line.strip()), result.stderr
    assert result.stdout.count("xformer_xxs_fp32.tflite") == 8  # one table per sample photo


def test_quiet_native_drops_known_noise_and_keeps_ours(capfd):
    logs.configure(verbose=False)
    with logs.quiet_native():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796040885.459546    3951 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"W1130 12:14:49.319000 3951 torch/utils/_pytree.py:630] <enum 'KernelPreference'> is an Enum\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"Failed to load /venv/torchao/_C_mxfp8.so: Could not load this library\n")
        os.write(1, b"Converting PyTorch Frontend ==> MIL Ops: 100%|##########| 412/413 [00:00<00:00, 99.1 ops/s]\r")
        os.write(2, b"tflite fp32: out/model.tflite, 1.00 MB, 2.0 s\n")
        os.write(1, b"a line of ours on stdout\n")
    out, err = capfd.readouterr()
    assert err == "tflite fp32: out/model.tflite, 1.00 MB, 2.0 s\n"
    assert out == "a line of ours on stdout\n"


def test_verbose_keeps_everything(capfd):
    logs.configure(verbose=True)
    try:
        with logs.quiet_native():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        assert "XNNPACK" in capfd.readouterr().err
    finally:
        logs.configure(verbose=False)


def test_global_flags_go_anywhere(capsys):
    from xformer.cli import main

    assert main(["models", "--verbose"]) == 0 and logs.verbose()
    assert main(["--debug", "models"]) == 0 and logs.verbose()
    assert main(["models"]) == 0 and not logs.verbose()
    assert "xformer_xxs" in capsys.readouterr().out
