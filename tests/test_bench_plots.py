"""Plots: plain axes (no offset notation even for models of equal size) and latency vs input size when a run
covers several sizes."""

import dataclasses

from xformer.benchmarks import write_reports
from xformer.benchmarks.plots import figure_latency_vs_input_size, figure_latency_vs_params

from .test_bench_reports import PNG_SIGNATURE, record


def _tick_text(fig, ax) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()] + \
        [ax.xaxis.get_offset_text().get_text(), ax.yaxis.get_offset_text().get_text()]


def test_equal_sizes_give_a_plain_params_axis():
    # xformer_s and mobilevit_s have the same parameter count: the x range collapses to one value
    results = [record("xformer_s", 1, [100, 101, 99]), record("mobilevit_s", 1, [200.001, 200.002, 200.003])]
    fig, ax = figure_latency_vs_params(results)
    texts = _tick_text(fig, ax)
    assert not any("e-" in t or "e+" in t or "1e" in t for t in texts), texts
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    low, high = ax.get_xlim()
    assert low < 5.58 < high and high - low > 0.5  # a readable range around the one value
    assert any(t.startswith("5.") for t in texts)


def test_latency_vs_input_size_only_when_sizes_differ(tmp_path):
    one_size = [record("xformer_s", 1, [100, 101]), record("mobilevit_s", 1, [200, 201])]
    assert figure_latency_vs_input_size(one_size) is None
    sizes = [dataclasses.replace(record("xformer_s", 1, [t, t + 1]), input_size=(s, s))
             for s, t in ((128, 30.0), (256, 100.0), (320, 160.0))]
    fig, ax = figure_latency_vs_input_size(sizes)
    (line,) = ax.get_lines()[:1]
    assert list(line.get_xdata()) == [128 * 128 / 1e3, 256 * 256 / 1e3, 320 * 320 / 1e3]
    assert [t.get_text() for t in ax.texts] == ["128x128", "256x256", "320x320"]
    paths = write_reports(sizes, tmp_path)
    plot = tmp_path / "latency_vs_input_size.png"
    assert plot in paths and plot.read_bytes().startswith(PNG_SIGNATURE)
    write_reports(one_size, tmp_path / "one")
    assert not (tmp_path / "one" / "latency_vs_input_size.png").exists()
