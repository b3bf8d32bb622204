"""The host harness end to end on the PyTorch runtime (small model, small input, few runs)."""

import importlib.util
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from xformer import count_macs, count_params, create_model, save_checkpoint
from xformer.benchmarks import BenchConfig, load_results, run_benchmarks
from xformer.benchmarks.sources import export_dir
from xformer.benchmarks.suite import load_suite
from xformer.cli import main
from xformer.errors import XFormerError

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(imgsz=[64], runs=3, warmup=1)


def test_torch_records_are_complete():
    results = run_benchmarks(BenchConfig(["xformer_xxs"], formats=["torch"], threads=[1, 2], **QUICK))
    assert [r.threads for r in results] == [1, 2]
    model = create_model("xformer_xxs")
    for r in results:
        assert r.ok and (r.model, r.format, r.precision, r.runtime, r.target) == ("xformer_xxs", "torch", "fp32",
                                                                                 "torch", "host")
        assert r.input_size == (64, 64) and r.batch == 1 and r.runtime_version.startswith("2.")
        assert r.params == count_params(model) and r.macs == count_macs(model, 64)
        assert r.latency.runs == 3 and r.latency.min <= r.latency.median <= r.latency.max
        assert r.fps == pytest.approx(1000 / r.latency.median)
        assert r.init_ms > 0 and r.first_ms > 0 and r.warmup_mean_ms > 0
        assert r.peak_memory_mb >= 0 and "load + first run + warm-up" in r.memory_method
        assert r.environment["logical_cores"] >= 1 and r.environment["torch"] and r.device == r.environment["cpu"]
        assert r.parity is None  # PyTorch is the reference itself


