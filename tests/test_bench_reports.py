"""Report writers: the files they write read back to the same numbers; plots are valid PNGs."""

import csv

import pytest
from PIL import Image
from rich.console import Console

from xformer.benchmarks import BenchResult, compare_results, load_results, results_table, summarize, write_reports
from xformer.benchmarks.report import markdown_report, ratio_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(model: str, threads: int, samples: list[float], fmt: str = "torch", **extra) -> BenchResult:
    latency = summarize(samples) if samples else None
    return BenchResult(model=model, source=model, format=fmt, precision="fp32", runtime=fmt, runtime_version="1.0",
                       target="host", device="cpu", threads=threads, input_size=(256, 256),
                       params={"xformer_s": 5_580_000, "mobilevit_s": 5_580_000}.get(model, 3_500_000),
                       macs=1_000_000_000, latency=latency, fps=1000 / latency.median if latency else None,
                       timestamp="2026-11-29T10:00:00+00:00", environment={"cpu": "cpu", "logical_cores": 2},
                       **extra)


@pytest.fixture
def results() -> list[BenchResult]:
    return [record("xformer_s", 1, [100, 102, 98, 101]), record("xformer_s", 2, [60, 61, 59, 90]),
            record("mobilevit_s", 1, [200, 204, 196, 202]), record("mobilevit_s", 2, [120, 121, 119, 150]),
            record("mobilenetv2_100", 1, [40, 41, 39, 40]),
            record("xformer_s", 1, [], fmt="onnx", error="export failed: no exporter")]


def test_ratios_pair_each_xformer_row_with_peers_under_the_same_setting(results):
    rows = {(r["peer"], r["threads"]): r["ratio"] for r in ratio_rows(results)}
    assert rows == {("mobilevit_s", 1): pytest.approx(100.5 / 201), ("mobilevit_s", 2): pytest.approx(60.5 / 120.5),
                    ("mobilenetv2_100", 1): pytest.approx(100.5 / 40)}


def test_compare_gives_speedup_per_matching_row(results):
    old = [record("xformer_s", 1, [201, 201]), record("mobilevit_s", 2, [60.25, 60.25])]
    speedups = compare_results(results, old)
    assert speedups == {results[0].key: pytest.approx(2.0), results[3].key: pytest.approx(0.5)}
    console = Console(width=200, record=True)
    console.print(results_table(results, speedups))
    text = console.export_text()
    assert "2.00x (faster 100%)" in text and "0.50x (slower 50%)" in text and "new" in text and "failed" in text


def test_reports_read_back(tmp_path, results):
    paths = write_reports(results, tmp_path / "out", config={"threads": [1, 2]})
    names = sorted(p.name for p in paths)
    assert names == ["latency_bars.png", "latency_vs_params.png", "results.csv", "results.json", "results.md"]
    assert load_results(tmp_path / "out" / "results.json") == results
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == [r.model for r in results]
    assert float(rows[0]["median_ms"]) == pytest.approx(100.5) and rows[0]["input_size"] == "256x256"
    assert float(rows[0]["trimmed_mean_ms"]) == pytest.approx(100.25) and rows[0]["runs"] == "4"
    assert rows[-1]["error"] == "export failed: no exporter" and rows[-1]["median_ms"] == ""
    md = (tmp_path / "out" / "results.md").read_text()
    assert md == markdown_report(results)
    assert "| `xformer_s` | torch | fp32 | torch 1.0 | 1 | 256x256 | 5.58 | 1.00 | - | **100.50** |" in md
    assert "## XFormer vs peers (same run)" in md and "**0.50**" in md
    assert "## Failed" in md and "export failed: no exporter" in md


def test_plots_are_valid_pngs(tmp_path, results):
    write_reports(results, tmp_path)
    for name in ("latency_vs_params.png", "latency_bars.png"):
        path = tmp_path / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 300


def test_a_run_with_no_numbers_writes_tables_but_no_plots(tmp_path):
    paths = write_reports([record("xformer_s", 1, [], error="boom")], tmp_path)
    assert sorted(p.name for p in paths) == ["results.csv", "results.json", "results.md"]
