"""Training and evaluation end to end on real data: the digits folder -> `xformer train` -> checkpoint -> exported
files -> `xformer val` / `xformer bench --data`. The checkpoint and the exports are the session's (conftest)."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from rich.console import Console

from xformer import load_checkpoint
from xformer.cli import main
from xformer.errors import DataError, XFormerError
from xformer.train import train, validate

from .conftest import DIGITS_TRAINING

ROOT = Path(__file__).resolve().parent.parent


def test_training_reaches_real_accuracy_and_writes_the_run(digits_run, digits_root):
    assert digits_run.best_fitness >= 0.95, digits_run.history
    run = digits_run.run_dir
    for name in ("best.safetensors", "last.safetensors", "resume.pt", "metrics.csv", "metrics.json", "curves.png"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*tmp*")), "a temporary file was left behind"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, DIGITS_TRAINING["epochs"] + 1))
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "top1", "top5", "lr", "seconds"}
    assert json.loads((run / "metrics.json").read_text())[-1]["epoch"] == DIGITS_TRAINING["epochs"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    with Image.open(run / "curves.png") as image:
        assert image.format == "PNG" and image.width > 600
    model = load_checkpoint(digits_run.best)
    config = model.model_config
    assert config.labels == [str(i) for i in range(10)] and config.preprocess.input_size == (64, 64)
    # The validator behind `xformer val` reproduces the trainer's own evaluation of the best epoch.
    result = validate(digits_run.best, digits_root)
    assert result.images == 540 and result.top1 == pytest.approx(digits_run.best_fitness, abs=1e-9)
    assert set(result.per_class) == set(config.labels)


def test_torchrun_two_processes_match_the_single_process_run(digits_run, digits_root, tmp_path):
    out = tmp_path / "ddp"
    settings = {**DIGITS_TRAINING, "workers": 1}
    options = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items() if k != "source"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "xformer", "train", DIGITS_TRAINING["source"], "--data", str(digits_root), "--out", str(out),
               *options]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["best.safetensors", "last.safetensors"]
    assert "over 2 processes" in result.stdout and result.stdout.count("best top-1") == 1  # rank 0 alone prints
    ddp_top1 = validate(out / "best.safetensors", digits_root).top1
    assert ddp_top1 >= 0.95
    assert abs(ddp_top1 - digits_run.best_fitness) <= 0.01, (ddp_top1, digits_run.best_fitness)


def test_val_of_exported_files_matches_pytorch(digits_exports, digits_run, digits_root, tmp_path, capsys):
    reference = validate(digits_run.best, digits_root).top1
    onnx = validate(digits_exports[("onnx", "fp32")].path, digits_root, ckpt=str(digits_run.best))
    assert onnx.format == "onnx" and onnx.runtime == "onnxruntime"
    assert abs(onnx.top1 - reference) <= 0.002 and onnx.agreement >= 0.998
    for precision, tolerance in (("fp32", 0.002), ("int8", 0.02), ("fp16", 0.002), ("dynamic-int8", 0.02)):
        tflite = validate(digits_exports[("tflite", precision)].path, digits_root, ckpt=str(digits_run.best))
        assert tflite.precision == precision and tflite.runtime == "litert"
        assert tflite.top1 >= reference - tolerance, (precision, tflite.top1, reference)
    out = tmp_path / "val.json"
    file = digits_exports[("tflite", "int8")].path
    assert main(["val", str(file), "--data", str(digits_root / "val"), "--ckpt", str(digits_run.best),
                 "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["images"] == 540 and saved["precision"] == "int8" and set(saved["per_class"]) == set("0123456789")
    assert f"top-1 {saved['top1']:.2%}" in printed and "agreement with PyTorch" in printed


def test_bench_adds_an_accuracy_column(digits_exports, digits_run, digits_root, bench_cache, tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", str(digits_run.best), "--formats", "torch,onnx,tflite", "--precisions", "fp32,int8",
                   "--data", str(digits_root), "--runs", "3", "--warmup", "1", "--cache-dir", str(bench_cache),
                   "--out", str(out)])
    assert status in (0, None)
    printed = capsys.readouterr().out
    assert "Accuracy on" in printed and "top-1 %" in printed
    rows = json.loads((out / "results.json").read_text())["results"]
    by_key = {(r["format"], r["precision"]): r for r in rows}
    assert set(by_key) == {("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"),
                           ("tflite", "int8")}
    torch_top1 = by_key[("torch", "fp32")]["accuracy"]["top1"]
    assert torch_top1 == pytest.approx(digits_run.best_fitness, abs=1e-9)
    for key, row in by_key.items():
        accuracy = row["accuracy"]
        assert accuracy["pytorch_top1"] == torch_top1 and accuracy["images"] == 540, key
        assert not accuracy["flagged"], (key, accuracy)
    assert by_key[("tflite", "int8")]["accuracy"]["margin_pt"] == 1.0
    assert "top1_delta_pt" in (out / "results.csv").read_text().splitlines()[0]
    assert "## Accuracy (same run)" in (out / "results.md").read_text()


def test_ctrl_c_leaves_a_run_that_resumes(digits_root, tmp_path):
    out = tmp_path / "run"
    settings = {**DIGITS_TRAINING, "epochs": 3, "workers": 2}
    options = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items() if k != "source"]
    command = [sys.executable, "-m", "xformer", "train", "xformer_xxs", "--data", str(digits_root), "--out", str(out),
               *options]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("epoch 1/3:"):
            process.send_signal(signal.SIGINT)
            break
    assert process.wait(timeout=120) == 130, "".join(lines)
    state = torch.load(out / "resume.pt", weights_only=True)
    assert state["epoch"] in (1, 2)  # SIGINT may land after the second epoch's files were written
    load_checkpoint(out / "last.safetensors")  # intact
    assert not list(out.glob(".*tmp*")), "a temporary file was left behind"

    with pytest.raises(XFormerError, match="options differ from the run's.*lr"):
        train({"lr": 0.1}, resume=str(out))
    with pytest.raises(XFormerError, match="epochs"):
        train({"epochs": 5}, resume=str(out))
    resumed = train({"workers": 0}, resume=str(out))
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert len(json.loads((out / "metrics.json").read_text())) == 3


def _folder(root: Path, classes: dict[str, int], split: str = "train") -> None:
    for name, count in classes.items():
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (32, 32), (i * 40 % 255, 0, 0)).save(root / split / name / f"{i}.png")


def test_bad_data_fails_clearly_and_writes_nothing(digits_run, tmp_path):
    base = {**DIGITS_TRAINING, "epochs": 1}
    cases = {}
    cases["missing"] = (tmp_path / "nope", "data folder not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["empty"] = (empty, "needs train/ and val/ splits")
    no_val = tmp_path / "no_val"
    _folder(no_val, {"a": 2, "b": 2})
    cases["no val split"] = (no_val, "has no val/ split")
    flat = tmp_path / "flat"
    _folder(flat, {"a": 1}, "val")
    (flat / "train").mkdir()
    Image.new("RGB", (8, 8)).save(flat / "train" / "loose.png")
    cases["split without class folders"] = (flat, "train holds no class folders")
    empty_class = tmp_path / "empty_class"
    _folder(empty_class, {"a": 2}), _folder(empty_class, {"a": 2}, "val")
    (empty_class / "train" / "b").mkdir()
    cases["class without images"] = (empty_class, "holds no images")
    all_broken = tmp_path / "all_broken"
    _folder(all_broken, {"a": 2, "b": 2}), _folder(all_broken, {"a": 1, "b": 1}, "val")
    for png in (all_broken / "train" / "b").glob("*.png"):
        png.write_bytes(b"not a png")
    cases["class with only unreadable images"] = (all_broken, "no readable image")
    unknown_val = tmp_path / "unknown_val"
    _folder(unknown_val, {"a": 2, "b": 2}), _folder(unknown_val, {"a": 1, "c": 1}, "val")
    cases["val class not in train"] = (unknown_val, "class folders the model does not know: c")
    for name, (data, message) in cases.items():
        out = tmp_path / f"out-{name.replace(' ', '_')}"
        with pytest.raises(DataError, match=message):
            train({**base, "data": str(data), "out": str(out)})
        assert not out.exists() or not any(out.iterdir()), name

    # One unreadable image among good ones is counted and skipped, or refused with --strict.
    mixed = tmp_path / "mixed"
    _folder(mixed, {"a": 3, "b": 3}), _folder(mixed, {"a": 1, "b": 1}, "val")
    (mixed / "train" / "a" / "0.png").write_bytes(b"\x89PNG cut short")
    with pytest.raises(DataError, match="cannot read .*0.png as an image"):
        train({**base, "data": str(mixed), "strict": True, "out": str(tmp_path / "strict")})
    assert main(["val", str(digits_run.best), "--data", str(mixed)]) == 2  # class folders a, b are not digits

    # Fine-tuning on folders whose names disagree with the checkpoint's labels (same count) is refused.
    renamed = tmp_path / "renamed"
    _folder(renamed, {f"digit_{i}": 1 for i in range(10)}), _folder(renamed, {"digit_0": 1}, "val")
    with pytest.raises(DataError, match="rename the folders to the checkpoint's labels, or pass --new-head"):
        train({**base, "source": str(digits_run.best), "data": str(renamed), "out": str(tmp_path / "ft")})
    assert main(["train", "xformer_xxs", "--data", str(tmp_path / "nope")]) == 2


def test_fine_tune_with_fewer_classes_gets_a_new_head(digits_run, tmp_path, capsys):
    data = tmp_path / "two"
    _folder(data, {"cat": 4, "dog": 4}), _folder(data, {"cat": 2, "dog": 2}, "val")
    result = train({"source": str(digits_run.best), "data": str(data), "epochs": 1, "batch": 4, "hflip": 0.0,
                    "workers": 0, "out": str(tmp_path / "ft")}, console=Console(width=200))
    printed = capsys.readouterr().out
    assert "new classifier head: " in printed and "has 10 classes, the data 2; re-initialised classifier.bias, " \
        "classifier.weight" in printed
    model = load_checkpoint(result.best)
    assert model.model_config.labels == ["cat", "dog"] and model.model_config.num_classes == 2
    assert model.model_config.preprocess == load_checkpoint(digits_run.best).model_config.preprocess


def test_unknown_model_is_an_error(digits_root):
    with pytest.raises(XFormerError, match="neither a model name nor a checkpoint"):
        train({"source": "not_a_model", "data": str(digits_root)})
