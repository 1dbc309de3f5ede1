"""Detectors on ReXNet-lite and ReXNet-R (new, not from the paper): SSDLite on lite x1.0 / x1.3, Faster and
Mask R-CNN + FPN on R x2.0 / x3.0. Each builds, its neck takes exactly what the backbone returns, the
features reach the head at the strides its priors expect (measured), and it trains a step and predicts."""
import os.path as osp

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config

from rexnet_mmdet import PRETRAINED_URLS, out_channels
from rexnet_mmdet.utils.build import CONFIG_DIR
import config_models  # tests/helpers/, registered by conftest.py

register_all_modules()

# name: (family arguments of the backbone, out_indices, the strides of the features the head sees)
FAMILY_CONFIGS = {
    'ssdlite_rexnet_lite_x1.0': (dict(arch='lite', widen_factor=1.0), (4, 6), (16, 32, 64, 107, 160, 320)),
    'ssdlite_rexnet_lite_x1.3': (dict(arch='lite', widen_factor=1.3), (4, 6), (16, 32, 64, 107, 160, 320)),
    'faster_rcnn_rexnetr_x2.0_fpn': (dict(widen_factor=2.0, channel_divisor=8), (1, 2, 3, 5), (4, 8, 16, 32, 64)),
    'mask_rcnn_rexnetr_x2.0_fpn': (dict(widen_factor=2.0, channel_divisor=8), (1, 2, 3, 5), (4, 8, 16, 32, 64)),
    'faster_rcnn_rexnetr_x3.0_fpn': (dict(widen_factor=3.0, channel_divisor=16), (1, 2, 3, 5), (4, 8, 16, 32, 64)),
    'mask_rcnn_rexnetr_x3.0_fpn': (dict(widen_factor=3.0, channel_divisor=16), (1, 2, 3, 5), (4, 8, 16, 32, 64)),
}
#: The R-CNN detectors on ReXNet-R x2.0 / x3.0 take over 5 s to build and run: slow.
NAMES = [pytest.param(n, marks=pytest.mark.slow) if 'rcnn' in n else n for n in FAMILY_CONFIGS]


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))


def build_random(name: str):
    return config_models.build_random(osp.join(CONFIG_DIR, f'{name}.py'))


def head_strides(model):
    head = model.bbox_head if hasattr(model, 'bbox_head') else model.rpn_head
    return [s[0] if isinstance(s, tuple) else s for s in head.prior_generator.strides]


def feature_strides(model, size: int):
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, size, size))
    return [round(size / f.shape[-1]) for f in feats]


@pytest.mark.parametrize('name', NAMES)
def test_config_builds_with_checked_channels_and_strides(name):
    cfg = load(name)
    family, out_indices, strides = FAMILY_CONFIGS[name]
    bb = cfg.model.backbone
    assert bb.type == 'ReXNet' and bb.out_indices == out_indices
    assert {k: bb.get(k) for k in family} == family
    assert 'out_channels' not in cfg  # the helper the config imports is gone from the parsed config
    model = build_random(name)
    neck_in = cfg.model.neck.in_channels
    assert list(neck_in) == list(model.backbone.out_channels) == out_channels(out_indices=out_indices, **family)
    if 'ssdlite' in name:
        assert list(cfg.model.bbox_head.in_channels) == list(cfg.model.neck.out_channels)
        assert list(cfg.model.neck.out_channels[:2]) == list(neck_in)
        assert bb.init_cfg.checkpoint == f'checkpoints/rexnet_lite_{bb.widen_factor}.pth'  # manual download
        size = 320  # the size SSDLite's priors are laid out for (strides 107 and 160: 320 / 3, 320 / 2)
    else:
        width = int(bb.widen_factor * 100)
        assert bb.init_cfg.checkpoint == PRETRAINED_URLS[f'rexnetr_{width}.sw_in12k_ft_in1k']
        assert bb.norm_eval and not bb.norm_cfg.requires_grad
        size = 256
    assert feature_strides(model, size) == head_strides(model) == list(strides)


@pytest.mark.parametrize('name', NAMES)
def test_config_trains_a_step_and_predicts(name):
    model = build_random(name)
    with_mask = 'mask_rcnn' in name
    size = 128 if 'ssdlite' in name else 64
    batch = demo_mm_inputs(batch_size=2, image_shapes=(3, size, size), num_items=[3, 2], num_classes=80,
                           with_mask=with_mask)
    log_vars = config_models.train_step(model, batch, model.bbox_head if 'ssdlite' in name else model.roi_head)
    pred = config_models.predict(model, batch)
    if with_mask:
        assert 'loss_mask' in log_vars and len(pred.masks) == len(pred.bboxes)
