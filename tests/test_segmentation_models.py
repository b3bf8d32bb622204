"""The segmenters: every variant at Cityscapes' half resolution, their size, and what `xformer models` reports."""

import pytest
import torch

from xformer import count_params, create_model
from xformer.cli import main
from xformer.models import list_models
from xformer.models.registry import CITYSCAPES_CLASSES
from xformer.models.segmentation import palette

SEGMENTERS = list_models(task="segment")


def test_every_size_and_attention_is_registered():
    assert SEGMENTERS == ["mobilevit_s_seg", "xformer_s_seg", "xformer_xs_seg", "xformer_xxs_seg"]


@pytest.mark.parametrize("name", SEGMENTERS)
def test_forward_at_512x1024_gives_stride_4_logits(name):
    model = create_model(name)
    assert model.model_config.task == "segment" and model.model_config.labels == list(CITYSCAPES_CLASSES)
    with torch.no_grad():
        y = model(torch.rand(1, 3, 512, 1024))
    assert y.shape == (1, 19, 128, 256)
    assert torch.isfinite(y).all()


def test_segmenter_size_matches_design_notes():
    # Backbone without classifier + 256-wide MLP head: the notes give 5.2-5.3 M for the S model.
    xfa, mhsa = (count_params(create_model(n)) for n in ("xformer_s_seg", "mobilevit_s_seg"))
    assert 5.15e6 <= xfa <= 5.35e6
    assert abs(xfa - mhsa) < 100  # XFA differs from MHSA only by its per-head temperatures


def test_size_the_model_cannot_take_is_one_clear_error():
    model = create_model("xformer_xxs_seg")
    with pytest.raises(ValueError, match="not a multiple of 32.*resize to e.g. 96x128"):
        model(torch.rand(1, 3, 100, 130))


def test_palette_is_cityscapes_for_cityscapes_and_distinct_otherwise():
    assert palette(list(CITYSCAPES_CLASSES))[0] == (128, 64, 128)
    colours = palette([f"c{i}" for i in range(8)])
    assert len(set(colours)) == 8


def test_models_lists_segmenters_with_params(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in SEGMENTERS:
        assert name in out
    assert "segment" in out and "512x1024" in out and "5.22" in out  # xformer_s_seg params (M)
