"""The ReXNet backbone: exact match with the official model, shapes, contract, freezing, checkpointing."""
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.models.weights.formats import from_own_format, to_own_format
from rexnet_mmdet.models.weights.weight_files import save_own_format
from rexnet_mmdet.models import ReXNet
from rexnet_mmdet.models.channels import PUBLISHED_WIDTHS, tap_specs

GOLDEN_TAPS = {1: 'block2', 2: 'block4', 3: 'block10', 4: 'block11_expansion', 5: 'block15', 6: 'pen'}
# Classifier parameters of the official model: Conv2d(pen, 1000) with bias.
OFFICIAL_PARAMS = {0.9: 4_091_257, 1.0: 4_796_873, 1.3: 7_557_091, 1.5: 9_728_593, 2.0: 16_366_620,
                   2.2: 19_485_308, 3.0: 34_708_792}


def build(**kwargs) -> ReXNet:
    return MODELS.build(dict(type='ReXNet', **kwargs))


def _golden_model(official: dict, width: str, tmp_path, fmt: str) -> ReXNet:
    path = tmp_path / f'weights_{fmt}.pth'
    if fmt == 'official':
        torch.save(official, path)
    else:
        torch.save(from_own_format(to_own_format(official), fmt), path)
    model = build(widen_factor=float(width), out_indices=tuple(range(7)),
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('fmt', ['official', 'timm'])
@pytest.mark.parametrize('width', ['1.0', '0.9'])
def test_matches_official_model(width, fmt, tmp_path, reference_weights):
    golden = reference_weights.load_golden(width)
    assert golden['width_mult'] == float(width)
    official = reference_weights.rebuild_official_weights(width)
    assert reference_weights.checksum(official) == pytest.approx(golden['state_dict_checksum'], rel=1e-9)
    model = _golden_model(official, width, tmp_path, fmt)
    with torch.no_grad():
        outs = model(golden['input'])
    for tap, name in GOLDEN_TAPS.items():
        diff = (outs[tap] - golden['outputs'][name]).abs().max().item()
        assert diff <= 1e-4, f'tap {tap} ({name}) differs by {diff}'
    # The classifier the backbone leaves out, applied to its final features, gives the official logits.
    logits = nn.functional.conv2d(outs[6].mean((2, 3), keepdim=True), official['output.1.weight'],
                                  official['output.1.bias']).flatten(1)
    assert (logits - golden['outputs']['logits']).abs().max().item() <= 1e-4


def test_train_mode_forward_matches_eval_forward_shape_and_autograd():
    model = build(out_indices=(1, 2, 3, 4, 5, 6)).train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters())


