"""Width transfer: exact widening, narrowing with BatchNorm re-estimation, the config route, every error."""
import math
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.config import Config

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.datasets.synthetic import ShapesSettings, draw_image
from rexnet_mmdet.models.channels import PUBLISHED_WIDTHS
from rexnet_mmdet import CheckpointError
from rexnet_mmdet.models.weights import (PRETRAINED_URLS, load_backbone_weights, save_own_format,
                                         to_own_format)
from rexnet_mmdet.models.weights.calibration import calibrate_batchnorm, calibrate_transfer, preprocess_image
from rexnet_mmdet.models.weights.classifiers import extract_classifier
from rexnet_mmdet.models.weights.transfer import transfer_checkpoint
from rexnet_mmdet.models.weights.width_apply import transfer_state_dict
from rexnet_mmdet.models.weights.width_plan import WidthTransferError, plan_transfer

TESTS = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ROOT = osp.dirname(TESTS)
ALL_TAPS = tuple(range(7))
#: float32 rounding (measured: below 1e-6 on features of magnitude up to 3.5).
ATOL = 1e-5


def _reference_weights():
    """tests/helpers/reference_weights.py (registered under its own name by tests/conftest.py)."""
    return sys.modules['reference_weights']


ref = _reference_weights()


def build(width: float, out_indices=ALL_TAPS, **kwargs):
    return MODELS.build(dict(type='ReXNet', widen_factor=width, out_indices=out_indices, init_cfg=None,
                             **kwargs)).eval()


def random_weights(width: float, seed: int = 0):
    """Weights of any width drawn with the golden files' recipe (own keys, plus a 1000-class classifier)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in build(width, (6,)).state_dict().items():
        u = torch.rand(value.shape, generator=g)
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(0)
        elif key.endswith('running_var'):
            state[key] = u + 0.5
        elif key.endswith('running_mean') or (value.dim() == 1 and not key.endswith('weight')):
            state[key] = (u - 0.5) * 0.2
        elif value.dim() == 1:
            state[key] = u + 0.5
        else:
            state[key] = (u - 0.5) * 2 * math.sqrt(3 / math.prod(value.shape[1:]))
    final = state['final_conv.conv.weight'].shape[0]
    head = {'head.weight': (torch.rand(1000, final, generator=g) - 0.5) * 2 * math.sqrt(3 / final),
            'head.bias': (torch.rand(1000, generator=g) - 0.5) * 0.2}
    return state, head


@pytest.fixture(scope='module')
def official():
    return ref.rebuild_official_weights('1.0')


@pytest.fixture(scope='module')
def golden():
    return ref.load_golden('1.0')


def source(width: float, official):
    """(backbone state, classifier) of a source width: the official stand-in at 1.0, the recipe elsewhere."""
    if width == 1.0:
        return to_own_format(official), extract_classifier(official, 'official')
    return random_weights(width)


def run(model, head, x):
    feats = model(x)
    return feats, F.linear(feats[-1].mean((2, 3)), head['head.weight'], head['head.bias'])


def synthetic_images(n: int, seed: int, size: int = 96) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    settings = ShapesSettings(image_size=size)
    return torch.stack([preprocess_image(draw_image(rng, settings)[0], size) for _ in range(n)])


# --------------------------------------------------------------------------------------- plans
def test_published_widths_nest():
    """Every published pair widens exactly: a wider block's ``out - in`` never shrinks."""
    for i, small in enumerate(PUBLISHED_WIDTHS):
        for large in PUBLISHED_WIDTHS[i:]:
            plan = plan_transfer(small, large, require_exact=True)
            assert plan.exact
            for s, d in zip(plan.src_settings, plan.dst_settings):
                assert s.use_residual == d.use_residual
                if s.use_residual:
                    assert d.out_channels - d.in_channels >= s.out_channels - s.in_channels


