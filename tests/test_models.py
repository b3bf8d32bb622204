"""The reference models: shapes, size, cost and the properties XFA is defined by."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from xformer import count_macs, count_params, create_model
from xformer.models import CrossFeatureAttention, LinearCrossFeatureAttention, MultiHeadSelfAttention
from xformer.models.attention import create_attention

from .conftest import CLASSIFIERS, XFORMER_VARIANTS


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("size", [224, 256, 320])
def test_forward_shape_every_size(name, size):
    model = create_model(name)
    with torch.no_grad():
        y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 1000)
    assert torch.isfinite(y).all()


def test_xformer_s_runs_at_cityscapes_like_aspect(xformer_s):
    with torch.no_grad():
        y = xformer_s(torch.randn(1, 3, 512, 1024))
        features = xformer_s.forward_features(torch.randn(1, 3, 512, 1024))
    assert y.shape == (1, 1000)
    assert [f.shape[-2:] for f in features] == [(128, 256), (64, 128), (32, 64), (16, 32)]


@pytest.mark.parametrize("name", XFORMER_VARIANTS + ["mobilenetv2_100"])
def test_forward_features_strides(name):
    model = create_model(name)
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 256, 256))
    assert [256 // f.shape[-1] for f in features] == [4, 8, 16, 32]


def test_xformer_s_matches_paper_size(xformer_s):
    assert 5.45e6 <= count_params(xformer_s) <= 5.65e6


def test_xformer_s_gmacs_match_design_notes(xformer_s):
    gmacs = count_macs(xformer_s, 256) / 1e9
    assert abs(gmacs - 1.87) / 1.87 < 0.05, gmacs


def test_published_mobilevit_and_mobilenet_sizes():
    assert abs(count_params(create_model("mobilevit_s")) / 1e6 - 5.58) < 0.02
    assert abs(count_params(create_model("xformer_xxs")) / 1e6 - 1.27) < 0.02
    assert abs(count_params(create_model("xformer_xs")) / 1e6 - 2.32) < 0.02
    assert abs(count_params(create_model("mobilenetv2_100")) / 1e6 - 3.50) < 0.02


def test_attention_option_selects_the_mixer():
    kinds = {"xfa": CrossFeatureAttention, "xfa_linear": LinearCrossFeatureAttention, "mhsa": MultiHeadSelfAttention}
    for kind, cls in kinds.items():
        model = create_model("xformer_xxs", attention=kind)
        mixers = {type(m) for m in model.modules() if isinstance(m, tuple(kinds.values()))}
        assert mixers == {cls}
        assert model.model_config.options == {"attention": kind}
    with pytest.raises(ValueError, match="unknown attention 'bogus'"):
        create_model("xformer_xxs", attention="bogus")


def test_seeded_weights_are_deterministic():
    a, b = create_model("xformer_xxs"), create_model("xformer_xxs")
    c = create_model("xformer_xxs", seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'xformer_xl'.*xformer_s"):
        create_model("xformer_xl")


@pytest.mark.parametrize("kind", ["xfa", "xfa_linear", "mhsa"])
def test_attention_is_permutation_equivariant_over_tokens(kind):
    torch.manual_seed(0)
    attn = create_attention(kind, 64, 4).eval()
    with torch.no_grad():
        x = torch.randn(3, 50, 64)
        perm = torch.randperm(50)
        torch.testing.assert_close(attn(x[:, perm]), attn(x)[:, perm], atol=1e-5, rtol=1e-5)


def _attention_flops(kind: str, tokens: int, dim: int = 96) -> int:
    attn = create_attention(kind, dim, 4).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        attn(torch.randn(1, tokens, dim))
    return counter.get_total_flops()


@pytest.mark.parametrize("kind", ["xfa", "xfa_linear"])
def test_xfa_cost_is_linear_and_mhsa_quadratic_in_tokens(kind):
    n, dim = 256, 96
    xfa = [_attention_flops(kind, t, dim) for t in (n, 2 * n, 3 * n)]
    mhsa = [_attention_flops("mhsa", t, dim) for t in (n, 2 * n, 3 * n)]
    # Equally spaced token counts: a linear cost has a zero second difference, a quadratic one a positive one.
    assert xfa[2] - 2 * xfa[1] + xfa[0] == 0
    assert xfa[1] == 2 * xfa[0]
    assert mhsa[2] - 2 * mhsa[1] + mhsa[0] > 0
    # MHSA's quadratic term is its two (N x N) matmuls, 2 * N^2 * dim MACs = 4 * N^2 * dim FLOPs.
    assert mhsa[1] - 2 * mhsa[0] == 2 * (4 * dim) * n**2


def test_xfa_beats_mhsa_on_attention_maps_at_high_resolution():
    xfa, mhsa = create_model("xformer_s"), create_model("mobilevit_s")
    assert count_macs(xfa, (512, 1024)) < count_macs(mhsa, (512, 1024))
