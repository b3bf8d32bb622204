"""Bring your own model: a small CNN and a small ViT written here (not in the registry) export to ONNX and TFLite
with parity, metadata and labels, load in the runtimes, and benchmark; `xformer export file.py:build_fn` too."""

import json
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import xformer
from xformer import PreprocessSpec
from xformer.benchmarks import BenchConfig, run_benchmarks
from xformer.cli import main
from xformer.errors import OptionError
from xformer.export.metadata import read_metadata
from xformer.runtimes import load

LABELS = ["cat", "dog", "bird", "fish", "frog"]
SIZE = (32, 32)

CNN_SOURCE = '''
import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def build():
    torch.manual_seed(0)
    return SmallCNN()
'''
namespace: dict = {}
exec(CNN_SOURCE, namespace)  # the same module the CLI test loads from a file
SmallCNN = namespace["SmallCNN"]


class TinyVit(nn.Module):
    """Patch embedding, two pre-norm transformer layers with hand-written attention, mean pooling, head."""

    def __init__(self, classes: int = 5, dim: int = 32, heads: int = 2, patch: int = 8):
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (SIZE[0] // patch) * (SIZE[1] // patch), dim) * 0.02)
        self.layers = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim),
            "norm2": nn.LayerNorm(dim),
            "mlp": nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)),
        }) for _ in range(2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        b, n, d = x.shape
        for layer in self.layers:
            qkv = layer["qkv"](layer["norm1"](x)).reshape(b, n, 3, self.heads, d // self.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            attention = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
            x = x + layer["proj"]((attention @ v).transpose(1, 2).reshape(b, n, d))
            x = x + layer["mlp"](layer["norm2"](x))
        return self.head(self.norm(x).mean(dim=1))


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN() if name == "cnn" else TinyVit()


@pytest.fixture(scope="module", params=["cnn", "vit"])
def exported(request, tmp_path_factory):
    model = _model(request.param)
    spec = PreprocessSpec(input_size=SIZE, resize_size=36, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = tmp_path_factory.mktemp(request.param)
    records = xformer.export(model, formats="onnx,tflite", labels=LABELS, preprocess=spec, out_dir=out)
    return request.param, model, {r.format: r for r in records}


def test_exports_to_onnx_and_tflite_with_parity_and_metadata(exported):
    name, model, records = exported
    arch = {"cnn": "small_cnn", "vit": "tiny_vit"}[name]
    assert model.model_config.arch == arch and model.model_config.num_classes == 5
    for fmt, suffix in (("onnx", ".onnx"), ("tflite", ".tflite")):
        record = records[fmt]
        assert record.ok, record.error
        assert record.path.name == f"{arch}_fp32{suffix}"
        assert record.parity["passed"] and record.parity["status"] == "ok", record.parity
        assert record.parity["max_abs_err"] < 1e-4 and record.parity["top1_agreement"] == 1.0
        meta = read_metadata(record.path)
        assert meta["arch"] == arch and meta["labels"] == LABELS and meta["num_classes"] == 5
        assert meta["preprocess"]["input_size"] == list(SIZE) and meta["preprocess"]["std"] == [0.25] * 3
        assert meta["export"]["params"] == sum(p.numel() for p in model.parameters())
    assert read_metadata(records["tflite"].path)["preprocess"]["layout"] == "NHWC"


def test_the_files_predict_like_the_module(exported, sample_photo):
    _, model, records = exported
    from xformer.preprocess import preprocess

    with torch.no_grad():
        expected = model(torch.from_numpy(preprocess(sample_photo, model.model_config.preprocess))).numpy()[0]
    for record in records.values():
        runtime = load(record.path)
        (best,) = runtime.predict(sample_photo, k=1)
        assert best.label == LABELS[int(np.argmax(expected))]
        assert best.logit == pytest.approx(float(expected.max()), abs=1e-4)


def test_the_files_benchmark(exported):
    _, model, records = exported
    results = run_benchmarks(BenchConfig([str(r.path) for r in records.values()], runs=3, warmup=1, rounds=1))
    assert [(r.format, r.ok) for r in results] == [("onnx", True), ("tflite", True)]
    params = sum(p.numel() for p in model.parameters())
    assert all(r.median_ms > 0 and r.params == params and r.input_size == SIZE for r in results)


def test_cli_exports_a_build_function_from_a_file(tmp_path, capsys):
    source = tmp_path / "my_module.py"
    source.write_text(textwrap.dedent(CNN_SOURCE))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    out = tmp_path / "out"
    assert main(["export", f"{source}:build", "--imgsz", "32", "--labels", str(labels), "--formats", "onnx",
                 "--out", str(out)]) == 0
    (entry,) = json.loads((out / "export_report.json").read_text())["files"]
    assert entry["arch"] == "small_cnn" and entry["parity"]["passed"]
    assert read_metadata(out / "small_cnn_fp32.onnx")["labels"] == LABELS
    assert "small_cnn_fp32.onnx" in capsys.readouterr().out
    onnx_file = str(out / "small_cnn_fp32.onnx")
    assert main(["validate", onnx_file, "--ckpt", f"{source}:build"]) == 0
    assert main(["validate", onnx_file]) == 2
    assert "a module of your own (small_cnn): pass the FILE.py:FUNCTION" in capsys.readouterr().err
    assert main(["predict", onnx_file, "--samples", "-k", "1"]) == 0
    printed = capsys.readouterr().out
    assert any(label in printed for label in LABELS), printed
    bench_out = tmp_path / "bench"
    assert main(["bench", f"{source}:build", "--imgsz", "32", "--formats", "torch,onnx", "--runs", "3",
                 "--warmup", "1", "--rounds", "1", "--cache-dir", str(tmp_path / "cache"), "--out",
                 str(bench_out)]) == 0
    rows = json.loads((bench_out / "results.json").read_text())["results"]
    assert [(r["model"], r["format"]) for r in rows] == [("small_cnn", "torch"), ("small_cnn", "onnx")]
    assert rows[1]["parity"]["max_abs_err"] < 1e-4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give its input size"),
    ({"input_size": 32, "labels": ["a", "b"]}, "2 labels for a module with 5 outputs"),
    ({"input_size": 7}, "does not run on a 1x3x7x7 image batch"),
])
def test_a_module_of_your_own_is_described_or_refused_clearly(kwargs, message, tmp_path):
    with pytest.raises(OptionError, match=message):
        xformer.export(TinyVit(), formats="onnx", out_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_registered_models_keep_their_config(tmp_path):
    with pytest.raises(OptionError, match="carries its config already"):
        xformer.export(xformer.create_model("xformer_xxs"), labels=LABELS, out_dir=tmp_path)