def test_plan_keeps_the_residual_consistent():
    plan = plan_transfer(1.0, 2.2, require_exact=True)
    for s, d in zip(plan.src_settings, plan.dst_settings):
        out = plan.maps[f'blocks.{s.index}.out'].index
        if s.use_residual:
            prev = plan.maps['stem' if s.index == 0 else f'blocks.{s.index - 1}.out'].index
            assert torch.equal(out[:d.in_channels], prev)  # residual channels follow the input
            assert bool((out[d.in_channels:] >= s.in_channels).all())  # the others carry no residual
            # (positions are fixed by the residual, so identity-first holds for non-residual blocks only)
        else:
            assert torch.equal(out[:s.out_channels], torch.arange(s.out_channels))  # identity first, then copies
        assert plan.maps[f'blocks.{s.index}.out'].complete
    stem = plan.maps['stem'].index
    assert torch.equal(stem[:32], torch.arange(32))


# --------------------------------------------------------------------------------------- widening
@pytest.mark.slow
@pytest.mark.parametrize('src_width,dst_width', [(2.0, 2.2), (1.0, 1.3), (1.0, 2.2)])
def test_widening_is_exact(src_width, dst_width, official, golden):
    state, head = source(src_width, official)
    result = transfer_state_dict(state, dst_width, classifier=head, require_exact=True)
    assert result.exact and result.plan.src_width == src_width
    src_model, dst_model = build(src_width), build(dst_width)
    src_model.load_state_dict(state, strict=True)
    dst_model.load_state_dict(result.state_dict, strict=True)
    x = golden['input']
    with torch.no_grad():
        src_feats, src_logits = run(src_model, head, x)
        dst_feats, dst_logits = run(dst_model, result.classifier, x)
    if src_width == 1.0:  # the source really is the official model
        assert torch.allclose(src_logits, golden['outputs']['logits'], atol=1e-4)
    errors, scales = {}, {}
    for tap, s, d in zip(ALL_TAPS, src_feats, dst_feats):
        g = result.plan.tap_index(tap)
        assert d.shape[1] == g.numel()
        errors[tap], scales[tap] = float((d - s[:, g]).abs().max()), float(s.abs().max())
    errors['logits'], scales['logits'] = float((dst_logits - src_logits).abs().max()), float(src_logits.abs().max())
    print(f'{src_width} -> {dst_width}: max abs error {errors}, largest magnitude {scales}')
    assert all(errors[k] < ATOL * max(1.0, scales[k]) for k in errors), errors


def test_noise_breaks_symmetry_a_little(official, golden):
    state, head = source(1.0, official)
    exact = transfer_state_dict(state, 1.3, classifier=head)
    noisy = transfer_state_dict(state, 1.3, classifier=head, noise=0.01)
    key = 'blocks.5.conv_pwl.conv.weight'
    diff = (noisy.state_dict[key] - exact.state_dict[key]).std() / state[key].std()
    assert 0.005 < float(diff) < 0.02
    assert torch.equal(noisy.state_dict['blocks.5.conv_pwl.bn.running_var'],
                       exact.state_dict['blocks.5.conv_pwl.bn.running_var'])  # norms untouched
    model = build(1.3)
    model.load_state_dict(noisy.state_dict)
    with torch.no_grad():
        _, logits = run(model, noisy.classifier, golden['input'])
    reference = golden['outputs']['logits']
    change = float((logits - reference).norm() / reference.norm())
    print(f'noise 0.01: relative change of the logits {change:.4f}')
    assert 0 < change < 0.2


# --------------------------------------------------------------------------------------- narrowing
@pytest.fixture(scope='module')
def images():
    return synthetic_images(32, seed=2)


