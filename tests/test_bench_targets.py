"""benchmark_model targets: the Android target with the real adb client and no device, and a local binary."""

import os
import shutil
import socket
import subprocess
import sys

import pytest

from xformer import count_params, create_model
from xformer.benchmarks import load_results
from xformer.benchmarks.android import AdbDevice
from xformer.cli import main
from xformer.errors import XFormerError
from xformer.export.metadata import build_metadata, write_tflite_metadata

from .test_bench_parser import TRANSCRIPTS

ADB = shutil.which("adb")
needs_adb = pytest.mark.skipif(ADB is None, reason="needs the adb client: apt-get install adb")


@pytest.fixture
def private_adb_server(monkeypatch):
    """A throwaway adb server on a free port, so tests never touch (or kill) the user's own server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    yield port
    subprocess.run([ADB, "kill-server"], capture_output=True, timeout=30, env={**os.environ})


@pytest.fixture
def tflite_file(tmp_path):
    """A .tflite carrying real xformer metadata; the stand-in tool below never reads the flatbuffer itself."""
    metadata = build_metadata(create_model("xformer_xxs"), format="tflite", precision="fp32", layout="NHWC")
    path = tmp_path / "xformer_xxs_fp32.tflite"
    path.write_bytes(write_tflite_metadata(b"TFL3-flatbuffer-not-needed-by-the-stand-in", metadata))
    return path


@needs_adb
def test_android_target_without_a_device_fails_clearly(private_adb_server, tmp_path, capsys):
    with pytest.raises(XFormerError, match=r"no Android device attached \(`adb devices` lists none\)"):
        AdbDevice()
    with pytest.raises(XFormerError, match="'emulator-5554' is not attached \\(attached: none\\)"):
        AdbDevice("emulator-5554")
    binary = tmp_path / "benchmark_model"
    binary.write_text("#!/bin/sh\n")
    assert main(["bench", "xformer_xxs", "--target", "android", "--benchmark-model", str(binary)]) == 1  # DeviceError
    err = capsys.readouterr().err
    assert "error:" in err and "no Android device attached" in err and "Traceback" not in err


def test_android_target_without_adb_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(XFormerError, match="apt-get install adb"):
        AdbDevice()


def test_benchmark_model_binary_is_required(monkeypatch, capsys):
    monkeypatch.delenv("XFORMER_BENCHMARK_MODEL", raising=False)
    assert main(["bench", "xformer_xxs", "--target", "local-benchmark-model"]) == 2
    assert "--benchmark-model PATH or set XFORMER_BENCHMARK_MODEL" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="the stand-in tool is a POSIX shell script")
def test_local_benchmark_model_runs_the_binary_and_parses_it(tmp_path, tflite_file, capsys):
    calls = tmp_path / "calls.txt"
    tool = tmp_path / "benchmark_model"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncat {TRANSCRIPTS / "current_android_xnnpack.txt"}\n')
    tool.chmod(0o755)
    out = tmp_path / "out"
    assert main(["bench", str(tflite_file), "--target", "local-benchmark-model", "--benchmark-model", str(tool),
                 "--threads", "1,2", "--delegates", "xnnpack,cpu", "--runs", "7", "--warmup", "2",
                 "--out", str(out)]) == 0
    lines = calls.read_text().splitlines()
    assert len(lines) == 4
    assert lines[0] == (f"--graph={tflite_file} --num_threads=1 --warmup_runs=2 --num_runs=7 --min_secs=0 "
                        "--max_secs=30 --use_xnnpack=true")
    assert lines[3].endswith("--num_threads=2 --warmup_runs=2 --num_runs=7 --min_secs=0 --max_secs=30 "
                             "--use_xnnpack=false")
    results = load_results(out / "results.json")
    assert [(r.threads, r.delegate) for r in results] == [(1, "xnnpack"), (1, "cpu"), (2, "xnnpack"), (2, "cpu")]
    first = results[0]
    assert (first.model, first.format, first.precision, first.input_size) == ("xformer_xxs", "tflite", "fp32",
                                                                              (256, 256))
    assert first.runtime == "benchmark_model" and first.runtime_version.startswith("sha256:")
    assert first.target == "local-benchmark-model" and first.median_ms == pytest.approx(35.602)
    assert first.params == count_params(create_model("xformer_xxs"))
    assert "35.60" in capsys.readouterr().out