def test_speed_floor_keeps_every_convolution_and_nothing_else():
    """benchmarks/speed.py's floor form bounds any equivalent rewrite: all the convolutions and projections of the
    deploy form, no LayerNorm and no attention between the projections."""
    import torch
    from torch import nn

    from benchmarks.speed import conv_floor
    from xformer.export.deploy import ChannelLayerNorm, DeployAttention, deploy_model

    def convolutions(module):
        return [(m.in_channels, m.out_channels, m.kernel_size, m.groups) for m in module.modules()
                if isinstance(m, nn.Conv2d)]

    model = create_model("xformer_xxs")
    floor = conv_floor(model)
    assert convolutions(floor) == convolutions(deploy_model(model, target="tflite"))
    assert not any(isinstance(m, ChannelLayerNorm | DeployAttention) for m in floor.modules())
    with torch.no_grad():
        assert floor(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("interleave_models", [False, True])
def test_models_interleave_when_asked(interleave_models):
    """benchmarks/speed.py compares models: their timed rounds must alternate, not run one model after the other."""
    from xformer.benchmarks.host import HostTarget
    from xformer.benchmarks.plan import RunPlan
    from xformer.benchmarks.sources import Artifact

    artifacts = [Artifact(model=name, source=name, format="torch", precision="fp32", input_size=(64, 64),
                          module=create_model(name)) for name in ("xformer_xxs", "xformer_xs")]
    timed = []
    target = HostTarget(threads=[1], plan=RunPlan(warmup=0, runs=4), rounds=2)
    results = target.run(artifacts, lambda n, what: timed.append(what) if what in ("xformer_xxs", "xformer_xs")
                         else None, interleave_models=interleave_models)
    assert [r.model for r in results] == ["xformer_xxs", "xformer_xs"] and all(r.latency.runs == 4 for r in results)
    expected = ["xformer_xxs", "xformer_xs"] * 2 if interleave_models else \
        ["xformer_xxs"] * 2 + ["xformer_xs"] * 2
    assert timed == expected


def test_checkpoint_source_batch_and_min_seconds(tmp_path):
    checkpoint = save_checkpoint(create_model("xformer_xxs", seed=3), tmp_path / "run.safetensors")
    (r,) = run_benchmarks(BenchConfig([str(checkpoint)], formats=["torch"], batch=2, imgsz=[64], runs=2, warmup=0,
                                      min_seconds=0.2))
    assert r.ok and r.model == "xformer_xxs" and r.file == str(checkpoint)
    assert r.file_size_mb == pytest.approx(checkpoint.stat().st_size / 1e6)
    assert r.batch == 2 and r.fps == pytest.approx(2000 / r.latency.median) and r.warmup_mean_ms is None
    assert r.latency.runs >= 2 and r.latency.runs * r.latency.max >= 200  # timed until 0.2 s had passed


def test_max_seconds_stops_a_slow_configuration_and_says_so():
    (r,) = run_benchmarks(BenchConfig(["xformer_xxs"], formats=["torch"], runs=1000, warmup=0, max_seconds=0.05,
                                      imgsz=[64]))
    assert r.ok and 1 <= r.latency.runs < 1000
    assert r.warnings == [f"only {r.latency.runs} of 1000 timed runs: stopped at --max-seconds 0.05"]


def test_a_format_that_cannot_run_here_is_a_failed_row_and_the_rest_carry_on():
    if sys.platform == "darwin":
        pytest.skip("CoreML runs on macOS")
    results = run_benchmarks(BenchConfig(["xformer_xxs"], formats=["torch", "coreml"], **QUICK))
    assert [(r.format, r.ok) for r in results] == [("torch", True), ("coreml", False)]
    assert "macOS only" in results[1].error


def test_bad_settings_name_the_fix():
    with pytest.raises(XFormerError, match="unknown format"):
        run_benchmarks(BenchConfig(["xformer_xxs"], formats=["tensorrt"]))
    with pytest.raises(XFormerError, match="--max-seconds must be > 0 and at least --min-seconds"):
        run_benchmarks(BenchConfig(["xformer_xxs"], min_seconds=5, max_seconds=1))
    with pytest.raises(XFormerError, match="--threads takes positive counts"):
        run_benchmarks(BenchConfig(["xformer_xxs"], threads=[0]))
    with pytest.raises(XFormerError, match="use --formats tflite"):
        run_benchmarks(BenchConfig(["xformer_xxs"], formats=["onnx"], target="android"))
    with pytest.raises(XFormerError, match="unknown target 'phone'"):
        run_benchmarks(BenchConfig(["xformer_xxs"], target="phone"))
    with pytest.raises(XFormerError, match="neither a model name nor a checkpoint"):
        run_benchmarks(BenchConfig(["no_such_model"], formats=["torch"]))


def test_cli_writes_reports_and_compares(tmp_path, capsys):
    out = tmp_path / "run1"
    args = ["bench", "xformer_xxs", "mobilenetv2_100", "--formats", "torch", "--imgsz", "64", "--runs", "3",
            "--warmup", "1"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Benchmark results" in printed and "XFormer / peer" in printed and "results.md" in printed
    assert sorted(p.name for p in out.iterdir()) == ["latency_bars.png", "latency_vs_params.png", "results.csv",
                                                     "results.json", "results.md"]
    assert [r.model for r in load_results(out / "results.json")] == ["xformer_xxs", "mobilenetv2_100"]
    assert main([*args, "--compare", str(out / "results.json")]) == 0
    assert "vs old" in capsys.readouterr().out


def test_suite_file_is_valid_and_flags_override_it(tmp_path):
    suite = load_suite(ROOT / "benchmarks" / "suite.yaml")
    config = BenchConfig(**suite)
    config.validate()
    assert "xformer_s" in config.sources and config.peers
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [xformer_s]\nthread: [1]\n")
    with pytest.raises(XFormerError, match="unknown key\\(s\\) thread"):
        load_suite(bad)
    small = tmp_path / "small.yaml"
    small.write_text("models: xformer_xxs\nformats: torch\nthreads: [1]\nimgsz: 64\nruns: 50\n")
    assert main(["bench", "--suite", str(small), "--runs", "2", "--warmup", "0", "--out", str(tmp_path / "o")]) == 0
    (r,) = load_results(tmp_path / "o" / "results.json")
    assert r.latency.runs == 2 and r.input_size == (64, 64)


def test_readme_section_is_generated_from_results(tmp_path):
    out = tmp_path / "run"
    assert main(["bench", "xformer_xxs", "--formats", "torch", "--imgsz", "64", "--runs", "2", "--warmup", "0",
                 "--out", str(out)]) == 0
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- bench:start -->\nold numbers\n<!-- bench:end -->\n\nrest\n")
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for _ in range(2):  # idempotent
        assert script.main(["--bench-results", str(out / "results.json"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# Title\n") and text.endswith("\nrest\n")
    assert text.count("<!-- bench:start -->") == 1 and "| `xformer_xxs` | torch | fp32 |" in text


def test_import_benchmarks_stays_light():
    code = ("import sys, xformer.benchmarks, xformer.cli; heavy = [m for m in ('matplotlib', 'onnxruntime', "
            "'ai_edge_litert', 'tensorflow', 'yaml') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    """xformer_xxs at 64x64 as ONNX with our metadata, written with torch's exporter (keeps this test fast)."""
    import onnx
    import torch

    from xformer.export.metadata import METADATA_KEY, build_metadata, dumps

    model = create_model("xformer_xxs")
    path = tmp_path_factory.mktemp("onnx") / "xformer_xxs_fp32.onnx"
    with warnings.catch_warnings():  # deprecation noise from inside torch's exporter
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(model, (torch.rand(1, 3, 64, 64),), path, dynamo=True, opset_version=18,
                          external_data=False)
    proto = onnx.load(path)
    metadata = build_metadata(model, format="onnx", precision="fp32", input_size=(64, 64))
    proto.metadata_props.add(key=METADATA_KEY, value=dumps(metadata))
    onnx.save(proto, path)
    return path


def test_exported_file_runs_as_it_is_with_parity(onnx_file):
    results = run_benchmarks(BenchConfig([str(onnx_file)], threads=[1, 2], runs=3, warmup=1))
    assert [(r.threads, r.ok) for r in results] == [(1, True), (2, True)]
    r = results[0]
    assert (r.model, r.format, r.precision, r.runtime, r.input_size) == ("xformer_xxs", "onnx", "fp32", "onnxruntime",
                                                                         (64, 64))
    assert r.parity["max_abs_err"] < 1e-4 and r.parity["top1_agreement"] == 1.0  # seeded weights rebuilt
    assert r.file_size_mb == pytest.approx(onnx_file.stat().st_size / 1e6) and r.runtime_version
    assert r.params == count_params(create_model("xformer_xxs"))


def test_model_name_reuses_the_export_cache(onnx_file, tmp_path):
    cached = export_dir(create_model("xformer_xxs"), (64, 64), tmp_path) / onnx_file.name
    cached.parent.mkdir(parents=True)
    shutil.copy(onnx_file, cached)
    (r,) = run_benchmarks(BenchConfig(["xformer_xxs"], formats=["onnx"], cache_dir=str(tmp_path), **QUICK))
    assert r.ok and r.file == str(cached) and r.parity["max_abs_err"] < 1e-4
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name]  # nothing was exported


def test_a_failed_export_is_a_failed_row(tmp_path):
    results = run_benchmarks(BenchConfig(["xformer_xxs"], formats=["torch", "onnx"], precisions=["int3"],
                                         cache_dir=str(tmp_path), **QUICK))
    assert [(r.format, r.precision, r.ok) for r in results] == [("torch", "fp32", True), ("onnx", "int3", False)]
    assert results[1].error.startswith("export failed: OptionError: precision 'int3' is not supported by onnx")
