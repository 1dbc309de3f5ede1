"""The batched RoI Align gives mmcv's RoIAlign numbers on every kind of RoI, in any layout, and
replaces it in detectors without changing their detections."""
import copy

import pytest
import torch
from mmcv.ops import RoIAlign

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.analysis.roi_align_speed import random_rois
from rexnet_mmdet.deploy import roi_align as batched
from rexnet_mmdet.deploy.roi_align import BatchedRoIAlign, fast_roi_align, roi_align_avg
from detections import assert_same_detections  # tests/helpers/, registered by conftest.py


def _rois(n, width, height, smallest, largest, images=1, seed=0):
    return random_rois(n, width, height, smallest, largest, images, torch.Generator().manual_seed(seed))


# Hand-picked RoIs: a point, a line, one wholly outside the map, one covering more than the map,
# one ending exactly on the last pixel, one starting below -1.
SPECIAL = torch.tensor([[0, 10., 10., 10., 10.], [0, 3., 5., 3., 40.], [0, 500., 500., 520., 530.],
                        [0, -50., -40., 400., 300.], [0, 0., 0., 127., 95.], [0, -9., -9., 3., 2.]])


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
@pytest.mark.parametrize('aligned', [True, False], ids=['aligned', 'legacy'])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('output_size,stride', [(7, 4), (7, 16), (14, 8)])
def test_matches_mmcv(output_size, stride, sampling_ratio, aligned, channels_last, monkeypatch):
    monkeypatch.setattr(batched, 'CHUNK_PAIRS', 1 << 12)  # several chunks in a group of RoIs
    width, height = 128, 96
    feats = torch.randn(2, 32, height // stride, width // stride, generator=torch.Generator().manual_seed(1))
    rois = torch.cat([_rois(60, width, height, 2, 160, images=2), SPECIAL])
    ref = RoIAlign(output_size, 1 / stride, sampling_ratio, aligned=aligned)(feats, rois)
    if channels_last:
        feats = feats.contiguous(memory_format=torch.channels_last)
    out = roi_align_avg(feats, rois, (output_size, output_size), 1 / stride, sampling_ratio, aligned)
    assert out.shape == ref.shape and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    assert ref.abs().sum() > 0 and (ref[-4] == 0).all()  # the RoI outside the map pools zeros


def test_detector_scale_rois_match_mmcv():
    """RoIs as a Faster R-CNN sends them to its four FPN levels at 1216x800, 256 channels."""
    for stride, sides in ((4, (8, 112)), (8, (112, 224)), (16, (224, 448)), (32, (448, 1400))):
        feats = torch.randn(1, 256, 800 // stride, 1216 // stride).contiguous(memory_format=torch.channels_last)
        rois = _rois(120, 1216, 800, *sides, seed=stride)
        ref = RoIAlign(7, 1 / stride, 0)(feats.contiguous(), rois)
        torch.testing.assert_close(roi_align_avg(feats, rois, (7, 7), 1 / stride), ref, atol=2e-6, rtol=1e-5)


def test_no_rois_and_bad_rois():
    feats = torch.randn(1, 8, 10, 10)
    assert roi_align_avg(feats, torch.zeros(0, 5), (7, 7), 1.0).shape == (0, 8, 7, 7)
    with pytest.raises(ValueError, match='negative size'):
        roi_align_avg(feats, torch.tensor([[0, 5., 5., 2., 8.]]), (7, 7), 1.0)
    with pytest.raises(ValueError, match='NaN'):
        roi_align_avg(feats, torch.tensor([[0, 1., 1., float('nan'), 5.]]), (7, 7), 1.0)


def test_layer_falls_back_to_mmcv_where_it_does_not_apply():
    feats = torch.randn(1, 8, 24, 24).contiguous(memory_format=torch.channels_last)
    rois = _rois(10, 96, 96, 4, 60)
    # max pooling: mmcv's layer, given NCHW memory (it would misread channels-last)
    mmcv_max = RoIAlign(7, 0.25, 0, pool_mode='max', aligned=False)
    strided = torch.cat([rois, torch.zeros_like(rois)], 1)[:, :5]  # the same RoIs, rows 10 floats apart
    torch.testing.assert_close(BatchedRoIAlign(mmcv_max)(feats, strided), mmcv_max(feats.contiguous(), rois))
    # gradients: mmcv's layer, which has a backward
    layer = BatchedRoIAlign(RoIAlign(7, 0.25, 0))
    feats = feats.contiguous().requires_grad_()
    layer(feats, rois).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def _mask_rcnn():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile('configs/mask_rcnn_rexnet_x0.9_fpn.py').model
    cfg.backbone.init_cfg = None
    cfg.test_cfg.rcnn.score_thr = 0.0
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


@pytest.mark.slow
def test_detector_keeps_its_boxes_and_masks():
    """Both RoI extractors of a Mask R-CNN are swapped; boxes, scores and masks stay mmcv's."""
    from mmdet.structures import DetDataSample
    model = _mask_rcnn()
    fast = copy.deepcopy(model)
    assert fast_roi_align(fast) == 8  # 4 FPN levels x (box, mask)
    assert fast_roi_align(fast) == 0  # once only
    h, w = 160, 224
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(3))
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), batch_input_shape=(h, w),
                pad_shape=(h, w))
    with torch.no_grad():
        ref = model.predict(x, [DetDataSample(metainfo=meta)])[0].pred_instances
        out = fast.predict(x, [DetDataSample(metainfo=meta)])[0].pred_instances
    assert len(ref) > 0 and len(out) == len(ref)
    pairs = assert_same_detections(ref, out, score_tol=1e-5)
    assert len(pairs) >= len(ref) - 2
    i, j = map(list, zip(*pairs))
    assert (out.masks[j] != ref.masks[i]).float().mean() < 1e-3


@pytest.mark.parametrize('aligned', [True, False])
def test_samples_exactly_on_the_far_edge_count(aligned):
    """A sample at y == H (or x == W) is inside mmcv's rule (only y > H is outside) and reads the
    last row; one just past it reads nothing."""
    feats = torch.randn(1, 4, 12, 16, generator=torch.Generator().manual_seed(4))
    shift = 0.5 if aligned else 0.0
    rois = torch.tensor([[0, 0. + shift, 10. + shift, 4. + shift, 14. + shift],     # sample y = 12 = H
                         [0, 14. + shift, 0. + shift, 18. + shift, 4. + shift],     # sample x = 16 = W
                         [0, 0. + shift, 10.1 + shift, 4. + shift, 14.1 + shift]])  # sample y = 12.1
    ref = RoIAlign(1, 1.0, 1, aligned=aligned)(feats, rois)
    out = roi_align_avg(feats, rois, (1, 1), 1.0, 1, aligned)
    torch.testing.assert_close(out, ref)
    assert (ref[:2] != 0).all() and (ref[2] == 0).all()
