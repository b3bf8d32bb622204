"""Report files are written atomically; a missing extra fails before any work or file; every optional import goes
through xformer.errors.require(); a local benchmark_model that hangs or cannot start is a failed row."""

import ast
import json
import sys
from pathlib import Path

import pytest

from xformer import create_model
from xformer.benchmarks import load_results
from xformer.benchmarks import report as report_module
from xformer.benchmarks.record import BenchResult
from xformer.benchmarks.stats import LatencyStats
from xformer.cli import main
from xformer.export.metadata import build_metadata, write_tflite_metadata

PACKAGE = Path(__file__).parent.parent / "xformer"
# Import names of everything the extras in pyproject.toml install (plus onnx2tf, installed without its deps).
OPTIONAL = {"onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "ai_edge_litert", "litert_torch",
            "ai_edge_quantizer", "tensorflow", "torchao", "coremltools", "sklearn", "matplotlib", "skimage", "psutil",
            "yaml", "tqdm", "onnx2tf", "tf_keras", "onnx_graphsurgeon", "sng4onnx", "sne4onnx", "requests"}


def test_every_optional_import_goes_through_require():
    direct = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            direct += [f"{path.relative_to(PACKAGE)}:{node.lineno} {n}" for n in names
                       if n.split(".")[0] in OPTIONAL]
    assert direct == []


def _result(model: str, median: float) -> BenchResult:
    latency = LatencyStats(runs=3, mean=median, median=median, std=0.1, min=median - 0.1, max=median + 0.1,
                           p5=median - 0.1, p95=median + 0.1)
    return BenchResult(model=model, source=model, format="torch", precision="fp32", runtime="torch",
                       runtime_version="2.13", device="cpu", input_size=(64, 64), params=1_000_000, latency=latency,
                       threads=1, target="host")


def test_a_failed_report_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    results = [_result("a", 2.0), _result("b", 3.0)]
    report_module.write_reports(results, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"results.json", "results.csv", "results.md", "latency_vs_params.png",
                           "latency_bars.png"}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "markdown_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        report_module.write_reports([_result("a", 9.0)], tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(after) == set(before)  # no .tmp file left behind
    assert after["results.md"] == before["results.md"]  # the old complete file, not a half-written one
    assert [r.median_ms for r in load_results(tmp_path / "results.json")] == [9.0]  # written whole before it


def test_bench_without_the_bench_extra_fails_before_measuring(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out = tmp_path / "out"
    assert main(["bench", "xformer_xxs", "--formats", "torch", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "benchmark plots (xformer bench --out) needs the 'bench' extra" in err and 'pip install -e ".[bench]"' in err
    assert "benchmarking" not in err and not out.exists()


def test_export_without_the_samples_extra_fails_before_converting(tmp_path, monkeypatch, capsys):
    from xformer import samples

    monkeypatch.setattr(samples, "_PHOTOS", (("a_package_that_is_not_installed", "x.png"),))
    out = tmp_path / "out"
    assert main(["export", "xformer_xxs", "--imgsz", "64", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "the parity check (on the sample photos; or pass --no-validate) needs the 'samples' extra" in err
    assert "onnx fp32" not in err and not out.exists()


@pytest.fixture
def tflite_file(tmp_path):
    metadata = build_metadata(create_model("xformer_xxs"), format="tflite", precision="fp32", layout="NHWC")
    path = tmp_path / "xformer_xxs_fp32.tflite"
    path.write_bytes(write_tflite_metadata(b"TFL3-flatbuffer-not-needed-by-the-stand-in", metadata))
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="the stand-in tools are POSIX files")
def test_local_benchmark_model_that_hangs_or_cannot_start_is_a_failed_row(tmp_path, tflite_file, monkeypatch,
                                                                          capsys):
    from xformer.benchmarks import benchmark_model

    monkeypatch.setattr(benchmark_model, "TOOL_TIMEOUT_S", 1)
    hangs = tmp_path / "hangs"
    hangs.write_text("#!/bin/sh\nsleep 30\n")
    wrong_arch = tmp_path / "wrong_arch"
    wrong_arch.write_bytes(b"\x7fELF" + b"\x00" * 60)  # an executable no kernel runs
    for tool in (hangs, wrong_arch):
        tool.chmod(0o755)
    for tool, reason in ((hangs, "did not finish in 1 s"), (wrong_arch, "could not be started")):
        out = tmp_path / f"out_{tool.name}"
        assert main(["bench", str(tflite_file), "--target", "local-benchmark-model", "--benchmark-model", str(tool),
                     "--out", str(out)]) == 1  # no configuration produced numbers
        (row,) = json.loads((out / "results.json").read_text())["results"]
        assert reason in row["error"]
        err = capsys.readouterr().err
        assert "Traceback" not in err and reason in err
