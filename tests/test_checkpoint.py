"""Self-describing checkpoints: round trip, plain state_dicts, and a clear error for every bad file."""

import collections
import os

import pytest
import torch

from xformer import CheckpointError, create_model, load_checkpoint, save_checkpoint
from xformer.checkpoint import atomic_path, load_model
from xformer.preprocess import PreprocessSpec


@pytest.fixture(scope="module")
def small_model():
    return create_model("xformer_xxs", num_classes=10, labels=[f"digit {i}" for i in range(10)],
                        preprocess=PreprocessSpec(input_size=(64, 64), resize_size=None), seed=3)


def test_round_trip_is_bit_identical(tmp_path, small_model):
    path = save_checkpoint(small_model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(small_model(x), loaded(x))
    assert loaded.model_config.to_dict() == small_model.model_config.to_dict()
    assert loaded.model_config.labels[3] == "digit 3"
    assert loaded.model_config.preprocess.input_size == (64, 64)


def test_options_survive_the_round_trip(tmp_path):
    model = create_model("xformer_xxs", attention="xfa_linear")
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "lin.safetensors"))
    assert loaded.model_config.options == {"attention": "xfa_linear"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_plain_state_dict_needs_and_uses_the_model_name(tmp_path, small_model):
    path = tmp_path / "plain.pth"
    torch.save(small_model.state_dict(), path)
    with pytest.raises(CheckpointError, match="--model NAME"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, "xformer_xxs")
    assert loaded.model_config.num_classes == 10  # read from the classifier's shape
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": small_model.state_dict(), "epoch": 3}, nested)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(nested, "xformer_xxs")(x), small_model(x))


def test_unknown_arch(tmp_path, small_model):
    path = tmp_path / "plain.pth"
    torch.save(small_model.state_dict(), path)
    with pytest.raises(CheckpointError, match="unknown model 'xformer_huge'"):
        load_checkpoint(path, "xformer_huge")


def test_missing_and_unexpected_keys_are_listed(tmp_path, small_model):
    state = collections.OrderedDict(small_model.state_dict())
    state.pop("classifier.bias")
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "keys.pth"
    torch.save(state, path)
    expected = r"missing keys \(1\): classifier.bias.*unexpected keys \(1\): extra.weight"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path, "xformer_xxs")


def test_shape_mismatch_is_named(tmp_path, small_model):
    path = tmp_path / "wrong_arch.pth"
    torch.save(small_model.state_dict(), path)
    expected = (r"shape mismatches \(273\): "
                r"layer1.conv.0.0.weight: checkpoint \(32, 16, 1, 1\) vs model \(64, 16, 1, 1\)")
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path, "xformer_s")


def test_truncated_files(tmp_path, small_model):
    good = save_checkpoint(small_model, tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(cut)
    pth = tmp_path / "cut.pth"
    torch.save(small_model.state_dict(), tmp_path / "full.pth")
    pth.write_bytes((tmp_path / "full.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint"):
        load_checkpoint(pth, "xformer_xxs")


def test_pickle_that_needs_code_is_refused(tmp_path, small_model):
    path = tmp_path / "whole_model.pt"
    torch.save(small_model, path)
    with pytest.raises(CheckpointError, match="need code to load"):
        load_checkpoint(path, "xformer_xxs")


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint type '.h5'"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="neither a model name nor a checkpoint"):
        load_model("xformer_m")


def test_failed_save_leaves_no_file(tmp_path):
    bare = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="no model_config"):
        save_checkpoint(bare, tmp_path / "bare.safetensors")
    with pytest.raises(ZeroDivisionError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise ZeroDivisionError
    assert os.listdir(tmp_path) == []


def test_atomic_directory_replaces_a_bundle_only_when_complete(tmp_path):
    target = tmp_path / "model.mlpackage"
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir() and tmp.name.endswith(".tmp.mlpackage")
        (tmp / "weights.bin").write_bytes(b"v1")
    assert (target / "weights.bin").read_bytes() == b"v1"
    with pytest.raises(ZeroDivisionError), atomic_path(target, directory=True) as tmp:
        (tmp / "weights.bin").write_bytes(b"partial")
        raise ZeroDivisionError
    assert (target / "weights.bin").read_bytes() == b"v1" and os.listdir(tmp_path) == ["model.mlpackage"]
    with atomic_path(target, directory=True) as tmp:
        tmp.rmdir()  # writers such as coremltools delete and recreate the directory
        tmp.mkdir()
        (tmp / "model.mlmodel").write_bytes(b"v2")
    assert os.listdir(target) == ["model.mlmodel"] and os.listdir(tmp_path) == ["model.mlpackage"]
