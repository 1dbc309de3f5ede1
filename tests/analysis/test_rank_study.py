"""The rank analyses: numerical rank, the random-layer study (paper §3) and feature ranks (§6)."""
import pytest
import torch

from rexnet_mmdet.analysis.rank import (BackboneSpec, build_backbone, feature_rank, numerical_rank,
                                        parse_backbone_spec, parse_config_spec, pooled_features,
                                        random_images, random_layer_features, rank_study,
                                        recalibrate_batchnorm, singular_value_cdf)


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


def test_feature_rank_of_rank_one_and_random_features():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(64, 1, generator=g), torch.randn(1, 32, generator=g)
    one = feature_rank(u @ v)
    assert one.rank == 1
    assert one.normalized_nuclear_norm == pytest.approx(1.0)
    noise = torch.randn(64, 32, generator=g)
    rnd = feature_rank(noise, center=False)
    assert rnd.rank == 32
    assert rnd.nuclear_norm == pytest.approx(float(torch.linalg.matrix_norm(noise.double(), 'nuc')))
    assert rnd.normalized_nuclear_norm > 10 * one.normalized_nuclear_norm
    # A constant offset is one direction more without centring, none with it.
    assert feature_rank(u @ v + 3.0, center=False).rank == 2
    assert feature_rank(u @ v + 3.0).rank == 1
    with pytest.raises(ValueError, match='num_images, channels'):
        feature_rank(torch.zeros(3))


def test_singular_value_cdf():
    grid, cdf = singular_value_cdf(torch.tensor([4.0, 2.0, 1.0, 1.0]))
    assert float(cdf[0]) == 0 and float(cdf[-1]) == 1
    assert torch.all(cdf[1:] >= cdf[:-1])
    assert float(cdf[(grid - 0.25).abs().argmin()]) == pytest.approx(0.5)  # 1/4 and 1/4 of 4


def test_backbone_specs():
    spec = parse_backbone_spec('rexnet:0.9')
    assert (spec.kind, spec.widen_factor, spec.checkpoint) == ('rexnet', 0.9, None)
    assert spec.label == 'rexnet x0.9 (random init)'
    spec = parse_backbone_spec('mine=rexnet-stagewise:1.0:work_dirs/a:b.pth')
    assert (spec.label, spec.kind, spec.checkpoint) == ('mine', 'rexnet-stagewise', 'work_dirs/a:b.pth')
    for bad in ('resnet:1.0', 'rexnet', 'rexnet:wide'):
        with pytest.raises(ValueError, match='KIND:WIDTH'):
            parse_backbone_spec(bad)
    spec = parse_config_spec('configs/x.py:ckpt/epoch_1.pth')
    assert (spec.config, spec.checkpoint, spec.label) == ('configs/x.py', 'ckpt/epoch_1.pth', 'x (epoch_1.pth)')


def test_checkpoint_is_loaded_and_bn_is_recalibrated(tmp_path):
    torch.manual_seed(0)
    source = build_backbone(parse_backbone_spec('rexnet:0.9'))
    # A detector checkpoint: the backbone's weights under ``backbone.`` in ``state_dict``.
    ckpt = tmp_path / 'detector.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()},
                'meta': {'epoch': 1}}, ckpt)
    torch.manual_seed(1)
    loaded = build_backbone(parse_backbone_spec(f'rexnet:0.9:{ckpt}'))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build_backbone(BackboneSpec('x', 'rexnet', 0.9, str(tmp_path / 'missing.pth')))

    images = random_images(8, 64)
    before = pooled_features(source, images, batch_size=4)
    recalibrate_batchnorm(source, images, batch_size=4)
    after = pooled_features(source, images, batch_size=4)
    assert before.shape == after.shape == (8, 1152)
    assert not source.training
    # With the data's statistics the random network's features no longer vanish.
    assert float(after.std()) > 100 * float(before.std())