@pytest.fixture(scope='module')
def trained_like(official, images):
    """The official stand-in made more like a trained network: a fifth of the channels of every norm
    layer nearly switched off (|gamma| x 0.02), as weight decay leaves them, and BatchNorm statistics
    that fit the images (the golden recipe's are random and fit no data)."""
    state = to_own_format(official)
    g = torch.Generator().manual_seed(0)
    for key in [k for k in state if k.endswith('bn.weight')]:
        off = torch.rand(state[key].shape, generator=g) < 0.2
        state[key] = torch.where(off, state[key] * 0.02, state[key])
    model = build(1.0)
    model.load_state_dict(state)
    calibrate_batchnorm(model, images)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_narrowing_loads_strictly_and_calibration_reduces_drift(trained_like, images):
    result = transfer_state_dict(trained_like, 0.9)
    assert not result.exact
    assert result.plan.maps['blocks.15.out'].dropped == 185 - 168
    build(0.9, (6,)).load_state_dict(result.state_dict, strict=True)
    norms = result.plan.changed_norms()
    assert norms[0] == 'blocks.2.conv_exp.bn'  # stem and block 0 keep 32 / 16 channels; block 1's output shrinks
    stem = result.state_dict['stem.bn.running_mean'].clone()
    calibration = calibrate_transfer(result, images, trained_like)
    print(f'1.0 -> 0.9 drift before {calibration.before} after {calibration.after}')
    assert list(calibration.before) == ['C2', 'C3', 'C4', 'C5', 'final_conv']
    assert calibration.norms == len(norms)
    # The stand-in is a random network, chaotic past C4 (1% weight noise moves C5 by ~60%), so C5 and
    # the final features say little; up to C4 re-estimation must help.
    for tap in ('C2', 'C3', 'C4'):
        assert calibration.after[tap] < calibration.before[tap]
    assert torch.equal(result.state_dict['stem.bn.running_mean'], stem)  # unchanged layers keep their statistics
    build(0.9, (6,)).load_state_dict(result.state_dict, strict=True)


@pytest.mark.slow
def test_narrowing_keeps_important_channels(trained_like):
    state = dict(trained_like)
    # Block 3's output channel 0 is also block 4's (partial residual): its importance is the sum of both.
    for key in ('blocks.3.conv_pwl.bn.weight', 'blocks.4.conv_pwl.bn.weight'):
        state[key] = state[key].clone()
        state[key][0] = 0.0
    result = transfer_state_dict(state, 0.9)
    kept = result.plan.maps['blocks.3.out'].index
    assert 0 not in kept.tolist() and kept.numel() == 46
    with pytest.raises(WidthTransferError, match='exact'):
        transfer_state_dict(trained_like, 0.9, require_exact=True)


# --------------------------------------------------------------------------------------- files and the tool
@pytest.mark.slow
def test_transfer_checkpoint_formats_and_classifier(tmp_path, official, golden):
    src = tmp_path / 'rexnetv1_1.0.pth'
    torch.save(official, src)
    dst = tmp_path / 'rexnet_130.pth'
    report = transfer_checkpoint(str(src), str(dst), 1.3, fmt='timm')
    assert report.plan.exact and report.source_format == 'official'
    text = '\n'.join(report.lines())
    assert 'exact widening' in text and 'classifier kept' in text and '185 -> 240' in text
    saved = torch.load(dst, weights_only=True)
    model = build(1.3, (6,))
    own = to_own_format(saved)
    model.load_state_dict(own)
    with torch.no_grad():
        _, logits = run(model, extract_classifier(saved, 'timm'), golden['input'])
    assert torch.allclose(logits, golden['outputs']['logits'], atol=ATOL)
    # own format: backbone only, with its width
    own_dst = tmp_path / 'own.pth'
    transfer_checkpoint(str(dst), str(own_dst), 2.2)
    saved = torch.load(own_dst, weights_only=True)
    assert saved['meta']['widen_factor'] == 2.2 and not any(k.startswith('head') for k in saved['state_dict'])


