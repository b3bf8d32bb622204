"""Quantised parity is judged: per-precision gates with trained weights, "not judged: seeded weights" without,
and a sanity floor that fails a broken file whatever its weights."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from xformer import create_model, load_checkpoint, save_checkpoint
from xformer.checkpoint import has_seeded_weights
from xformer.cli import main
from xformer.export import tflite_export
from xformer.export.formats import ExportFormat
from xformer.export.parity import NOT_JUDGED, TOLERANCES, compare


def _logits(seed: int, rows: int = 12, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, classes)).astype(np.float32)


def test_every_precision_has_a_gate():
    for precision in ("dynamic-int8", "int8", "w8a16", "palette6"):
        tol = TOLERANCES[precision]
        assert tol.needs_trained_weights and tol.min_photo_cosine and tol.min_top1_agreement and tol.floor_cosine


def test_trained_weights_are_judged_and_the_report_says_which_check_failed():
    reference = _logits(0)
    noisy = reference + 0.6 * _logits(1)  # cosine ~0.85, some photos' top-1 flips
    report = compare(reference, noisy, photos=8, precision="dynamic-int8", trained=True)
    assert not report.passed and report.judged and report.status == "FAILED"
    assert any(f.startswith("photo cosine") and "< 0.98" in f for f in report.failures)
    assert any(f.startswith("top-1 agreement") for f in report.failures)
    close = compare(reference, reference + 1e-3 * _logits(2), photos=8, precision="dynamic-int8", trained=True)
    assert close.passed and close.status == "ok"


def test_seeded_weights_are_not_judged_but_a_broken_file_still_fails():
    reference = _logits(0)
    noisy = reference + 0.6 * _logits(1)
    seeded = compare(reference, noisy, photos=8, precision="dynamic-int8", trained=False)
    assert seeded.passed and not seeded.judged and seeded.status == NOT_JUDGED == "not judged: seeded weights"
    broken = compare(reference, -reference, photos=8, precision="dynamic-int8", trained=False)
    assert not broken.passed and "broken whatever the weights" in broken.failures[0]
    nan = compare(reference, np.full_like(reference, np.nan), photos=8, precision="w8a16", trained=False)
    assert not nan.passed and "non-finite" in nan.failures[0]
    # float precisions do not depend on the weights: always judged
    assert not compare(reference, noisy, photos=8, precision="fp16", trained=False).passed


def test_seeded_weights_are_tracked_through_training_and_checkpoints(tmp_path):
    model = create_model("xformer_xxs", num_classes=10)
    assert has_seeded_weights(model)
    assert has_seeded_weights(load_checkpoint(save_checkpoint(model, tmp_path / "seeded.safetensors")))
    with torch.no_grad():
        model.classifier.weight.add_(0.01)  # one optimiser step's worth
    assert not has_seeded_weights(model)
    assert not has_seeded_weights(load_checkpoint(save_checkpoint(model, tmp_path / "trained.safetensors")))
    torch.save(model.state_dict(), tmp_path / "trained.pt")
    assert not has_seeded_weights(load_checkpoint(tmp_path / "trained.pt", "xformer_xxs"))


@pytest.fixture
def break_weights(monkeypatch):
    """Every file converted while active has its classifier negated: a quantised file with broken weights."""
    real = ExportFormat.load_exporter

    def load_exporter(self):
        convert = real(self)

        def broken(form, path, **kwargs):
            form = copy.deepcopy(form)
            last = [m for m in form.modules() if isinstance(m, nn.Linear)][-1]
            with torch.no_grad():
                last.weight.neg_()
                last.bias.neg_()
            return convert(form, path, **kwargs)

        return broken

    monkeypatch.setattr(ExportFormat, "load_exporter", load_exporter)
    monkeypatch.setattr(tflite_export, "_conversions", {})  # keyed by the intact weights: not to be reused


def _export(out, capsys) -> tuple[int, dict, str]:
    code = main(["export", "xformer_xxs", "--formats", "tflite", "--precisions", "dynamic-int8", "--imgsz", "64",
                 "--out", str(out)])
    (entry,) = json.loads((out / "export_report.json").read_text())["files"]
    return code, entry, capsys.readouterr().out


def test_seeded_quantised_file_says_not_judged(tmp_path, capsys):
    code, entry, printed = _export(tmp_path / "ok", capsys)
    assert code == 0 and entry["parity"]["status"] == NOT_JUDGED and entry["parity"]["passed"]
    assert "not judged" in printed and NOT_JUDGED in printed


def test_broken_quantised_file_fails_the_export(tmp_path, capsys, break_weights):
    code, entry, printed = _export(tmp_path / "broken", capsys)
    assert code == 1
    assert entry["ok"] and not entry["parity"]["passed"] and entry["parity"]["status"] == "FAILED"
    assert "broken whatever the weights" in entry["parity"]["failures"][0]
    assert "parity FAILED" in printed and "broken whatever the weights" in printed
