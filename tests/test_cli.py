"""The `xformer` command, run in-process through its entry point."""

import subprocess
import sys

import torch

from xformer import create_model, save_checkpoint
from xformer.cli import main
from xformer.models import list_models


def test_models_lists_every_variant(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():  # whole names, also on an 80-column terminal
        assert f" {name} " in out
    assert "5.58" in out and "1.87" in out  # xformer_s params (M) and GMACs at 256


def test_predict_with_seeded_weights_says_so(capsys, sample_photo):
    assert main(["predict", "xformer_xxs", str(sample_photo), "-k", "3"]) == 0
    captured = capsys.readouterr()
    assert "seeded weights" in captured.err
    assert "chelsea.png" in captured.out and "prob" in captured.out


def test_predict_from_checkpoint_matches_the_model(tmp_path, capsys, sample_photo):
    from xformer.preprocess import preprocess
    from xformer.runtimes import top_k

    model = create_model("xformer_xxs", seed=7)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    assert main(["predict", str(path), str(sample_photo), "-k", "1"]) == 0
    out = capsys.readouterr().out
    with torch.no_grad():
        logits = model(torch.from_numpy(preprocess(sample_photo, model.model_config.preprocess))).numpy()
    best = top_k(logits[0], model.model_config.labels, 1)[0]
    assert best.label in out and f"{best.score:.4f}" in out


def test_info_on_a_checkpoint(tmp_path, capsys):
    path = save_checkpoint(create_model("xformer_xxs"), tmp_path / "m.safetensors")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "xformer_xxs" in out and "1000 labels: tench" in out and "bicubic" in out


def test_bad_checkpoint_exits_non_zero_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 10)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "truncated or not a safetensors file" in err and "Traceback" not in err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "xformer", "--help"], capture_output=True, text=True, check=True)
    assert "train the XFormer vision backbone, export it to ONNX" in result.stdout


def test_import_xformer_stays_light():
    code = ("import sys, xformer; heavy = [m for m in ('tensorflow', 'onnx', 'onnxruntime', 'coremltools', "
            "'ai_edge_litert', 'litert_torch', 'matplotlib') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
