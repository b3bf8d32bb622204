"""ExecuTorch export (.pte) on a trained model: parity, held-out accuracy of fp32 and int8, delegation to
XNNPACK, metadata, the runtime, the Core ML backend's structure, and clear failures.

One xformer_xxs trained on scikit-learn's digits (64x64) is exported once per session to fp32 and int8
(`digits_pte` in conftest.py, shared with the Android goldens); every test here reads those files.
"""

import json
import shutil
import sys
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from xformer import save_checkpoint
from xformer.checkpoint import weights_sha256
from xformer.cli import main
from xformer.errors import ExportError, ModelFileError
from xformer.export import export
from xformer.export.metadata import read_metadata
from xformer.export.pte_export import lowered_graph_stats
from xformer.runtimes import load
from xformer.runtimes.executorch_runtime import ExecuTorchRuntime

from .digits import top1

pytest.importorskip("executorch", reason="the 'executorch' extra is not installed")

from .conftest import PTE_CALIBRATION_IMAGES as CALIBRATION_IMAGES


@pytest.fixture(scope="module")
def accuracy(digits_pte):
    data, model = digits_pte.data, digits_pte.model
    x = data.arrays(data.test_images)
    with torch.no_grad():
        result = {"pytorch": top1(model(torch.from_numpy(x)).numpy(), data.test_labels)}
    for precision, record in digits_pte.records.items():
        runtime = load(record.path, threads=1)
        result[precision] = top1(np.concatenate([runtime.run(s[None]) for s in x]), data.test_labels)
    print(f"\ndigits held-out top-1 ({len(x)} images): {json.dumps({k: round(v * 100, 2) for k, v in result.items()})}")
    return result


def test_fp32_and_int8_export_and_pass_parity(digits_pte):
    fp32, int8 = digits_pte.records["fp32"], digits_pte.records["int8"]
    for precision, record in digits_pte.records.items():
        assert record.ok, f"{precision}: {record.error}"
        assert record.path.name == f"xformer_xxs_{precision}.pte"
        assert record.details["backend"] == "xnnpack"
    assert fp32.parity["passed"] and fp32.parity["max_abs_err"] <= 1e-4 and fp32.parity["top1_agreement"] == 1.0
    assert int8.parity["passed"]  # no tolerance: int8 is judged on held-out digits below
    assert int8.details["calibration"]["images"] == CALIBRATION_IMAGES and "calibration" not in fp32.details
    assert int8.size_mb < 0.5 * fp32.size_mb


def test_whole_graph_runs_in_one_xnnpack_delegate(digits_pte):
    for precision, record in digits_pte.records.items():
        delegation = record.details["delegation"]
        assert delegation["partitions"] == 1 and delegation["backends"] == {"XnnpackBackend": 1}, precision
        assert delegation["portable_ops"] == {} and delegation["coverage"] == 1.0, precision
        assert delegation["delegated_ops"] == sum(record.op_histogram.values())
    assert record.op_histogram.get("aten.convolution.default", 0) > 0
    assert digits_pte.records["int8"].op_histogram.get("quantized_decomposed.quantize_per_tensor.default", 0) > 0


def test_ops_left_to_portable_kernels_are_named():
    class ChannelMean(nn.Module):  # XNNPACK averages over H and W only
        def forward(self, x):
            return torch.relu(x).mean(dim=1, keepdim=True)

    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(ChannelMean(), (torch.rand(1, 3, 8, 8),))
    stats = lowered_graph_stats(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
                                .exported_program())
    assert stats["portable_ops"] == {"aten.mean.dim": 1} and stats["backends"] == {"XnnpackBackend": 1}
    assert stats["coverage"] == 0.5


def test_accuracy_gate_on_held_out_digits(accuracy):
    reference = accuracy["pytorch"]
    assert reference >= 0.95, "the fixture model did not train"
    assert abs(accuracy["fp32"] - reference) <= 0.005
    assert accuracy["int8"] >= reference - 0.02


def test_metadata_and_runtime(digits_pte, digits_run, sample_photo):
    config = digits_pte.model.model_config
    for precision, record in digits_pte.records.items():
        meta = read_metadata(record.path)
        assert meta["labels"] == config.labels and meta["weights_sha256"] == weights_sha256(digits_pte.model)
        assert meta["preprocess"] == {**config.preprocess.to_dict(), "layout": "NHWC"}
        assert meta["export"]["format"] == "pte" and meta["export"]["precision"] == precision
        assert meta["export"]["backend"] == "xnnpack"
        assert meta["export"]["input"] == meta["export"]["output"] == {"dtype": "float32", "scale": None,
                                                                        "zero_point": None}
        with zipfile.ZipFile(record.path) as archive:  # what the Android app reads
            assert archive.read("labels.txt").decode().split() == config.labels
    runtime = load(digits_pte.records["fp32"].path, threads=1)
    assert isinstance(runtime, ExecuTorchRuntime) and runtime.name == "executorch"
    assert runtime.inputs[0].shape == (1, 64, 64, 3) and runtime.input_layout == "NHWC"
    assert runtime.outputs[0].shape == (1, 10) and runtime.version.startswith("1.")
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    assert _threadpool_get_thread_count() == 1
    torch_top = load(digits_run.best).predict(sample_photo)
    assert [p.index for p in runtime.predict(sample_photo)] == [p.index for p in torch_top]