# The widest networks take seconds to build: they run in the full suite only.
@pytest.mark.parametrize('w', [pytest.param(w, marks=pytest.mark.slow) if w >= 2.0 else w for w in PUBLISHED_WIDTHS])
def test_channels_strides_and_params(w):
    model = build(widen_factor=w, out_indices=tuple(range(7))).eval()
    specs = model.output_shape()
    assert [s.channels for s in specs] == [t.channels for t in tap_specs(w)]
    assert model.out_channels == tuple(s.channels for s in specs)
    h, wd = 223, 257
    with torch.no_grad():
        outs = model(torch.randn(1, 3, h, wd))
    for spec, out in zip(specs, outs):
        assert out.shape == (1, spec.channels, -(-h // spec.stride), -(-wd // spec.stride))
    pen = specs[-1].channels
    classifier = pen * 1000 + 1000
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[w] - classifier


@pytest.mark.slow
def test_builds_nothing_past_last_tap():
    full = build(out_indices=tuple(range(7)))
    assert len(full.blocks) == 16 and full.final_conv is not None
    fpn = build(out_indices=(1, 2, 3, 5))
    assert len(fpn.blocks) == 16 and fpn.final_conv is None
    upto_c4 = build(out_indices=(1, 2, 3))
    assert len(upto_c4.blocks) == 11
    exp_only = build(out_indices=(4,))
    assert len(exp_only.blocks) == 12 and exp_only.blocks[11].expansion_only
    assert not hasattr(exp_only.blocks[11], 'conv_dw')
    out, = exp_only.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 768, 4, 4)
    # Every parameter takes part in the forward pass (no dead layers for DDP to trip on).
    for model in (fpn, exp_only, build(out_indices=(4, 6))):
        model.train()
        sum(o.sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
        assert all(p.grad is not None for p in model.parameters())


def test_fpn_taps_match_full_model():
    full = build(out_indices=tuple(range(7))).eval()
    part = build(out_indices=(1, 2, 3, 5)).eval()
    part.load_state_dict({k: v for k, v in full.state_dict().items() if k in part.state_dict()})
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        a, b = full(x), part(x)
    for i, tap in enumerate((1, 2, 3, 5)):
        torch.testing.assert_close(a[tap], b[i])


def _frozen(module):
    return all(not p.requires_grad for p in module.parameters())


@pytest.mark.parametrize('frozen_stages', [0, 1, 3, 6, 7])
def test_frozen_stages(frozen_stages):
    model = build(frozen_stages=frozen_stages, out_indices=(1, 2, 3, 5, 6)).train()
    assert _frozen(model.stem) and not model.stem.bn.training
    for block in model.blocks:
        frozen = block.setting.stage <= frozen_stages
        assert _frozen(block) == frozen
        assert all((not m.training) == frozen for m in block.modules() if isinstance(m, _BatchNorm))
    assert _frozen(model.final_conv) == (frozen_stages == 7)
    # Frozen layers get no gradient, the others do.
    loss = sum(o.sum() for o in model(torch.randn(2, 3, 64, 64)))
    if frozen_stages == 7:
        assert not loss.requires_grad  # nothing left to train
    else:
        loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == (not p.requires_grad), name
    # Frozen norm statistics do not move in training.
    before = model.stem.bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(model.stem.bn.running_mean, before)


def test_norm_eval_covers_every_batchnorm():
    model = build(norm_eval=True, norm_cfg=dict(type='SyncBN'), out_indices=(1, 2, 3, 5, 6))
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and all(type(m).__name__ == 'SyncBatchNorm' for m in norms)
    assert all(not m.training for m in norms)
    assert model.training


def test_group_norm():
    model = build(norm_cfg=dict(type='GN', num_groups=1, requires_grad=True)).train()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == list(model.out_channels)
    with pytest.raises(ValueError, match='num_groups=32'):
        build(norm_cfg=dict(type='GN', num_groups=32))


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    ref = build(out_indices=(1, 2, 3, 4, 5, 6), drop_path_rate=0.0)
    cp_model = build(out_indices=(1, 2, 3, 4, 5, 6), with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (ref, cp_model):
        model.train()
        outs = model(x)
        sum((o * o).mean() for o in outs).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        if model is ref:
            ref_outs = [o.detach() for o in outs]
    for a, b in zip(ref_outs, outs):
        torch.testing.assert_close(a, b.detach())
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def test_with_cp_really_checkpoints(monkeypatch):
    calls = []
    import torch.utils.checkpoint as cp
    original = cp.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(fn)
        return original(fn, *args, **kwargs)

    monkeypatch.setattr(cp, 'checkpoint', counting)
    model = build(with_cp=True, out_indices=(1, 2, 3, 5)).train()
    model(torch.randn(2, 3, 32, 32))
    assert len(calls) == 1 + 16  # the stem and every block
    calls.clear()
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert not calls


@pytest.mark.slow
def test_drop_path():
    model = build(drop_path_rate=0.2, out_indices=(5,))
    rates = [b.drop_path.drop_prob for b in model.blocks if not isinstance(b.drop_path, nn.Identity)]
    assert len(rates) == 11 and rates == sorted(rates) and max(rates) == pytest.approx(0.2)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], model(x)[0])  # deterministic in eval
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x)[0], model(x)[0])  # stochastic in training


@pytest.mark.parametrize('kwargs, match', [
    (dict(widen_factor=0), 'widen_factor must be a positive'),
    (dict(widen_factor='1.0'), 'widen_factor must be a positive'),
    (dict(out_indices=()), 'out_indices is empty'),
    (dict(out_indices=(1, 7)), 'out of range'),
    (dict(out_indices=(-1,)), 'out of range'),
    (dict(out_indices=(1, 1)), 'repeats'),
    (dict(out_indices=(3, 1)), 'increasing order'),
    (dict(out_indices=3), 'must be a sequence'),
    (dict(frozen_stages=8), r'frozen_stages must be an int in \[-1, 7\]'),
    (dict(frozen_stages=-2), 'frozen_stages'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(init_cfg=dict(type='Pretrained')), 'needs checkpoint'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


@pytest.mark.parametrize('shape', [(1, 1, 64, 64), (1, 4, 64, 64), (3, 64, 64)])
def test_bad_input(shape):
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        build()(torch.randn(*shape))


def test_random_init_warns_loudly(monkeypatch):
    import rexnet_mmdet.models.rexnet as rexnet_module
    messages = []
    monkeypatch.setattr(rexnet_module, 'print_log', lambda msg, **kw: messages.append((msg, kw.get('level'))))
    model = build()
    model.init_weights()
    assert any('RANDOM weights' in m and level == 30 for m, level in messages)
    assert model.blocks[5].conv_pwl.conv.weight.std() > 0
    assert all(bool((m.weight == 1).all()) for m in model.modules() if isinstance(m, _BatchNorm))


def test_own_format_round_trip(tmp_path):
    model = build(out_indices=tuple(range(7)))
    path = tmp_path / 'own.pth'
    save_own_format(model.state_dict(), str(path), 1.0)
    other = build(out_indices=(1, 2, 3, 5), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    other.init_weights()
    for k, v in other.state_dict().items():
        torch.testing.assert_close(v, model.state_dict()[k])
