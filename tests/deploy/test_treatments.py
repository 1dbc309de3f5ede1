"""Every treatment computes what the model as built computes: fused+cl for any backbone, the
backbone in ONNX Runtime / OpenVINO inside a detector, and channels-last features into RoIAlign."""
import copy

import pytest
import torch
import torch.nn as nn

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.deploy import optimize_for_inference
from rexnet_mmdet.deploy.roi_align import BatchedRoIAlign
from rexnet_mmdet.deploy.treatments import TREATMENTS, treat_backbone, treat_detector, treatment_unavailable
from detections import assert_same_detections  # tests/helpers/, registered by conftest.py
from randomised import randomise_norms  # tests/helpers/, registered by conftest.py


def _predict_both(model, fast, hw, seed):
    """The detections of ``model`` and of ``fast`` for one random image of size ``hw``."""
    from mmdet.structures import DetDataSample
    h, w = hw
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), batch_input_shape=(h, w),
                pad_shape=(h, w))
    with torch.no_grad():
        return (model.predict(x, [DetDataSample(metainfo=meta)])[0].pred_instances,
                fast.predict(x, [DetDataSample(metainfo=meta)])[0].pred_instances)


def _build(cfg):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    randomise_norms(model)
    model.eval()
    return model


def _runtime_available(treatment: str) -> bool:
    module = {'fused+onnxruntime': 'onnxruntime', 'fused+openvino': 'openvino'}.get(treatment)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize('treatment', [t for t in TREATMENTS if t != 'eager'])
@pytest.mark.parametrize('cfg', [dict(type='ReXNet', widen_factor=0.9, out_indices=(1, 2, 3, 5)),
                                 dict(type='ReXNet', arch='lite', out_indices=(4, 6)),
                                 dict(type='ReXNet', channel_divisor=8, out_indices=(1, 2, 3, 5)),
                                 dict(type='MobileNetV2', out_indices=(2, 4, 7)),
                                 dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3))],
                         ids=['rexnet', 'rexnet_lite', 'rexnetr', 'mobilenetv2', 'resnet18'])
@pytest.mark.slow
def test_every_treatment_matches_eager(treatment, cfg):
    if not _runtime_available(treatment):
        pytest.skip(f'{treatment} needs its runtime installed')
    if treatment_unavailable(treatment, torch.device('cpu')):
        pytest.skip(treatment_unavailable(treatment, torch.device('cpu')))  # tests/deploy/test_graphs.py
    model = _build(cfg)
    treated = treat_backbone(copy.deepcopy(model), treatment)
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        ref, out = model(x), treated(x)
    assert len(ref) == len(out)
    for a, b in zip(ref, out):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())
        # Every treatment but eager hands the neck channels-last maps (the runtimes' outputs too).
        assert b.is_contiguous(memory_format=torch.channels_last) and not b.is_contiguous()
    # Dynamic image size: another shape through the same treated model.
    with torch.no_grad():
        y = torch.randn(1, 3, 64, 96)
        for a, b in zip(model(y), treated(y)):
            assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())


@pytest.mark.slow
@pytest.mark.parametrize('backend', ['torch', 'onnxruntime', 'openvino'])
def test_optimized_detector_predicts_what_eager_predicts(backend):
    if not _runtime_available({'torch': 'eager', 'onnxruntime': 'fused+onnxruntime',
                               'openvino': 'fused+openvino'}[backend]):
        pytest.skip(f'{backend} is not installed')
    from mmengine.config import Config
    cfg = Config.fromfile('configs/faster_rcnn_rexnet_x0.9_fpn.py')
    cfg.model.backbone.init_cfg = None
    # Scores that spread: the RoI head's outputs decide which boxes survive.
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    model = _build(cfg.model)
    fast = optimize_for_inference(copy.deepcopy(model), backend=backend)
    assert all(isinstance(layer, BatchedRoIAlign) for layer in fast.roi_head.bbox_roi_extractor.roi_layers)
    ref, out = _predict_both(model, fast, (160, 224), seed=1)
    assert len(ref) > 0 and len(out) == len(ref)
    assert_same_detections(ref, out)


@pytest.mark.slow
def test_fused_channels_last_resnet_detector_keeps_its_roi_features_right():
    """The generic treatment of a ResNet-50-like detector: channels-last features reach RoIAlign
    contiguous (mmcv's kernel would read them as NCHW otherwise)."""
    from mmengine.config import Config
    cfg = Config.fromfile('configs/faster_rcnn_rexnet_x0.9_fpn.py')
    cfg.model.backbone = dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3), norm_eval=True, style='pytorch')
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    model = _build(cfg.model)
    fast = treat_detector(copy.deepcopy(model), 'fused+cl')
    ref, out = _predict_both(model, fast, (128, 160), seed=2)
    assert len(ref) > 0 and len(out) == len(ref)
    torch.testing.assert_close(out.scores, ref.scores, atol=1e-4, rtol=1e-3)


def test_fold_keeps_an_activation_carried_by_the_norm():
    """timm's BatchNormAct2d carries its activation: folding it must keep the activation."""
    class NormAct(nn.BatchNorm2d):
        def __init__(self, channels):
            super().__init__(channels)
            self.drop = nn.Identity()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.drop(super().forward(x)))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), NormAct(8), nn.Conv2d(8, 4, 1)).eval()
    randomise_norms(model)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        fused = treat_backbone(copy.deepcopy(model), 'fused+cl')
        out = fused(x)
    assert (ref < 0).any()  # the last conv's output: not what the ReLU alone explains
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.ReLU) for m in fused.modules())
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
