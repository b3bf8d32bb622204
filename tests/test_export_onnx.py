"""ONNX export through the spine: parity, structure, metadata, determinism and clear failures."""

import json

import numpy as np
import onnx
import pytest

from xformer import create_model, save_checkpoint
from xformer.cli import main
from xformer.errors import ExportError, MissingExtraError
from xformer.export import export
from xformer.export.deploy import has_deploy_form
from xformer.export.formats import ExportFormat, format_table_markdown
from xformer.export.metadata import read_metadata

from .conftest import CLASSIFIERS, per_variant


@pytest.fixture(scope="module")
def xxs_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    (record,) = export("xformer_xxs", formats="onnx", out_dir=out)
    return record


@pytest.mark.parametrize("name", per_variant(CLASSIFIERS))
def test_every_variant_exports_and_matches_pytorch(name, tmp_path):
    (record,) = export(create_model(name), formats="onnx", out_dir=tmp_path, compare_naive=False)
    assert record.ok, record.error
    assert record.parity["passed"], record.parity["failures"]
    assert record.parity["max_abs_err"] <= 1e-4 and record.parity["top1_agreement"] == 1.0
    assert record.parity["photos"] >= 5
    onnx.checker.check_model(onnx.load(str(record.path)), full_check=True)
    if has_deploy_form(create_model(name)):
        assert record.max_rank <= 4


def test_deploy_xfa_lowers_to_fewer_nodes_than_the_training_form(xxs_onnx):
    deploy, naive = xxs_onnx.details["attention_layers"], xxs_onnx.details["naive"]["attention_layers"]
    assert set(deploy) == set(naive) and len(deploy) == 2 + 4 + 3
    for layer in deploy:
        assert deploy[layer]["nodes"] < naive[layer]["nodes"]
        assert deploy[layer]["transposes"] <= 1 < naive[layer]["transposes"] + 1
    assert xxs_onnx.details["naive"]["max_rank"] > 4 >= xxs_onnx.max_rank


def test_report_and_metadata_round_trip(xxs_onnx):
    report = json.loads((xxs_onnx.path.parent / "export_report.json").read_text())
    (entry,) = [e for e in report["files"] if e["path"] == str(xxs_onnx.path)]
    assert entry["op_histogram"]["Conv"] > 0 and entry["parity"]["passed"]
    meta = read_metadata(xxs_onnx.path)
    model = create_model("xformer_xxs")
    assert meta["labels"] == model.model_config.labels
    assert meta["preprocess"] == model.model_config.preprocess.to_dict()
    assert meta["export"]["precision"] == "fp32" and meta["arch"] == "xformer_xxs"


def test_export_is_deterministic(xxs_onnx, tmp_path):
    (again,) = export("xformer_xxs", formats="onnx", out_dir=tmp_path, validate=False, compare_naive=False)
    assert again.path.read_bytes() == xxs_onnx.path.read_bytes()


def test_from_checkpoint_via_cli(tmp_path, capsys):
    ckpt = save_checkpoint(create_model("xformer_xxs", seed=5), tmp_path / "run.safetensors")
    out = tmp_path / "out"
    assert main(["export", str(ckpt), "--formats", "onnx", "--out", str(out), "--imgsz", "224"]) == 0
    printed = capsys.readouterr().out
    assert "xformer predict" in printed and "xformer bench" in printed
    meta = read_metadata(out / "xformer_xxs_fp32.onnx")
    assert meta["preprocess"]["input_size"] == [224, 224] and meta["preprocess"]["resize_size"] == 252
    assert main(["validate", str(out / "xformer_xxs_fp32.onnx"), "--ckpt", str(ckpt)]) == 0
    assert main(["validate", str(out / "xformer_xxs_fp32.onnx")]) == 2  # seeded weights differ from the checkpoint
    assert "other weights" in capsys.readouterr().err


def test_dynamic_batch(tmp_path):
    from xformer.runtimes import load

    (record,) = export("xformer_xxs", formats="onnx", out_dir=tmp_path, dynamic_batch=True, compare_naive=False)
    runtime = load(record.path)
    assert runtime.inputs[0].shape[0] == -1
    assert runtime.run(np.random.rand(3, 3, 256, 256).astype(np.float32)).shape == (3, 1000)


@pytest.mark.parametrize("args, message", [
    (["--formats", "onnx,tensorrt"], "unknown format 'tensorrt'"),
    (["--formats", "onnx", "--precisions", "int4"], "precision 'int4' is not supported by onnx"),
    (["--imgsz", "250"], "not a multiple of 32"),
])
def test_bad_requests_fail_clearly_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["export", "xformer_xxs", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    assert main(["export", str(bad), "--out", str(out)]) == 2
    assert "truncated or not a safetensors file" in capsys.readouterr().err
    assert not out.exists()


def test_missing_extra_names_the_pip_command():
    fmt = ExportFormat("fancy", ".fancy", ("fp32",), ("fp32",), "fancy", ("a_module_that_is_not_installed",), (),
                       "onnx_export:export_onnx", False, "test format")
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[fancy\]"'):
        fmt.require()
    with pytest.raises(ExportError, match="unknown format"):
        export("xformer_xxs", formats="fancy")


def test_format_table_lists_every_format():
    assert "| `onnx` | `.onnx` | fp32, fp16, int8, int8-qop |" in format_table_markdown()
