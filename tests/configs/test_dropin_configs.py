"""ReXNet dropped into detectors the paper does not report: RetinaNet + FPN and RTMDet-tiny.

Each config builds, its neck takes exactly the channels the backbone returns, the features reach
the head at the strides its priors expect, and the detector trains a step and predicts.
"""
import math
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config

from rexnet_mmdet import PRETRAINED_URLS, out_channels
import config_models  # tests/helpers/, registered by conftest.py

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
register_all_modules()

# name: (backbone out_indices, strides the backbone returns, parameters in millions with 80 classes)
DROPIN_CONFIGS = {
    'retinanet_rexnet_x1.0_fpn': ((1, 2, 3, 5), (4, 8, 16, 32), 12.62),
    'rtmdet_tiny_rexnet_x1.0': ((2, 3, 5), (8, 16, 32), 4.53),
}
NAMES = list(DROPIN_CONFIGS)


def config_path(name: str) -> str:
    return osp.join(ROOT, 'configs', f'{name}.py')


def build_random(name: str):
    return config_models.build_random(config_path(name))


def head_strides(model):
    return [s[0] if isinstance(s, tuple) else s for s in model.bbox_head.prior_generator.strides]


def feature_strides(model, size: int = 128):
    """Strides of the features the head receives, measured on a ``size`` x ``size`` image."""
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, size, size))
    assert all(f.shape[-2] == f.shape[-1] for f in feats)
    return [size / f.shape[-1] for f in feats]


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_config_builds_with_checked_channels_and_strides(name):
    cfg = Config.fromfile(config_path(name))
    out_indices, strides, params_m = DROPIN_CONFIGS[name]
    bb = cfg.model.backbone
    assert bb.type == 'ReXNet' and bb.out_indices == out_indices
    assert cfg.custom_imports.imports == ['rexnet_mmdet']
    # The helper imported inside the config is gone from the parsed config; its answer stays.
    assert 'out_channels' not in cfg
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=PRETRAINED_URLS[bb.widen_factor])
    model = build_random(name)
    assert list(cfg.model.neck.in_channels) == list(model.backbone.out_channels) \
        == out_channels(bb.widen_factor, out_indices)
    assert tuple(t.stride for t in model.backbone.output_shape()) == strides
    # The features the head sees are at the strides its anchors / points are laid out for.
    assert feature_strides(model) == head_strides(model)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(params - params_m) < 0.01, f'{params:.3f}M, expected {params_m}M'


def test_resnet_numbering_would_be_caught():
    """ResNet's (1, 2, 3) copied into RTMDet, with matching channels, builds: the stride check catches it."""
    cfg = Config.fromfile(config_path('rtmdet_tiny_rexnet_x1.0'))
    cfg.model.backbone.update(out_indices=(1, 2, 3), init_cfg=None)
    cfg.model.neck.in_channels = out_channels(1.0, (1, 2, 3))
    model = MODELS.build(cfg.model)
    assert feature_strides(model) == [4, 8, 16] != head_strides(model)


@pytest.mark.parametrize('name', NAMES)
def test_config_dumps_and_reloads(name, tmp_path):
    """A run dumps its config to the work dir; the dump must load on its own (no helper call left)."""
    cfg = Config.fromfile(config_path(name))
    dumped = tmp_path / f'{name}.py'
    cfg.dump(str(dumped))
    again = Config.fromfile(str(dumped))
    assert again.model.backbone.to_dict() == cfg.model.backbone.to_dict()
    assert again.model.neck.in_channels == cfg.model.neck.in_channels


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_config_trains_a_step_and_predicts(name):
    model = build_random(name)
    # 64x64: the smallest image every level of both detectors still covers (RetinaNet reaches stride 128).
    batch = demo_mm_inputs(batch_size=2, image_shapes=(3, 64, 64), num_items=[3, 2], num_classes=80)
    config_models.train_step(model, batch, model.bbox_head)
    model.eval()
    # After one step from random weights every score is near the focal-loss prior (0.01): keep them all,
    # so the boxes are decoded and put through NMS rather than filtered out before.
    model.bbox_head.test_cfg.score_thr = 0.0
    # RTMDet regresses box sides linearly (no exp): from random weights they are as often negative as
    # not, and every box would be dropped as empty. A positive bias makes them valid boxes, so decoding
    # and NMS run on real candidates.
    for reg in getattr(model.bbox_head, 'rtm_reg', []):
        reg.bias.data.fill_(1.0)
    pred = config_models.predict(model, batch)
    assert len(pred.bboxes) > 0
    assert math.isfinite(pred.scores.sum().item())
