"""benchmark_model output: every known variant parses into the same record, delegate coverage is checked."""

from pathlib import Path

import pytest

from xformer.benchmarks.benchmark_model import (
    benchmark_model_args,
    parse_benchmark_model,
    record_from_run,
    result_from_output,
)
from xformer.benchmarks.plan import RunPlan
from xformer.benchmarks.sources import Artifact

TRANSCRIPTS = Path(__file__).parent / "data" / "benchmark_model"


def transcript(name: str) -> str:
    return (TRANSCRIPTS / f"{name}.txt").read_text()


def artifact() -> Artifact:
    return Artifact(model="xformer_s", source="xformer_s", format="tflite", precision="fp32", input_size=(256, 256),
                    path=Path("xformer_s_fp32.tflite"), params=5_580_000, macs=1_870_000_000)


def test_current_output_with_percentiles_and_peak_memory():
    out = parse_benchmark_model(transcript("current_android_xnnpack"))
    assert (out.init_ms, out.first_ms, out.warmup_mean_ms) == pytest.approx((48.211, 61.25, 37.9213))
    lat = out.latency
    assert lat.runs == 50  # the second stats line: the timed runs, not the warm-up
    assert (lat.mean, lat.median, lat.p5, lat.p95) == pytest.approx((35.8664, 35.602, 34.951, 38.117))
    assert (lat.std, lat.min, lat.max) == pytest.approx((1.022, 34.89, 41.203))
    assert out.warmup.runs == 14 and out.warmup.median == pytest.approx(36.011)
    assert (out.memory_init_mb, out.memory_overall_mb, out.memory_peak_mb) == (31.4023, 47.9141, 52.3711)
    assert (out.delegated_nodes, out.total_nodes, out.delegate_name) == (212, 212, "TfLiteXNNPackDelegate")
    assert out.model_size_mb == 22.4518 and out.warnings == []


def test_current_output_without_percentiles_falls_back_to_the_mean():
    out = parse_benchmark_model(transcript("current_linux_no_percentiles"))
    assert out.latency.runs == 84 and out.latency.median is None
    assert out.latency.mean == pytest.approx(11.8932) and out.latency.std == pytest.approx(0.488)
    assert out.memory_overall_mb == 17.2344 and out.memory_peak_mb is None
    record = result_from_output(out, artifact(), runtime_version="sha256:x", target="local-benchmark-model",
                                device="cpu", threads=2)
    assert record.fps == pytest.approx(1000 / 11.8932)
    assert record.peak_memory_mb == 17.2344 and "delta from tool start" in record.memory_method
    assert any("no median" in w for w in record.warnings)


def test_old_average_line_with_no_stats_and_peak_memory_wording():
    out = parse_benchmark_model(transcript("old_no_stats"))
    assert out.inference_mean_ms == pytest.approx(104.302) and out.warmup_mean_ms == pytest.approx(107.94)
    assert out.init_ms == pytest.approx(3.618)
    assert out.first_ms == pytest.approx(121.503)  # from the warm-up stats line: this version prints no summary
    assert out.latency.runs == 50 and out.latency.max == pytest.approx(109.415)
    assert (out.memory_init_mb, out.memory_overall_mb) == (2.34375, 27.6758)


def test_old_logcat_line_with_inference_and_partial_delegate():
    out = parse_benchmark_model(transcript("old_logcat_inference"))
    assert out.inference_mean_ms == pytest.approx(80.0772) and out.init_ms == pytest.approx(71.53)
    assert out.warmup_mean_ms == pytest.approx(88.2145)
    assert out.latency.mean == pytest.approx(80.0772) and out.latency.runs == 0  # no stats line: mean only
    assert len(out.warnings) == 1 and "NNAPI runs only part of the graph in 3 delegate kernels" in out.warnings[0]


def test_all_same_warmup_line_and_scientific_notation():
    out = parse_benchmark_model(transcript("slow_model_all_same_warmup"))
    assert out.warmup.runs == 1 and out.warmup.std == 0 and out.warmup.median == pytest.approx(1402.113)
    assert out.latency.mean == pytest.approx(1289.19) and out.latency.median == pytest.approx(1289.011)
    assert out.inference_mean_ms == pytest.approx(1289.19) and out.first_ms == pytest.approx(1402.113)
    assert (out.delegated_nodes, out.total_nodes) == (96, None)  # the older "Replacing N node(s)" wording
    assert out.warnings == []


def test_partial_gpu_delegation_warns_loudly():
    out = parse_benchmark_model(transcript("gpu_partial"))
    assert (out.delegated_nodes, out.total_nodes) == (198, 212)
    assert out.init_ms == pytest.approx(1873.42) and out.latency.median == pytest.approx(21.498)
    coverage = [w for w in out.warnings if w.startswith("DELEGATE COVERAGE")]
    assert coverage == ["DELEGATE COVERAGE 198/212 nodes (93%): TfLiteGpuDelegateV2 left 14 node(s) on the CPU"]
    assert any(w.startswith("DELEGATE PARTIAL: GPU") for w in out.warnings)
    record = result_from_output(out, artifact(), runtime_version="sha256:x", target="android:R5CT", device="Pixel",
                                threads=1, delegate="gpu")
    assert record.delegated_nodes == 198 and record.total_nodes == 212 and record.warnings[:2] == out.warnings


def test_failed_run_becomes_a_failed_record_quoting_the_tool():
    fields = dict(runtime_version="sha256:x", target="android:R5CT", device="Pixel", threads=4, delegate="xnnpack")
    record = record_from_run(1, transcript("failed_unsupported_op"), artifact(), fields)
    assert not record.ok and record.latency is None
    assert "exited with 1" in record.error and "Benchmarking failed" in record.error
    ok = record_from_run(0, transcript("current_android_xnnpack"), artifact(), fields)
    assert ok.ok and ok.median_ms == pytest.approx(35.602) and ok.fps == pytest.approx(1000 / 35.602)


def test_command_line_for_each_delegate():
    args = benchmark_model_args("/data/local/tmp/m.tflite", 4, "gpu", RunPlan(warmup=5, runs=50))
    assert args == ["--graph=/data/local/tmp/m.tflite", "--num_threads=4", "--warmup_runs=5", "--num_runs=50",
                    "--min_secs=0", "--max_secs=30", "--use_gpu=true"]
    plan = RunPlan(warmup=1, runs=10, min_seconds=2.5, max_seconds=60)
    assert benchmark_model_args("m.tflite", 1, "cpu", plan)[-3:] == ["--min_secs=2.5", "--max_secs=60",
                                                                    "--use_xnnpack=false"]
