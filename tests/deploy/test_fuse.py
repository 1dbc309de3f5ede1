"""The inference path: folded norms and channels-last layout compute what the eager model computes."""
import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.deploy import fuse_batchnorm, optimize_for_inference
from rexnet_mmdet.models import ReXNet
from randomised import randomise_norms  # tests/helpers/, registered by conftest.py


FAMILIES = {'v1': dict(widen_factor=1.3), 'lite': dict(arch='lite', widen_factor=1.3),
            'R': dict(widen_factor=1.3, channel_divisor=8)}


@pytest.fixture
def no_tf32():
    """fp32 convolutions and matmuls in full precision on CUDA (TF32 rounds to 10 mantissa bits)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.cuda)]


@pytest.mark.slow
@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('channels_last', [True, False])
@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3, 4, 5, 6), (1, 2, 3, 5)])
@pytest.mark.parametrize('family', FAMILIES)
def test_optimized_backbone_matches_eager(channels_last, out_indices, family, device, no_tf32):
    model = ReXNet(out_indices=out_indices, **FAMILIES[family]).eval()
    randomise_norms(model)
    model = model.to(device)
    fast = optimize_for_inference(copy.deepcopy(model), channels_last=channels_last)
    assert not any(isinstance(m, _BatchNorm) for m in fast.modules())
    x = torch.randn(2, 3, 97, 131, device=device)
    with torch.no_grad():
        ref, out = model(x), fast(x)
    for a, b in zip(ref, out):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-4
        if channels_last:
            assert b.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('family, se', [('v1', 13), ('lite', 0), ('R', 13)])
def test_fold_counts_every_norm(family, se):
    model = ReXNet(out_indices=(6,), **FAMILIES[family]).eval()
    norms = sum(isinstance(m, _BatchNorm) for m in model.modules())
    assert fuse_batchnorm(model) == norms == 1 + 2 + 15 * 3 + se + 1  # stem, block 0, blocks 1-15, SE, final


@pytest.mark.slow
@pytest.mark.parametrize('device', DEVICES)
def test_optimized_detector_predicts_the_same(device, no_tf32):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile('configs/faster_rcnn_rexnet_x0.9_fpn.py')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    randomise_norms(model.backbone)
    model = model.to(device)
    fast = optimize_for_inference(copy.deepcopy(model))
    h, w = 160, 224
    x = torch.randn(1, 3, h, w, device=device)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), batch_input_shape=(h, w),
                pad_shape=(h, w))
    with torch.no_grad():
        feats_ref, feats = model.extract_feat(x), fast.extract_feat(x)
        ref = model.predict(x, [DetDataSample(metainfo=meta)])[0].pred_instances
        out = fast.predict(x, [DetDataSample(metainfo=meta)])[0].pred_instances
    for a, b in zip(feats_ref, feats):
        assert (a - b).abs().max().item() <= 1e-4
    top = min(len(ref), len(out), 20)
    torch.testing.assert_close(out.bboxes[:top], ref.bboxes[:top], atol=1e-2, rtol=1e-3)
    torch.testing.assert_close(out.scores[:top], ref.scores[:top], atol=1e-4, rtol=1e-3)


def test_optimized_model_refuses_training_and_needs_a_rexnet():
    fast = optimize_for_inference(ReXNet())
    with pytest.raises(RuntimeError, match='cannot be trained'):
        fast.train()
    with pytest.raises(ValueError, match='no ReXNet'):
        optimize_for_inference(nn.Conv2d(3, 3, 1))
