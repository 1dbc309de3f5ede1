"""ReXNet-v1 and ReXNet-R against timm itself, where timm is installed (it needs torchvision): timm's model
with seeded weights, saved as a timm checkpoint, loaded into ``ReXNet`` through the project's loader, must
compute the same features at all seven feature points. Skipped where timm cannot be imported."""
import pytest
import torch

from rexnet_mmdet.models import ReXNet
from rexnet_mmdet.models.weights import load_backbone_weights
from randomised import randomise_norms  # tests/helpers/, registered by conftest.py

timm = pytest.importorskip('timm', reason='timm is not installed (it needs torchvision)')

#: timm name -> (widen_factor, channel_divisor) of the same network here.
MODELS = {'rexnet_100': (1.0, 1), 'rexnet_130': (1.3, 1), 'rexnetr_100': (1.0, 8), 'rexnetr_130': (1.3, 8),
          'rexnetr_150': (1.5, 8), 'rexnetr_200': (2.0, 8), 'rexnetr_300': (3.0, 16)}


def _timm_taps(model, x):
    """timm's features at this project's seven feature points: blocks 0, 2, 4 and 10, block 11's expansion
    (after its activation), block 15 and the final 1x1 conv (after BatchNorm and SiLU)."""
    found = {}
    modules = {0: model.features[0], 1: model.features[2], 2: model.features[4], 3: model.features[10],
               4: model.features[11].conv_exp, 5: model.features[15], 6: model.features[16]}
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: found.__setitem__(k, out)) for k, m in modules.items()]
    try:
        model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return [found[k] for k in range(7)]


@pytest.mark.parametrize('name', MODELS)
def test_equals_timm_at_every_feature_point(name, tmp_path):
    width, divisor = MODELS[name]
    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False).eval()
    randomise_norms(reference)
    path = tmp_path / f'{name}.pth'
    torch.save(reference.state_dict(), path)
    model = ReXNet(widen_factor=width, channel_divisor=divisor, out_indices=tuple(range(7))).eval()
    load_backbone_weights(model, str(path))
    n_timm = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith('head'))
    assert sum(p.numel() for p in model.parameters()) == n_timm
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        expected, got = _timm_taps(reference, x), model(x)
    for k, (a, b) in enumerate(zip(expected, got)):
        assert a.shape == b.shape, f'feature point {k}: timm {tuple(a.shape)}, ReXNet {tuple(b.shape)}'
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), f'feature point {k}: max |diff| {(a - b).abs().max():.3g}'
