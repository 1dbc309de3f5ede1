"""ReXNet-lite and ReXNet-R: exact against the official lite model, channels and parameter counts of
timm's rexnetr_*, and every backbone argument working for every family."""
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.models.channels import PUBLISHED_R_MODELS, tap_specs
from rexnet_mmdet.models.weights.formats import from_own_format

LITE_GOLDEN_TAPS = {0: 'block0', 1: 'block2', 2: 'block4', 3: 'block10', 4: 'block11_expansion', 5: 'block15',
                    6: 'pen'}
#: Official ReXNet-lite parameter counts, classifier head included (reference README).
LITE_PARAMS = {1.0: 4_740_056, 1.3: 6_747_960, 1.5: 8_332_296, 2.0: 12_966_200}
#: timm rexnetr_* channels at C2-C5 (reference README).
R_CHANNELS = {(1.0, 8): (40, 64, 128, 184), (2.0, 8): (80, 120, 256, 368), (3.0, 16): (112, 176, 384, 560)}
#: Published parameter counts of timm's rexnetr_200 / rexnetr_300 (1000-class head), in millions.
R_PARAMS_M = {(2.0, 8): 16.5, (3.0, 16): 34.8}
ALL_TAPS = tuple(range(7))


def build(**kwargs):
    return MODELS.build(dict(type='ReXNet', **kwargs))


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lite_head_params(pen: int, classes: int = 1000) -> int:
    # 1x1 conv to 1024 with bias, BN (weight, bias), 1x1 conv to the classes with bias.
    return pen * 1024 + 1024 + 2 * 1024 + 1024 * classes + classes


