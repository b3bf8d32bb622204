"""The runtime interface: the same calls for the PyTorch reference and ONNX Runtime."""

import numpy as np
import onnx
import pytest

from xformer import create_model, save_checkpoint
from xformer.errors import ModelFileError
from xformer.export import export
from xformer.preprocess import preprocess
from xformer.runtimes import load
from xformer.runtimes.onnx_runtime import OnnxRuntime
from xformer.runtimes.torch_runtime import TorchRuntime


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    (record,) = export("xformer_xxs", formats="onnx", out_dir=tmp_path_factory.mktemp("rt"), validate=False,
                       compare_naive=False)
    return record.path


def test_load_picks_the_runtime_by_suffix(onnx_file, tmp_path):
    assert isinstance(load(onnx_file), OnnxRuntime)
    assert isinstance(load("xformer_xxs"), TorchRuntime)
    ckpt = save_checkpoint(create_model("xformer_xxs"), tmp_path / "m.safetensors")
    assert isinstance(load(ckpt), TorchRuntime)
    with pytest.raises(ModelFileError, match="no runtime for model.h5"):
        (tmp_path / "model.h5").write_bytes(b"x")
        load(tmp_path / "model.h5")
    with pytest.raises(ModelFileError, match="model file not found"):
        load(tmp_path / "missing.onnx")


def test_onnx_runtime_describes_its_file(onnx_file):
    runtime = load(onnx_file, threads=1)
    (image,) = runtime.inputs
    assert image.shape == (1, 3, 256, 256) and image.dtype == "float32" and image.layout == "NCHW"
    assert runtime.outputs[0].shape == (1, 1000)
    assert runtime.metadata["arch"] == "xformer_xxs" and len(runtime.config.labels) == 1000
    assert runtime.version.count(".") >= 2


def test_run_accepts_either_layout(onnx_file):
    runtime = load(onnx_file)
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    np.testing.assert_array_equal(runtime.run(x), runtime.run(x.transpose(0, 2, 3, 1)))
    with pytest.raises(ModelFileError, match=r"input shape \(1, 3, 224, 224\) does not fit"):
        runtime.run(np.zeros((1, 3, 224, 224), np.float32))


def test_predict_agrees_across_runtimes(onnx_file, sample_photo):
    torch_top = load("xformer_xxs").predict(sample_photo)
    onnx_top = load(onnx_file).predict(sample_photo)
    assert [p.index for p in torch_top] == [p.index for p in onnx_top]
    assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(torch_top, onnx_top))
    assert torch_top[0].label == create_model("xformer_xxs").model_config.labels[torch_top[0].index]


def test_torch_runtime_takes_any_size_and_layout(sample_photo):
    runtime = load("xformer_xxs")
    x = preprocess(sample_photo, runtime.config.preprocess.with_input_size(320))
    np.testing.assert_allclose(runtime.run(x), runtime.run(x.transpose(0, 2, 3, 1)), atol=0)
    assert runtime.run(x).shape == (1, 1000)


def test_corrupt_and_foreign_onnx_files(onnx_file, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(onnx_file.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="cannot be loaded by onnxruntime"):
        load(corrupt)
    foreign = onnx.load(str(onnx_file))
    del foreign.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(foreign, str(path))
    with pytest.raises(ModelFileError, match="carries no xformer metadata"):
        load(path)
