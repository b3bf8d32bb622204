"""The deploy form is numerically the training form, for every variant and both layouts."""

import pytest
import torch

from xformer import create_model
from xformer.export.deploy import TARGETS, deploy_model, fold_groups, has_deploy_form, unfold_groups

from .conftest import CLASSIFIERS

DEPLOYABLE = [name for name in CLASSIFIERS if has_deploy_form(create_model(name))]


def _perturbed(name: str, **options):
    """A model whose BatchNorm statistics, LayerNorm affines and temperatures are not at their init values,
    so folding them is actually exercised."""
    model = create_model(name, **options)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
            if hasattr(m, "temperature"):
                m.temperature.uniform_(0.3, 3.0, generator=g)
    return model


@pytest.mark.parametrize("name", DEPLOYABLE)
@pytest.mark.parametrize("target", TARGETS)
def test_deploy_form_matches_training_form(name, target):
    model = _perturbed(name)
    deployed = deploy_model(model, target=target)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # 224: odd 7x7 stride-32 map
    with torch.no_grad():
        assert (deployed(x) - model(x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("attention", ["xfa_linear", "mhsa"])
def test_deploy_form_of_other_attentions(attention):
    model = _perturbed("xformer_xxs", attention=attention)
    x = torch.rand(1, 3, 256, 256)
    for target in TARGETS:
        with torch.no_grad():
            assert (deploy_model(model, target=target)(x) - model(x)).abs().max().item() <= 1e-5


def test_channels_last_input():
    model = _perturbed("xformer_xxs")
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        y = deploy_model(model, channels_last_io=True)(x.permute(0, 2, 3, 1).contiguous())
        assert (y - model(x)).abs().max().item() <= 1e-5


def test_deploy_folds_batchnorm_and_leaves_the_original_alone():
    model = create_model("xformer_xxs")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deployed = deploy_model(model)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) for m in deployed.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("target", ["generic", "tflite"])
def test_unfold_fold_round_trip(target):
    x = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).reshape(2, 3, 8, 6)
    groups = unfold_groups(x)
    assert groups.shape == (8, 3, 4, 3)
    assert torch.equal(groups[0], x[:, :, 0::2, 0::2][0]) and torch.equal(groups[3 * 2 + 1], x[1, :, 1::2, 1::2])
    assert torch.equal(fold_groups(groups, target), x)


def test_coreml_form_stays_finite_in_fp16_on_a_black_frame():
    """fp16 flushes the training form's 1e-24 floor to zero: an all-zero channel would give 0 / 0."""
    deployed = deploy_model(create_model("xformer_xxs"), target="coreml")
    with torch.no_grad():
        model = deployed.half()
        assert torch.isfinite(model(torch.zeros(1, 3, 256, 256, dtype=torch.float16))).all()


def test_pte_unfold_equals_the_strided_slices():
    """The "pte" target unfolds with reshapes and permutes (XNNPACK slices with stride 1 only): same groups."""
    x = torch.randn(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(unfold_groups(x, "pte"), unfold_groups(x))
    assert torch.equal(fold_groups(unfold_groups(x, "pte"), "pte"), x)