# ----------------------------------------------------------------- ReXNet-lite
@pytest.mark.parametrize('width', ['1.0', '2.0'])
def test_lite_matches_official_model(width, tmp_path, reference_weights):
    golden = reference_weights.load_golden(width, 'rexnet_lite')
    assert golden['multiplier'] == float(width)
    official = reference_weights.rebuild_official_weights(width, 'rexnet_lite')
    assert reference_weights.checksum(official) == pytest.approx(golden['state_dict_checksum'], rel=1e-9)
    path = tmp_path / f'rexnet_lite_{width}.pth'
    torch.save(official, path)
    model = build(arch='lite', widen_factor=float(width), out_indices=ALL_TAPS,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    with torch.no_grad():
        outs = model.eval()(golden['input'])
    for tap, name in LITE_GOLDEN_TAPS.items():
        diff = (outs[tap] - golden['outputs'][name]).abs().max().item()
        assert diff <= 1e-4, f'tap {tap} ({name}) differs by {diff}'
    # The official head the backbone leaves out (pool, 1x1 conv + BN + ReLU6, 1x1 conv) gives its logits.
    x = outs[6].mean((2, 3), keepdim=True)
    x = nn.functional.conv2d(x, official['output.0.weight'], official['output.0.bias'])
    x = nn.functional.batch_norm(x, official['output.1.running_mean'], official['output.1.running_var'],
                                 official['output.1.weight'], official['output.1.bias'], eps=1e-5)
    logits = nn.functional.conv2d(x.clamp(0, 6), official['output.4.weight'], official['output.4.bias']).flatten(1)
    assert (logits - golden['outputs']['logits']).abs().max().item() <= 1e-4


@pytest.mark.parametrize('width', ['1.0', '2.0'])
def test_lite_keys_are_the_official_list(width, reference_weights):
    """Every official lite key (head aside) is written by this project's conversion, shapes included."""
    model = build(arch='lite', widen_factor=float(width), out_indices=ALL_TAPS)
    official = from_own_format(model.state_dict(), 'official')
    expected = {k: s for k, s in reference_weights.read_key_list(
        osp.join(reference_weights.DATA, f'official_keys_rexnet_lite_{width}.txt')) if not k.startswith('output.')}
    assert {k: tuple(v.shape) for k, v in official.items()} == expected


@pytest.mark.parametrize('width', sorted(LITE_PARAMS))
def test_lite_parameter_counts(width):
    model = build(arch='lite', widen_factor=width, out_indices=ALL_TAPS)
    pen = model.out_channels[-1]
    assert num_params(model) + lite_head_params(pen) == LITE_PARAMS[width]


def test_lite_small_widths_follow_the_rule():
    # Below 1 the stem stays 32, block 0 stays 16 and the final conv 1280; the rest scales and rounds to 8.
    specs = tap_specs(0.75, arch='lite')
    assert [s.channels for s in specs] == [16, 32, 48, 96, 576, 136, 1280]
    assert all(c % 8 == 0 for s in build(arch='lite', widen_factor=0.6, out_indices=ALL_TAPS).settings
               for c in (s.in_channels, s.out_channels, s.hidden_channels))


def test_lite_has_no_se_and_relu6_only():
    model = build(arch='lite', out_indices=ALL_TAPS)
    assert not any('se' in name.split('.') for name, _ in model.named_modules())
    acts = {type(m) for m in model.modules() if isinstance(m, (nn.SiLU, nn.ReLU, nn.ReLU6, nn.Sigmoid))}
    assert acts == {nn.ReLU6}


# ----------------------------------------------------------------- ReXNet-R
@pytest.mark.parametrize('width, divisor', sorted(R_CHANNELS))
def test_r_channels_match_timm(width, divisor):
    model = build(widen_factor=width, channel_divisor=divisor, out_indices=(1, 2, 3, 5))
    assert model.out_channels == R_CHANNELS[width, divisor]
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert tuple(o.shape[1] for o in outs) == R_CHANNELS[width, divisor]


@pytest.mark.parametrize('width, divisor', PUBLISHED_R_MODELS)
def test_r_every_channel_is_divisible(width, divisor):
    model = build(widen_factor=width, channel_divisor=divisor, out_indices=ALL_TAPS)
    widths = {m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert all(c % divisor == 0 for c in widths), sorted(c for c in widths if c % divisor)


@pytest.mark.parametrize('width, divisor', sorted(R_PARAMS_M))
def test_r_timm_keys_and_parameter_counts(width, divisor, reference_weights):
    """The timm-format key list of rexnetr_*, built from the rule: the same names in the same order as
    timm's rexnet_100 (the architecture is v1's), and the published parameter count with a 1000-class head."""
    model = build(widen_factor=width, channel_divisor=divisor, out_indices=ALL_TAPS)
    pen = model.out_channels[-1]
    timm = from_own_format(model.state_dict(), 'timm')
    timm['head.fc.weight'] = torch.empty(1000, pen)
    timm['head.fc.bias'] = torch.empty(1000)
    names = [k for k, _ in reference_weights.read_key_list(osp.join(reference_weights.DATA, 'timm_keys_rexnet_100.txt'))]
    assert list(timm) == names
    # Parameters: every key but BatchNorm buffers (running mean/var, num_batches_tracked).
    count = sum(v.numel() for k, v in timm.items() if not k.endswith(('running_mean', 'running_var',
                                                                       'num_batches_tracked')))
    assert count == num_params(model) + pen * 1000 + 1000
    assert round(count / 1e6, 1) == R_PARAMS_M[width, divisor]


def test_r_se_and_expansion_widths_are_rounded():
    s = build(widen_factor=2.0, channel_divisor=8, out_indices=ALL_TAPS).settings
    assert s[3].hidden_channels == 80 * 6 and s[3].se_channels == 40  # make_divisible(int(480 / 12), 8)
    s = build(widen_factor=3.0, channel_divisor=16, out_indices=ALL_TAPS).settings
    assert all(b.se_channels % 16 == 0 and b.hidden_channels % 16 == 0 for b in s if b.use_se)


# ----------------------------------------------------------------- every argument, every family
FAMILIES = [dict(arch='lite'), dict(channel_divisor=8)]


@pytest.mark.parametrize('family', FAMILIES, ids=['lite', 'R8'])
def test_arguments_work_for_every_family(family):
    model = build(**family, frozen_stages=2, norm_eval=True, with_cp=True, drop_path_rate=0.1,
                  out_indices=(4, 6)).train()
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [s.channels for s in model.output_shape()]
    sum(o.mean() for o in outs).backward()
    assert [s.stride for s in model.output_shape()] == [16, 32]
    assert list(model.out_channels) == rexnet_mmdet.out_channels(1.0, (4, 6), **family)
    gn = build(**family, norm_cfg=dict(type='GN', num_groups=8), out_indices=(5,))
    assert gn(torch.randn(1, 3, 32, 32))[0].shape[1] == gn.out_channels[0]


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='lite', block_channels=[16] * 16), 'block_channels does not apply to ReXNet-lite'),
    (dict(channel_divisor=8, block_channels=[16] * 16), r'block_channels does not apply to ReXNet-R'),
    (dict(arch='lite', channel_divisor=16), 'does not apply to ReXNet-lite'),
    (dict(arch='v2'), "arch must be one of 'v1', 'lite'"),
    (dict(channel_divisor=0), 'channel_divisor must be a positive int'),
    (dict(channel_divisor=8.0), 'channel_divisor must be a positive int'),
    (dict(arch='lite', init_cfg=dict(type='Pretrained', checkpoint='x.pth', width_transfer=True)),
     'width_transfer does not apply to ReXNet-lite'),
    (dict(channel_divisor=16, init_cfg=dict(type='Pretrained', checkpoint='x.pth', width_transfer=True)),
     r'width_transfer does not apply to ReXNet-R \(channel_divisor=16\)'),
])
def test_what_does_not_apply_is_refused_naming_the_family(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_default_is_v1_unchanged():
    model = build()
    assert (model.arch, model.channel_divisor, model.family) == ('v1', 1, 'ReXNet-v1')
    assert build(channel_divisor=1).out_channels == model.out_channels == (38, 61, 128, 185)
    assert math.isclose(model.widen_factor, 1.0)
