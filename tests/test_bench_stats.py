"""Latency statistics on known samples, and the result record's round trip."""

import json

import numpy as np
import pytest

from xformer.benchmarks import BenchResult, LatencyStats, load_results, save_results, summarize
from xformer.benchmarks.stats import trimmed_mean
from xformer.errors import XFormerError


def test_statistics_of_one_to_one_hundred():
    s = summarize(list(range(1, 101)))
    assert s.runs == 100 and s.mean == 50.5 and s.median == 50.5 and (s.min, s.max) == (1, 100)
    assert (s.p5, s.p90, s.p95) == pytest.approx((5.95, 90.1, 95.05))  # linear interpolation between ranks
    assert s.std == pytest.approx(29.011491975882016)  # sample std, ddof=1
    assert s.trimmed_mean == 50.5  # 11..90 after dropping 10 from each end


def test_outliers_move_the_mean_but_not_the_headline():
    samples = [10.0] * 18 + [100.0, 400.0]  # two stalls from a noisy neighbour
    s = summarize(samples)
    assert s.headline == s.median == 10.0
    assert s.trimmed_mean == 10.0  # the two slowest (and two fastest) of 20 are dropped
    assert s.mean == pytest.approx(34.0) and s.max == 400.0


def test_trimmed_mean_drops_floor_of_ten_percent_each_side():
    assert trimmed_mean(np.array([1.0, 2.0, 3.0, 1000.0])) == pytest.approx(251.5)  # n=4: nothing dropped
    assert trimmed_mean(np.array([0.0] + [5.0] * 8 + [99.0])) == 5.0  # n=10: one from each end


def test_single_sample_and_empty():
    s = summarize([7.5])
    assert (s.median, s.std, s.p5, s.p95, s.trimmed_mean) == (7.5, 0.0, 7.5, 7.5, 7.5)
    with pytest.raises(ValueError, match="no timed runs"):
        summarize([])


def full_record(**overrides) -> BenchResult:
    values = dict(model="xformer_s", source="xformer_s", format="onnx", precision="fp32", runtime="onnxruntime",
                  runtime_version="1.32.0", target="host", device="AMD EPYC", threads=2, input_size=(256, 256),
                  batch=1, delegate=None, file="/tmp/xformer_s_fp32.onnx", file_size_mb=21.3, params=5_580_000,
                  macs=1_870_000_000, init_ms=120.5, first_ms=80.25, warmup_mean_ms=60.0,
                  latency=summarize([50.0, 52.0, 51.0, 70.0]), fps=1000 / 51.5, peak_memory_mb=48.5,
                  memory_method="RSS high-water mark delta", parity={"max_abs_err": 1e-5, "cosine": 1.0,
                                                                     "top1_agreement": 1.0},
                  delegated_nodes=None, total_nodes=None, warnings=["something odd"], error=None,
                  timestamp="2026-11-29T10:00:00+00:00", environment={"cpu": "AMD EPYC", "logical_cores": 2})
    values.update(overrides)
    return BenchResult(**values)


def test_record_round_trips_through_json(tmp_path):
    records = [full_record(), full_record(model="mobilevit_s", latency=None, fps=None, error="export failed: x"),
               full_record(target="android:R5CT", delegate="gpu", delegated_nodes=198, total_nodes=212,
                           latency=LatencyStats(runs=0, mean=21.6, median=None, std=None, min=None, max=None))]
    assert [BenchResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in records] == records
    path = save_results(records, tmp_path / "results.json", config={"threads": [2]})
    assert load_results(path) == records
    assert json.loads(path.read_text())["config"] == {"threads": [2]}
    assert [r.ok for r in records] == [True, False, True]
    assert records[2].median_ms == 21.6  # no median reported: the headline is the mean


def test_loading_a_foreign_file_says_what_to_pass(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text('{"results": []}')
    with pytest.raises(XFormerError, match="xformer bench --out"):
        load_results(bad)


def test_peak_memory_catches_a_freed_allocation():
    from xformer.benchmarks.memory import PeakMemory

    with PeakMemory() as memory:
        block = np.ones(100 * 2**20 // 8)  # 100 MiB, touched, then freed before the block ends
        del block
    assert 95 <= memory.delta_mb < 400 and memory.method
