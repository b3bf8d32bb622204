"""Parallel export (`jobs`): the same files, records and report as exporting in one process, each file's lines
printed once and whole, a failing format recorded while the others finish, and a module that cannot be sent to
a worker exported in this process."""

import json
import textwrap

import pytest

from xformer.cli import main
from xformer.export import export, tflite_export
from xformer.export.exporter import REPORT_NAME
from xformer.export.formats import FORMATS
from xformer.export.parallel import split_jobs

REQUEST = {"formats": "onnx,tflite", "precisions": ["fp32"], "imgsz": 64}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return export("xformer_xxs", out_dir=tmp_path_factory.mktemp("serial"), jobs=1, **REQUEST)


def test_two_workers_give_the_files_and_records_of_one_process(serial, tmp_path, capsys):
    capsys.readouterr()
    records = export("xformer_xxs", out_dir=tmp_path, jobs=2, **REQUEST)
    assert [(r.format, r.precision) for r in records] == [(r.format, r.precision) for r in serial]  # plan order
    for parallel, alone in zip(records, serial):
        assert parallel.ok and alone.ok, (parallel.error, alone.error)
        assert parallel.path == tmp_path / alone.path.name and parallel.path.is_file()
        assert parallel.size_mb == pytest.approx(alone.size_mb, rel=1e-3)
        assert parallel.op_histogram == alone.op_histogram and parallel.max_rank == alone.max_rank
        p, s = parallel.parity, alone.parity
        assert p["passed"] and s["passed"]
        assert (p["photos"], p["random_inputs"], p["top1_agreement"]) == (s["photos"], s["random_inputs"],
                                                                         s["top1_agreement"])
        assert p["max_abs_err"] == pytest.approx(s["max_abs_err"], abs=1e-5)
    report = json.loads((tmp_path / REPORT_NAME).read_text())["files"]
    assert sorted(e["path"] for e in report) == sorted(str(r.path) for r in records)
    assert all(e["ok"] and e["parity"]["passed"] for e in report)

    lines = capsys.readouterr().err.splitlines()
    for record in records:  # each file's result line once, its parity line right below it
        (at,) = [i for i, line in enumerate(lines) if str(record.path) in line]
        assert lines[at].startswith(f"{record.format} {record.precision}:")
        assert lines[at + 1].lstrip().startswith("parity:")
    assert sum(line.lstrip().startswith("parity:") for line in lines) == len(records)


def test_a_failing_format_in_one_worker_does_not_stop_the_other(tmp_path, capsys):
    onnx, tflite = export("xformer_xxs", out_dir=tmp_path, jobs=2, tflite_converter="tvm", **REQUEST)
    assert onnx.ok and onnx.parity["passed"] and onnx.path.is_file()
    assert not tflite.ok and "unknown TFLite converter 'tvm'" in tflite.error
    assert capsys.readouterr().err.count("tflite fp32 failed: unknown TFLite converter 'tvm'") == 1
    report = json.loads((tmp_path / REPORT_NAME).read_text())["files"]
    assert [(e["format"], e["ok"]) for e in report] == [("onnx", True), ("tflite", False)]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_a_module_that_does_not_pickle_is_exported_in_this_process(tmp_path):
    source = tmp_path / "tiny_net.py"  # imported from a file path: a worker process cannot import its class
    source.write_text(textwrap.dedent("""
        from torch import nn

        class TinyNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3, stride=2)
                self.head = nn.Linear(4, 3)

            def forward(self, x):
                return self.head(self.conv(x).mean((2, 3)))

        def build():
            return TinyNet()
        """))
    tflite_export._conversions.clear()
    records = export(f"{source}:build", formats="onnx,tflite", input_size=(32, 32), labels=["a", "b", "c"],
                     out_dir=tmp_path / "out", jobs=2)
    assert all(r.ok and r.parity["passed"] for r in records), [r.error or r.parity for r in records]
    assert tflite_export._conversions  # the TFLite conversion ran here, not in a worker


def test_jobs_split_where_precisions_share_nothing():
    plan = [(FORMATS["onnx"], "fp32"), (FORMATS["onnx"], "int8"), (FORMATS["tflite"], "fp32"),
            (FORMATS["tflite"], "w8a16"), (FORMATS["tflite"], "int8"), (FORMATS["coreml"], "fp16"),
            (FORMATS["coreml"], "palette6")]
    # TFLite int8 traces and quantises on its own; its other precisions share the float flatbuffer. The longest
    # (estimated) job goes first.
    assert split_jobs(plan) == [[2, 3], [4], [5, 6], [0, 1]]


def test_jobs_below_one_is_a_usage_error(capsys):
    assert main(["export", "xformer_xxs", "--jobs", "0"]) == 2
    assert "--jobs 0" in capsys.readouterr().err
