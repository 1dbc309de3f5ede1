"""The random-layer rank study (paper §3): numerical rank, layer features, the study's findings."""
import pytest
import torch

from rexnet_mmdet.analysis.rank_study import numerical_rank, random_layer_features, rank_study


def _low_rank(rows, cols, rank, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, rank, generator=g) @ torch.randn(rank, cols, generator=g)


def test_numerical_rank_of_known_matrices():
    batch = torch.stack([_low_rank(20, 50, r, seed=r) for r in (1, 3, 20)])
    assert numerical_rank(batch).tolist() == [1, 3, 20]
    # Centring removes one direction from a matrix whose rows are offset by a constant.
    offset = _low_rank(20, 50, 2) + 5.0
    assert int(numerical_rank(offset)) == 3
    assert int(numerical_rank(offset, center=True)) == 2
    with pytest.raises(ValueError, match='rtol'):
        numerical_rank(batch, rtol=-1)


def test_linear_1x1_layer_keeps_the_input_rank():
    g = torch.Generator().manual_seed(0)
    feats = random_layer_features('conv1x1', 7, 40, ['linear', 'ReLU'], num_samples=200, generator=g)
    assert feats.shape == (2, 40, 200)
    assert int(numerical_rank(feats[0])) == 7  # rank(WX) <= d_in
    assert int(numerical_rank(feats[1])) > 7  # the nonlinearity lifts it


def test_inverted_bottleneck_output_shape_and_rank_bound():
    g = torch.Generator().manual_seed(0)
    feats = random_layer_features('ib_dwconv3x3', 4, 64, ['linear', 'SiLU'], num_samples=256,
                                  generator=g)
    assert feats.shape == (2, 64, 256)
    # Linear projection of 6 * d_in hidden channels plus the d_in shortcut: rank <= 7 * d_in.
    assert int(numerical_rank(feats[1])) <= 7 * 4


def test_rank_study_reproduces_the_papers_findings():
    kwargs = dict(ratios=(0.1, 0.5, 1.0), trials=2, d_out_range=(32, 48), num_samples=192, seed=1)
    result = rank_study(**kwargs)
    again = rank_study(**kwargs)
    assert torch.equal(result.mean, again.mean)  # seeded: deterministic
    nonlinear = [n for n in result.nonlinearities if n != 'linear']
    for layer in result.layer_types:
        # (ii) every nonlinearity lifts the rank well above the input dimension (ratio 0.1).
        for name in nonlinear:
            assert result.value(layer, name, 0.1) > 0.2, (layer, name)
            assert result.value(layer, name, 0.1) > result.value(layer, 'linear', 0.1), (layer, name)
        # (i) drastic expansion (small d_in/d_out) lowers the rank ratio.
        low = sum(result.value(layer, n, 0.1) for n in nonlinear) / len(nonlinear)
        high = sum(result.value(layer, n, 1.0) for n in nonlinear) / len(nonlinear)
        assert high - low > 0.1, (layer, low, high)
    # Without nonlinearity a 1x1 conv's rank ratio is the dimension ratio.
    assert result.value('conv1x1', 'linear', 0.1) == pytest.approx(0.1, abs=0.02)
    assert result.value('conv1x1', 'linear', 0.5) == pytest.approx(0.5, abs=0.02)
    other = rank_study(**dict(kwargs, seed=2))
    assert not torch.equal(result.mean, other.mean)


def test_rank_study_rejects_bad_settings():
    with pytest.raises(ValueError, match='exceed the largest d_out'):
        rank_study(d_out_range=(32, 96), num_samples=64, trials=1)
    with pytest.raises(ValueError, match='unknown layer type'):
        rank_study(layer_types=['conv5x5'], trials=1)
    with pytest.raises(ValueError, match='unknown nonlinearities'):
        rank_study(nonlinearities=['Swish2'], trials=1)
