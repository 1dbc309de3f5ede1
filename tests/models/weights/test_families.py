"""Weights of ReXNet-lite and ReXNet-R: loaded through init_cfg and the converter, and a checkpoint of
another family refused with a line naming the family it was made for."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.models import ReXNet
from rexnet_mmdet import CheckpointError, CheckpointMismatchError
from rexnet_mmdet.models.weights import (CheckpointFamily, convert_checkpoint, from_own_format,
                                         infer_family, load_backbone_weights, read_state_dict, to_own_format)

ALL_TAPS = tuple(range(7))
IMAGENET_12K_CLASSES = 11821


@pytest.fixture
def run_tool(load_tool, capsys):
    """``run_tool(*argv)``: tools/model_converters/convert_weights.py in this process; exit code and output."""
    main = load_tool('model_converters/convert_weights.py').main

    def run(*argv):
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def randomised(model: ReXNet) -> ReXNet:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model


def timm_file(path, width, divisor, classes=1000):
    """A timm rexnetr_* style checkpoint (safetensors, as the hub has it) with a ``classes``-way head."""
    from safetensors.torch import save_file
    model = randomised(ReXNet(widen_factor=width, channel_divisor=divisor, out_indices=ALL_TAPS))
    state = from_own_format(model.state_dict(), 'timm')
    pen = model.out_channels[-1]
    state['head.fc.weight'] = torch.zeros(classes, pen)
    state['head.fc.bias'] = torch.zeros(classes)
    save_file(state, str(path))
    return model


@pytest.mark.slow  # an 11,821-class head: a 60 MB file
def test_timm_rexnetr_with_imagenet12k_head_loads_through_init_cfg(tmp_path):
    path = tmp_path / 'rexnetr_100.sw_in12k.safetensors'
    source = timm_file(path, 1.0, 8, classes=IMAGENET_12K_CLASSES)
    model = ReXNet(channel_divisor=8, out_indices=(1, 2, 3, 5), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[key], msg=key)
    assert infer_family(to_own_format(read_state_dict(str(path)))) == CheckpointFamily('v1', 1.0, 8)


def test_official_lite_checkpoint_loads_and_converts(tmp_path, reference_weights):
    official = reference_weights.rebuild_official_weights('1.0', 'rexnet_lite')
    src = tmp_path / 'rexnet_lite_1.0.pth'
    torch.save(official, src)
    assert convert_checkpoint(str(src), str(tmp_path / 'own.pth')) == ('official', CheckpointFamily('lite', 1.0, 8),
                                                                       False)
    model = ReXNet(arch='lite', out_indices=ALL_TAPS,
                   init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'own.pth')))
    model.init_weights()
    torch.testing.assert_close(model.stem.conv.weight, official['features.0.weight'])
    # Back to the official format: every key, the three-layer head included, as it was.
    convert_checkpoint(str(tmp_path / 'own.pth'), str(tmp_path / 'no_head.pth'), 'official')
    _, _, with_head = convert_checkpoint(str(src), str(tmp_path / 'back.pth'), 'official')
    back = torch.load(tmp_path / 'back.pth', weights_only=True)
    assert with_head and set(back) == set(official) and all(torch.equal(back[k], official[k]) for k in back)
    with pytest.raises(CheckpointError, match='ReXNet-lite weights, which timm has no model for'):
        convert_checkpoint(str(src), str(tmp_path / 'timm.pth'), 'timm')


def _save(model: ReXNet, path) -> str:
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.mark.parametrize('source, target, match', [
    (dict(arch='lite'), dict(), r'holds ReXNet-lite weights \(ReXNet-lite widen_factor=1.0\), not weights for this '
                                r"ReXNet-v1 backbone: build the backbone with arch='lite', widen_factor=1.0"),
    (dict(widen_factor=2.0, channel_divisor=8), dict(widen_factor=2.0),
     r'holds ReXNet-R \(channel_divisor=8\) weights .*widen_factor=2.0, channel_divisor=8'),
    (dict(), dict(arch='lite'), r'holds ReXNet-v1 weights .*not weights for this ReXNet-lite backbone'),
    (dict(widen_factor=3.0, channel_divisor=8), dict(widen_factor=3.0, channel_divisor=16),
     r'holds ReXNet-R \(channel_divisor=8\) weights .*not weights for this ReXNet-R \(channel_divisor=16\)'),
    (dict(widen_factor=3.0, channel_divisor=16), dict(widen_factor=3.0, channel_divisor=8),
     r'holds ReXNet-R \(channel_divisor=16\) weights'),
])
def test_checkpoint_of_another_family_is_refused(source, target, match, tmp_path):
    path = _save(ReXNet(out_indices=ALL_TAPS, **source), tmp_path / 'other.pth')
    model = ReXNet(out_indices=(1, 2, 3, 5), **target)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=match) as info:
        load_backbone_weights(model, path)
    assert '\n' not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded


def test_official_lite_file_given_to_v1_through_init_cfg(tmp_path, reference_weights):
    src = tmp_path / 'rexnet_lite_2.0.pth'
    torch.save(reference_weights.rebuild_official_weights('2.0', 'rexnet_lite'), src)
    model = ReXNet(widen_factor=2.0, init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    with pytest.raises(CheckpointError, match=r"\(official format\) holds ReXNet-lite weights .*arch='lite', "
                                              r'widen_factor=2.0'):
        model.init_weights()


def test_own_format_records_the_family(tmp_path):
    path = _save(ReXNet(widen_factor=2.0, channel_divisor=8, out_indices=ALL_TAPS), tmp_path / 'r.pth')
    convert_checkpoint(path, str(tmp_path / 'own.pth'))
    meta = torch.load(tmp_path / 'own.pth', weights_only=True)['meta']
    assert (meta['arch'], meta['widen_factor'], meta['channel_divisor']) == ('v1', 2.0, 8)


# ----------------------------------------------------------------- the converter tool
def test_converter_safetensors_output_is_safetensors(tmp_path, run_tool):
    from safetensors import safe_open
    src = _save(ReXNet(arch='lite', out_indices=ALL_TAPS), tmp_path / 'lite.pth')
    for fmt in ('rexnet_mmdet', 'official'):
        dst = tmp_path / f'{fmt}.safetensors'
        proc = run_tool(src, str(dst), '--format', fmt)
        assert proc.returncode == 0, proc.stderr
        with safe_open(str(dst), 'pt') as f:  # raises on anything but a safetensors file
            assert len(list(f.keys())) > 100
    model = ReXNet(arch='lite', out_indices=(4, 6),
                   init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'rexnet_mmdet.safetensors')))
    model.init_weights()


def test_converter_timm_output_is_strict_timm(tmp_path, run_tool, reference_weights):
    """From an official v1 file, --format timm writes timm's exact key list (classifier included) and shapes."""
    src = tmp_path / 'rexnetv1_1.0.pth'
    torch.save(reference_weights.rebuild_official_weights('1.0'), src)
    dst = tmp_path / 'rexnet_100.pth'
    proc = run_tool(str(src), str(dst), '--format', 'timm')
    assert proc.returncode == 0 and 'with the classifier' in proc.stdout, proc.stderr
    written = torch.load(dst, weights_only=True)
    expected = dict(reference_weights.read_key_list(osp.join(reference_weights.DATA, 'timm_keys_rexnet_100.txt')))
    assert {k: tuple(v.shape) for k, v in written.items()} == expected
    # Without a classifier in the source the tool says how timm loads the file.
    own = tmp_path / 'own.pth'
    run_tool(str(src), str(own))
    proc = run_tool(str(own), str(tmp_path / 'bare.pth'), '--format', 'timm')
    assert proc.returncode == 0 and 'num_classes=0) loads it strictly' in proc.stdout


def test_converter_refuses_exact_with_noise(tmp_path, run_tool):
    src = _save(ReXNet(out_indices=ALL_TAPS), tmp_path / 'v1.pth')
    proc = run_tool(src, str(tmp_path / 'out.pth'), '--widen-factor', '1.3',
                    '--exact', '--noise', '0.01')
    assert proc.returncode == 2 and '--exact and --noise exclude each other' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_width_transfer_refuses_other_families(tmp_path, run_tool):
    src = _save(ReXNet(arch='lite', out_indices=ALL_TAPS), tmp_path / 'lite.pth')
    proc = run_tool(src, str(tmp_path / 'out.pth'), '--widen-factor', '1.3')
    assert proc.returncode == 1 and 'holds ReXNet-lite weights' in proc.stderr
