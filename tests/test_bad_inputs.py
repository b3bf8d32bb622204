"""Bad-input sweep: every input a new user might get wrong ends in one `error:` line naming the problem and
the fix, a non-zero exit (2: what was given cannot be used, 1: the work failed), no traceback, and no file
written anywhere."""

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from xformer import create_model, save_checkpoint
from xformer.cli import main
from xformer.errors import (
    CheckpointError,
    DeviceError,
    ExportError,
    ImageError,
    MissingExtraError,
    ModelFileError,
    OptionError,
    UsageError,
    XFormerError,
)
from xformer.samples import sample_images


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    """Files that look usable by their names and are not, plus a few good ones used in wrong ways."""
    import onnx
    from onnx import TensorProto, helper

    d = tmp_path_factory.mktemp("bad")
    photos = {p.name: p for p in sample_images()}
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    (d / "cut.png").write_bytes(photos["chelsea.png"].read_bytes()[:3000])
    (d / "cut.jpg").write_bytes(photos["rocket.jpg"].read_bytes()[:2000])
    (d / "folder.jpg").mkdir()
    (d / "html.jpg").write_text("<html><body>404 Not Found</body></html>")
    (d / "empty_calib").mkdir()
    (d / "texts_calib").mkdir()
    (d / "texts_calib" / "a.jpg").write_text("not an image")

    (d / "zeros.safetensors").write_bytes(b"\x00" * 10)
    (d / "text.safetensors").write_text('{"hello": "world"}')
    model = create_model("xformer_xxs", seed=1)
    save_checkpoint(model, d / "xxs.safetensors")
    torch.save(model.state_dict(), d / "xxs_state.pt")
    (d / "cut.pt").write_bytes((d / "xxs_state.pt").read_bytes()[:5000])
    torch.save(torch.nn.Linear(2, 2), d / "whole_module.pt")  # a pickled module, needs code to load
    torch.save({"epoch": 3, "lr": 0.1}, d / "no_tensors.pt")
    with (d / "plain.pkl.pt").open("wb") as f:
        pickle.dump({"a": [1, 2, 3]}, f)
    (d / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)

    (d / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 20)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), d / "foreign.onnx")
    (d / "garbage.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    with zipfile.ZipFile(d / "zip.tflite", "w") as archive:
        archive.writestr("model.bin", b"\x00" * 16)
    (d / "empty.mlpackage").mkdir()
    (d / "results.json").write_text('{"format": "something-else", "results": []}')
    (d / "suite.yaml").write_text("- just\n- a list\n")
    (d / "not_executable").write_text("#!/bin/sh\necho hi\n")
    return d


# (id, argv with {d} for the bad-files folder, exit code, text the one error line must contain)
CASES = [
    # images
    ("image-missing", "predict xformer_xxs {d}/missing.jpg", 2, "image not found"),
    ("image-empty", "predict xformer_xxs {d}/empty.jpg", 2, "is empty (0 bytes)"),
    ("image-text", "predict xformer_xxs {d}/text.png", 2, "cannot read"),
    ("image-html", "predict xformer_xxs {d}/html.jpg", 2, "pass a JPEG/PNG/BMP/WebP file"),
    ("image-cut-png", "predict xformer_xxs {d}/cut.png", 2, "cannot read"),
    ("image-cut-jpeg", "predict xformer_xxs {d}/cut.jpg", 2, "cannot read"),
    ("image-directory", "predict xformer_xxs {d}/folder.jpg", 2, "is a directory, not an image"),
    ("image-none", "predict xformer_xxs", 2, "give one or more image files"),
    # checkpoints
    ("ckpt-missing", "info {d}/missing.safetensors", 2, "checkpoint not found"),
    ("ckpt-zeros", "info {d}/zeros.safetensors", 2, "truncated or not a safetensors file"),
    ("ckpt-text", "predict {d}/text.safetensors {d}/text.png", 2, "truncated or not a safetensors file"),
    ("ckpt-cut-pt", "info {d}/cut.pt --model xformer_xxs", 2, "truncated or not a PyTorch checkpoint"),
    ("ckpt-pickled-module", "info {d}/whole_module.pt --model xformer_xxs", 2, "refusing to run it"),
    ("ckpt-plain-pickle", "info {d}/plain.pkl.pt --model xformer_xxs", 2, "Save `model.state_dict()`"),
    ("ckpt-no-tensors", "info {d}/no_tensors.pt --model xformer_xxs", 2, "does not hold a state_dict of tensors"),
    ("ckpt-needs-model", "info {d}/xxs_state.pt", 2, "--model NAME"),
    ("ckpt-wrong-arch", "info {d}/xxs_state.pt --model xformer_s", 2, "does not fit xformer_s"),
    ("ckpt-unknown-arch", "info {d}/xxs_state.pt --model xformer_huge", 2, "unknown model"),
    ("ckpt-arch-conflict", "info {d}/xxs.safetensors --model xformer_s", 2, "holds a xformer_xxs model"),
    ("ckpt-keras", "export {d}/weights.h5 --out {out}", 2, "unknown checkpoint type '.h5'"),
    ("ckpt-unknown-name", "export xformer_zzz --out {out}", 2, "neither a model name nor a checkpoint"),
    # exported files of other programs
    ("file-garbage-onnx", "info {d}/garbage.onnx", 2, "is not a readable ONNX file"),
    ("file-foreign-onnx", "info {d}/foreign.onnx", 2, "carries no xformer metadata"),
    ("file-foreign-onnx-predict", "predict {d}/foreign.onnx {d}/text.png", 2, "carries no xformer metadata"),
    ("file-foreign-onnx-validate", "validate {d}/foreign.onnx", 2, "carries no xformer metadata"),
    ("file-garbage-tflite", "predict {d}/garbage.tflite {d}/text.png", 2, "cannot be loaded by the LiteRT"),
    ("file-zip-tflite-android", "android {d}/zip.tflite --project {out}", 2, "not a TFLite flatbuffer"),
    ("file-onnx-android", "android {d}/foreign.onnx --project {out}", 2, "is not a .tflite or .pte file"),
    ("file-empty-mlpackage", "info {d}/empty.mlpackage", 2, "not a readable .mlpackage"),
    ("file-h5-runtime", "predict {d}/weights.h5 {d}/text.png", 2, "no runtime for weights.h5"),
    ("file-missing-onnx", "info {d}/missing.onnx", 2, "file not found"),
    # options and sizes
    ("opt-unknown-format", "export xformer_xxs --formats pdf --out {out}", 2, "unknown format 'pdf'"),
    ("opt-unknown-precision", "export xformer_xxs --precisions int3 --out {out}", 2, "precision 'int3' is not"),
    ("size-not-multiple", "export xformer_xxs --imgsz 65 --out {out}", 2, "not a multiple of 32"),
    ("size-not-number", "export xformer_xxs --imgsz big --out {out}", 2, "is not a number or HxW"),
    ("size-zero", "export xformer_xxs --imgsz 0 --out {out}", 2, "not a multiple of 32"),
    ("size-rectangle", "export xformer_xxs --imgsz 64x70 --out {out}", 2, "64x70 is not a multiple of 32"),
    ("opt-int8-io-onnx", "export xformer_xxs --int8-io --out {out}", 2, "--int8-io is an option of tflite"),
    ("opt-int8-io-fp32", "export xformer_xxs --formats tflite --int8-io --out {out}", 2,
     "--int8-io applies to TFLite int8"),
    ("opt-calib-missing", "export xformer_xxs --formats tflite --precisions int8 --calib {d}/nope --out {out}", 2,
     "calibration directory not found"),
    ("opt-calib-empty", "export xformer_xxs --formats tflite --precisions int8 --calib {d}/empty_calib --out {out}",
     2, "holds no images"),
    # options no requested format takes (checked against the format table)
    ("opt-calib-coreml", "export xformer_xxs --formats coreml --calib {d} --out {out}", 2,
     "--calib is an option of onnx, tflite, pte"),
    ("opt-float-layers-onnx", "export xformer_xxs --int8-float-layers classifier --out {out}", 2,
     "--int8-float-layers is an option of tflite"),
    ("opt-float-layers-auto-photos", "export xformer_xxs --formats tflite --precisions int8 --int8-float-layers auto "
     "--out {out}", 2, "add --calib DIR"),
    ("opt-opset-tflite", "export xformer_xxs --formats tflite --opset 18 --out {out}", 2,
     "--opset is an option of onnx, and this request exports tflite"),
    ("opt-coreml-input-onnx", "export xformer_xxs --coreml-input tensor --out {out}", 2,
     "--coreml-input is an option of coreml"),
    ("opt-converter-coreml", "export xformer_xxs --formats coreml --tflite-converter onnx2tf --out {out}", 2,
     "--tflite-converter is an option of tflite"),
    ("opt-dynamic-batch-tflite", "export xformer_xxs --formats tflite --dynamic-batch --out {out}", 2,
     "--dynamic-batch is an option of onnx"),
    ("opt-no-simplify-coreml", "export xformer_xxs --formats coreml --no-simplify --out {out}", 2,
     "--no-simplify is an option of onnx"),
    ("opt-opset-too-old", "export xformer_xxs --opset 11 --out {out}", 2, "--opset 11 is too old"),
    ("opt-nhwc-coreml-image", "export xformer_xxs --formats coreml --nhwc --out {out}", 2, "--coreml-input tensor"),
    ("opt-images-without-per-layer", "validate {d}/foreign.onnx --images {d}", 2, "add --per-layer"),
    ("opt-per-layer-onnx", "validate {d}/foreign.onnx --per-layer", 2, "--per-layer reads the intermediate"),
    ("bench-threads-zero", "bench xformer_xxs --threads 0 --out {out}", 2, "--threads takes positive counts"),
    ("bench-runs-zero", "bench xformer_xxs --runs 0 --out {out}", 2, "--runs and --batch must be >= 1"),
    ("bench-unknown-target", "bench xformer_xxs --target mars --out {out}", 2, "unknown target 'mars'"),
    ("bench-unknown-format", "bench xformer_xxs --formats pdf --out {out}", 2, "unknown format(s) pdf"),
    ("bench-compare-other-json", "bench xformer_xxs --compare {d}/results.json --out {out}", 2,
     "cannot read benchmark results"),
    ("bench-suite-missing", "bench --suite {d}/nope.yaml --out {out}", 2, "cannot read suite"),
    ("bench-suite-list", "bench --suite {d}/suite.yaml --out {out}", 2, "must be a mapping of settings"),
    ("bench-no-binary", "bench {d}/garbage.tflite --target local-benchmark-model --formats tflite "
                        "--benchmark-model {d}/nope --out {out}", 2, "benchmark_model binary not found"),
    ("bench-not-executable", "bench {d}/garbage.tflite --target local-benchmark-model --formats tflite "
                             "--benchmark-model {d}/not_executable --out {out}", 2, "is not executable"),
    ("android-no-project", "android {d}/garbage.tflite --project {out}", 2, "carries no xformer metadata"),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("argv", "code", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(argv, code, expected, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # default output folders (runs/...) would land here
    monkeypatch.delenv("XFORMER_BENCHMARK_MODEL", raising=False)
    out = tmp_path / "out"
    before = _tree(bad)
    assert main(argv.format(d=bad, out=out).split()) == code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert expected in errors[0], errors[0]
    assert "Traceback" not in err and "unexpected" not in errors[0] and "This is a bug" not in errors[0]
    assert not out.exists() and _tree(tmp_path) == set(), "a failed command wrote files"
    assert _tree(bad) == before, "a failed command wrote next to its input"


def test_the_sweep_is_wide():
    assert len(CASES) >= 30
    assert len({c[1].split()[0] for c in CASES}) >= 5  # predict, info, export, validate, bench, android


def test_real_process_prints_one_line_and_no_traceback(bad):
    """The same path as a user's shell: exit status and stderr of the installed entry point."""
    result = subprocess.run([sys.executable, "-m", "xformer", "predict", "xformer_xxs", str(bad / "cut.png")],
                            capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert "cut.png" in lines[-1] and "Traceback" not in result.stderr


def test_debug_shows_the_traceback(bad, capsys):
    assert main(["predict", "xformer_xxs", str(bad / "cut.png"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ImageError" in err and err.rstrip().splitlines()[-1].startswith("error:")


def test_an_unexpected_error_is_one_line_asking_for_a_report(monkeypatch, capsys):
    from xformer import cli

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setattr(cli, "_cmd_models", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert "unexpected KeyError: 'boom'" in err and "--debug" in err and "Traceback" not in err


def test_an_unwritable_output_folder_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("a file where the output folder should be")
        out = blocker / "sub"
    else:
        out = tmp_path / "ro" / "out"
        out.parent.mkdir()
        out.parent.chmod(0o500)
    assert main(["bench", "xformer_xxs", "--formats", "torch", "--runs", "1", "--warmup", "0", "--rounds", "1",
                 "--imgsz", "64", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "check the path" in errors[0] and "Traceback" not in err


def test_error_classes_and_exit_codes():
    usage = (OptionError, ImageError, CheckpointError, ModelFileError)
    assert all(issubclass(cls, UsageError) and cls.exit_code == 2 for cls in usage)
    assert all(cls.exit_code == 1 for cls in (ExportError, DeviceError, XFormerError))
    assert MissingExtraError("x", "onnx", "onnx").exit_code == 1
    assert issubclass(OptionError, ExportError)  # export requests that are wrong are still ExportErrors
    assert all(issubclass(cls, ValueError) for cls in usage)
