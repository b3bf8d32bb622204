"""Every classifier variant converts to TFLite (litert-torch, default size) with fp32 parity, no GPU delegate
fallback in fp32 and fp16 files, and no TRANSPOSE inside an attention layer."""

import pytest

from xformer import create_model
from xformer.export import export
from xformer.export.tflite_graph import read_graph

from .conftest import CLASSIFIERS


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_variant_converts_for_cpu_and_gpu(name, tmp_path):
    records = {r.precision: r for r in export(create_model(name), formats="tflite", precisions=["fp32", "fp16"],
                                              out_dir=tmp_path)}
    for precision, record in records.items():
        assert record.ok, f"{precision}: {record.error}"
        gpu = record.details["gpu"]
        assert gpu["incompatible"] == 0, f"{precision}: {gpu['incompatible_ops']}"
        graph = read_graph(record.path)
        assert all(layer["transposes"] == 0 for layer in graph.attention_layers().values())
        assert graph.transposes == record.details["transposes"]
    fp32, fp16 = records["fp32"].parity, records["fp16"].parity
    assert fp32["passed"] and fp32["max_abs_err"] <= 1e-4 and fp32["top1_agreement"] == 1.0, fp32["failures"]
    assert fp16["cosine"] >= 0.999
    if name.startswith(("xformer", "mobilevit")):
        assert len(records["fp32"].details["attention_layers"]) == 9
