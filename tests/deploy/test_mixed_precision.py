"""Half-precision prediction that mmcv's compiled ops can follow: box post-processing in float32, RoI
extraction in float32 where mmcv's RoI Align lacks the dtype."""
import copy

import pytest
import torch

from rexnet_mmdet.deploy.mixed_precision import autocast_state, fp32_post_processing, in_float32
from rexnet_mmdet.utils.build import build_detector, fake_batch, load_config

pytestmark = pytest.mark.usefixtures('one_thread')


def test_in_float32_casts_half_inputs_and_turns_autocast_off():
    seen = []

    def fn(xs, scale=None):
        seen.append(([x.dtype for x in xs], scale.dtype, autocast_state('cpu')[0]))
        return xs[0] * scale

    wrapped = in_float32(fn)
    half = [torch.ones(2, dtype=torch.bfloat16)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = wrapped(half, scale=torch.ones(2, dtype=torch.bfloat16))
        wrapped([torch.ones(2)], scale=torch.ones(2))  # float32 already: as it is
    assert out.dtype == torch.float32
    assert seen == [([torch.float32], torch.float32, False), ([torch.float32], torch.float32, True)]
    kept = in_float32(fn, keep=lambda t: True)  # a dtype the op takes: left as it is
    kept(half, scale=half[0])
    assert seen[-1] == ([torch.bfloat16], torch.bfloat16, False)


def test_detector_predicts_under_bfloat16_autocast():
    cfg = load_config('configs/faster_rcnn_rexnet_x0.9_fpn.py')
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    model = build_detector(cfg, calibration_size=(96, 64)).eval()
    data = model.data_preprocessor(fake_batch(1, (96, 64)), False)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        with pytest.raises(RuntimeError, match='Float'):  # mmcv's NMS / RoI Align on bfloat16
            copy.deepcopy(model).predict(data['inputs'], data['data_samples'])
        fixed = fp32_post_processing(copy.deepcopy(model))
        (result,) = fixed.predict(data['inputs'], data['data_samples'])
    boxes = result.pred_instances.bboxes
    assert len(boxes) > 0 and boxes.dtype == torch.float32 and torch.isfinite(boxes).all()