def test_validate_info_and_bench(digits_pte, tmp_path, capsys):
    checkpoint = save_checkpoint(digits_pte.model, tmp_path / "digits.safetensors")
    path = digits_pte.records["int8"].path
    assert main(["validate", str(path), "--ckpt", str(checkpoint)]) == 0
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    from rich.console import Console

    from xformer.export.exporter import print_summary

    print_summary(list(digits_pte.records.values()), Console(width=300))
    out += capsys.readouterr().out
    assert "1 XnnpackBackend partition(s)" in out and "(100%); on portable kernels: none" in out
    assert "max_abs_err" in out and "xnnpack" in out and "10 labels: 0, 1, 2, 3, 4" in out

    from xformer.benchmarks import BenchConfig, run_benchmarks

    results = run_benchmarks(BenchConfig(sources=[str(path)], threads=[1], warmup=1, runs=3))
    (row,) = results
    assert row.ok and row.format == "pte" and row.precision == "int8" and row.runtime == "executorch"
    assert row.latency.headline > 0

    # A checkpoint: the cached .pte files are reused, ONNX is exported at both precisions (int8 = static QDQ).
    from xformer.benchmarks.sources import export_dir

    cache = tmp_path / "cache"
    cached = export_dir(digits_pte.model, (64, 64), cache)
    cached.mkdir(parents=True)
    for record in digits_pte.records.values():
        shutil.copy(record.path, cached / record.path.name)
    rows = run_benchmarks(BenchConfig(sources=[str(checkpoint)], formats=["onnx", "pte"], precisions=["fp32", "int8"],
                                      threads=[1], warmup=1, runs=3, cache_dir=str(cache)))
    assert [(r.format, r.precision, r.ok) for r in rows] == [("onnx", "fp32", True), ("onnx", "int8", True),
                                                              ("pte", "fp32", True), ("pte", "int8", True)]
    assert rows[2].parity["max_abs_err"] < 1e-4


def test_core_ml_backend_lowers_on_linux(digits_pte, tmp_path):
    (record,) = export(digits_pte.model, formats="pte", out_dir=tmp_path, pte_backend="coreml")
    assert record.ok, record.error
    delegation = record.details["delegation"]
    assert delegation["backends"] == {"CoreMLBackend": 1} and delegation["portable_ops"] == {}
    assert read_metadata(record.path)["export"]["backend"] == "coreml"
    # The delegate's ML program, evaluated op by op, stands for parity where Core ML cannot run.
    assert record.parity["passed"] and record.parity["max_abs_err"] <= 1e-4, record.parity
    assert "mil_eval" in record.parity["evaluator"]
    if sys.platform != "darwin":
        assert "Apple devices only" in record.parity["not_run"]
        with pytest.raises(ModelFileError, match="lowered to Core ML"):
            load(record.path)


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML delegates run on Apple devices only (macOS/iOS)")
def test_core_ml_backend_predicts_on_macos(digits_pte, tmp_path):
    (record,) = export(digits_pte.model, formats="pte", out_dir=tmp_path, pte_backend="coreml")
    assert record.ok and record.parity["passed"], record.parity


def test_bad_inputs_fail_clearly(digits_pte, tmp_path):
    model = digits_pte.model
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="holds no images"):
        export(model, formats="pte", precisions=["int8"], out_dir=tmp_path / "out", calib=str(empty))
    with pytest.raises(ExportError, match="Core ML backend of .pte files lowers fp32 only"):
        export(model, formats="pte", precisions=["fp32", "int8"], out_dir=tmp_path / "out", pte_backend="coreml")
    assert not (tmp_path / "out").exists()
    (record,) = export(model, formats="pte", out_dir=tmp_path / "out", pte_backend="vulkan")
    assert not record.ok and "unknown ExecuTorch backend 'vulkan'" in record.error
    assert not list((tmp_path / "out").glob("*.pte"))

    from executorch.exir import to_edge_transform_and_lower

    foreign = tmp_path / "foreign.pte"
    foreign.write_bytes(to_edge_transform_and_lower(torch.export.export(nn.Linear(4, 2), (torch.rand(1, 4),)))
                        .to_executorch().buffer)
    with pytest.raises(ModelFileError, match="foreign.pte carries no xformer metadata.*--formats pte"):
        load(foreign)
    corrupt = tmp_path / "corrupt.pte"
    corrupt.write_bytes(digits_pte.records["fp32"].path.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="cannot be loaded by the ExecuTorch runtime"):
        load(corrupt)
    runtime = load(digits_pte.records["fp32"].path)
    with pytest.raises(ModelFileError, match=r"input shape \(1, 3, 32, 32\) does not fit"):
        runtime.run(np.zeros((1, 3, 32, 32), np.float32))
