"""The rank of a backbone's features (paper §6): feature rank, singular-value CDF, backbone specs."""
import pytest
import torch

from rexnet_mmdet.analysis.feature_rank import (BackboneSpec, backbone_from_spec, feature_rank, parse_backbone_spec,
                                                parse_config_spec, pooled_features, random_images,
                                                singular_value_cdf)
from rexnet_mmdet.models.norms import calibrate_batchnorm


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


@pytest.mark.slow
def test_checkpoint_is_loaded_and_bn_is_recalibrated(tmp_path):
    torch.manual_seed(0)
    source = backbone_from_spec(parse_backbone_spec('rexnet:0.9'))
    # A detector checkpoint: the backbone's weights under ``backbone.`` in ``state_dict``.
    ckpt = tmp_path / 'detector.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()},
                'meta': {'epoch': 1}}, ckpt)
    torch.manual_seed(1)
    loaded = backbone_from_spec(parse_backbone_spec(f'rexnet:0.9:{ckpt}'))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError, match='does not exist'):
        backbone_from_spec(BackboneSpec('x', 'rexnet', 0.9, str(tmp_path / 'missing.pth')))

    images = random_images(8, 64)
    before = pooled_features(source, images, batch_size=4)
    calibrate_batchnorm(source, images, batch_size=4)
    after = pooled_features(source, images, batch_size=4)
    assert before.shape == after.shape == (8, 1152)
    assert not source.training
    # With the data's statistics the random network's features no longer vanish.
    assert float(after.std()) > 100 * float(before.std())
