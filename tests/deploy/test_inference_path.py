"""tools/test.py evaluates on the inference path by default: same COCO AP as the model as built."""
import os.path as osp
import re
import sys

import pytest

from tiny_runs import ADAMW, run_tool, write_tiny_config  # noqa: E402

# Every test here trains a model or runs a tool end to end: for make test, not make test-fast.
pytestmark = pytest.mark.slow

AP_LINE = re.compile(r'Average Precision +\(AP\) @\[ IoU=0\.50:0\.95 \| area= +all \| maxDets=100 \] = (-?[0-9.]+)')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny ReXNet Faster R-CNN trained 60 steps on the 4 held-out images of the built-in dataset
    it is then evaluated on (with mmdet's random samplers): enough for an AP above 0."""
    tmp = tmp_path_factory.mktemp('inference_path')
    config = write_tiny_config(str(tmp / 'tiny.py'), str(tmp / 'shapes'), max_iters=60, ckpt_interval=60,
                               optimizer=ADAMW)
    result = run_tool(['train.py', config, '--work-dir', str(tmp / 'train'), '--cfg-options',
                       'train_dataloader.dataset.ann_file=annotations/instances_val.json',
                       'train_dataloader.dataset.data_prefix.img=val/',
                       'model.train_cfg.rpn.sampler.type=RandomSampler',
                       'model.train_cfg.rcnn.sampler.type=RandomSampler'])
    assert result.returncode == 0, result.stdout[-3000:]
    return tmp, config, str(tmp / 'train' / 'iter_60.pth')


def _box_ap(output: str) -> float:
    values = AP_LINE.findall(output)
    assert values, output[-3000:]
    return float(values[-1])


def test_optimized_and_eager_evaluation_give_the_same_ap(trained):
    tmp, config, checkpoint = trained
    fast = run_tool(['test.py', config, checkpoint, '--work-dir', str(tmp / 'fast')])
    eager = run_tool(['test.py', config, checkpoint, '--work-dir', str(tmp / 'eager'), '--no-optimize'])
    assert fast.returncode == 0, fast.stdout[-3000:]
    assert eager.returncode == 0, eager.stdout[-3000:]
    # The optimized path ran, after the checkpoint was loaded, and the flag turns it off.
    assert 'inference path: on' in fast.stdout
    assert 'optimize_for_inference applied after loading the checkpoint' in fast.stdout
    assert fast.stdout.index('Load checkpoint from') < fast.stdout.index('optimize_for_inference applied')
    assert 'inference path: off' in eager.stdout and 'optimize_for_inference applied' not in eager.stdout
    ap_fast, ap_eager = _box_ap(fast.stdout), _box_ap(eager.stdout)
    assert ap_eager > 0, 'the tiny model detects nothing: the comparison would be vacuous'
    assert ap_fast == pytest.approx(ap_eager, abs=5e-4)  # printed to 3 decimals: the same figure


def test_one_call_for_det_inferencer_users(trained):
    """The README's one-liner: optimize_for_inference(inferencer.model) keeps DetInferencer's detections."""
    import glob

    import torch
    from mmdet.apis import DetInferencer

    from rexnet_mmdet.deploy import optimize_for_inference
    tmp, config, checkpoint = trained
    images = sorted(glob.glob(str(tmp / 'shapes' / 'val' / '*.png')))
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu', show_progress=False)
    ref = [p.pred_instances for p in inferencer(images, return_datasamples=True)['predictions']]
    optimize_for_inference(inferencer.model)
    out = [p.pred_instances for p in inferencer(images, return_datasamples=True)['predictions']]
    assert sum(len(r) for r in ref) > 0
    for r, o in zip(ref, out):
        assert len(r) == len(o)
        torch.testing.assert_close(o.scores, r.scores, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(o.bboxes, r.bboxes, atol=1e-2, rtol=1e-3)