@pytest.mark.slow
def test_tool_widens_and_narrows(tmp_path, official, trained_like):
    import subprocess
    src = tmp_path / 'src.pth'
    torch.save(official, src)
    tool = osp.join(ROOT, 'tools', 'model_converters', 'convert_weights.py')
    out = subprocess.run([sys.executable, tool, str(src), str(tmp_path / 'w.pth'), '--widen-factor', '2.2',
                          '--exact'], capture_output=True, text=True, check=True).stdout
    assert 'exact widening' in out and 'stage' in out and '185 -> 406' in out
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(3)
    import cv2
    for i in range(8):
        cv2.imwrite(str(images / f'{i:03d}.jpg'), draw_image(rng, ShapesSettings(image_size=96))[0])
    trained = tmp_path / 'trained.pth'
    save_own_format(trained_like, str(trained), 1.0)
    out = subprocess.run([sys.executable, tool, str(trained), str(tmp_path / 'n.pth'), '--widen-factor', '0.9',
                          '--calibrate-images', str(images), '--num-images', '6'],
                         capture_output=True, text=True, check=True).stdout
    assert 'narrowing' in out and 'dropped' in out and 'feature drift' in out and '6 images' in out
    assert 'before' in out and 'after' in out
    build(0.9, (6,)).load_state_dict(torch.load(tmp_path / 'n.pth', weights_only=True)['state_dict'], strict=True)
    bad = subprocess.run([sys.executable, tool, str(src), str(tmp_path / 'x.pth'), '--widen-factor', '0.9',
                          '--exact'], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith('error: exact') and 'Traceback' not in bad.stderr


def test_errors_are_clear(tmp_path, official):
    wide = tmp_path / 'wide.pth'
    save_own_format(random_weights(2.2)[0], str(wide), 2.2)
    with pytest.raises(WidthTransferError, match=r'exact .* channels at widen_factor=2\.2 and \d+ at 2\.0'):
        transfer_checkpoint(str(wide), str(tmp_path / 'x.pth'), 2.0, require_exact=True)
    unknown = tmp_path / 'unknown.pth'
    torch.save({'encoder.weight': torch.zeros(3)}, unknown)
    with pytest.raises(CheckpointError, match='unknown checkpoint format'):
        transfer_checkpoint(str(unknown), str(tmp_path / 'x.pth'), 1.3)
    corrupt = tmp_path / 'corrupt.pth'
    torch.save(official, corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match='truncated'):
        transfer_checkpoint(str(corrupt), str(tmp_path / 'x.pth'), 1.3)
    with pytest.raises(WidthTransferError, match='calibration image folder not found'):
        good = tmp_path / 'good.pth'
        torch.save(official, good)
        transfer_checkpoint(str(good), str(tmp_path / 'x.pth'), 0.9, calibrate_images=str(tmp_path / 'none'))
    assert not (tmp_path / 'x.pth').exists()
    with pytest.raises(WidthTransferError, match='linear channel rule'):
        transfer_state_dict({'stem.conv.weight': torch.zeros(32, 3, 3, 3),
                             'blocks.0.conv_pwl.conv.weight': torch.zeros(17, 32, 1, 1)}, 1.3)


# --------------------------------------------------------------------------------------- from a config
@pytest.mark.slow
def test_init_cfg_width_transfer(tmp_path, official, golden, monkeypatch):
    path = tmp_path / 'rexnetv1_1.0.pth'
    torch.save(official, path)
    with pytest.raises(CheckpointError, match='does not fit'):  # no explicit key: a mismatch stays an error
        MODELS.build(dict(type='ReXNet', widen_factor=1.3,
                          init_cfg=dict(type='Pretrained', checkpoint=str(path)))).init_weights()
    logs = []
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda msg, **kw: logs.append(msg) if 'ReXNet ImageNet weights' in str(msg) else None)
    model = MODELS.build(dict(type='ReXNet', widen_factor=1.3, out_indices=(1, 2, 3, 5),
                              init_cfg=dict(type='Pretrained', checkpoint=str(path), width_transfer=True)))
    model.init_weights()
    assert len(logs) == 1 and '1.0 -> 1.3, widened exactly' in logs[0] and str(path) in logs[0]
    plan = plan_transfer(1.0, 1.3)
    reference = build(1.0, (1, 2, 3, 5))
    load_backbone_weights(reference, str(path))
    with torch.no_grad():
        for tap, s, d in zip((1, 2, 3, 5), reference(golden['input']), model.eval()(golden['input'])):
            assert torch.allclose(d, s[:, plan.tap_index(tap)], atol=ATOL)
    logs.clear()
    MODELS.build(dict(type='ReXNet', widen_factor=1.3, out_indices=(1,),
                      init_cfg=dict(type='Pretrained', checkpoint=str(path), width_transfer=True,
                                    width_transfer_noise=0.01))).init_weights()
    assert len(logs) == 1 and 'noise of 0.01' in logs[0]
    # A checkpoint already at the target width loads directly.
    logs.clear()
    same = MODELS.build(dict(type='ReXNet', widen_factor=1.0, out_indices=(1, 2, 3, 5),
                             init_cfg=dict(type='Pretrained', checkpoint=str(path), width_transfer=True)))
    same.init_weights()
    assert len(logs) == 1 and logs[0].startswith('Loaded ReXNet ImageNet weights')
    assert all(torch.equal(same.state_dict()[k], v) for k, v in reference.state_dict().items())


def test_x09_configs_narrow_from_published_x10(tmp_path, official, monkeypatch):
    path = tmp_path / 'rexnetv1_1.0.pth'
    torch.save(official, path)
    for name in ('ssdlite_rexnet_x0.9', 'faster_rcnn_rexnet_x0.9_fpn', 'mask_rcnn_rexnet_x0.9_fpn'):
        backbone = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py')).model.backbone
        assert backbone.widen_factor == 0.9
        assert backbone.init_cfg.checkpoint == PRETRAINED_URLS[1.0] and backbone.init_cfg.width_transfer is True
    logs = []
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda msg, **kw: logs.append(msg) if 'ReXNet ImageNet weights' in str(msg) else None)
    backbone.init_cfg.checkpoint = str(path)  # what --cfg-options model.backbone.init_cfg.checkpoint=... does
    model = MODELS.build(backbone)
    model.init_weights()
    assert len(logs) == 1 and '1.0 -> 0.9, narrowed' in logs[0] and 'NOT re-estimated' in logs[0]
    assert 'convert_weights.py' in logs[0] and '--calibrate-images' in logs[0]


@pytest.mark.slow
def test_x22_config_initialises_from_a_width_20_file(tmp_path, monkeypatch):
    state, _ = random_weights(2.0)
    path = tmp_path / 'rexnet_x2.0.pth'
    save_own_format(state, str(path), 2.0)
    for name in ('faster_rcnn_rexnet_x2.2_fpn', 'mask_rcnn_rexnet_x2.2_fpn'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
        assert cfg.model.backbone.init_cfg.checkpoint == PRETRAINED_URLS[2.0]
        assert cfg.model.backbone.init_cfg.width_transfer is True
        assert cfg.model.backbone.init_cfg.width_transfer_noise == 0.01  # copies must be able to diverge
    # Noise off: the widened backbone must then compute exactly what the x2.0 one computes.
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': str(path),
                         'model.backbone.init_cfg.width_transfer_noise': 0.0})
    logs = []
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda msg, **kw: logs.append(msg) if 'ReXNet ImageNet weights' in str(msg) else None)
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    assert len(logs) == 1 and '2.0 -> 2.2, widened exactly' in logs[0] and str(path) in logs[0]
    reference = build(2.0, (1, 2, 3, 5))
    reference.load_state_dict(state, strict=False)
    plan = plan_transfer(2.0, 2.2)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for tap, s, d in zip((1, 2, 3, 5), reference(x), detector.backbone.eval()(x)):
            assert torch.allclose(d, s[:, plan.tap_index(tap)], atol=ATOL)
