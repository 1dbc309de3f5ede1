"""Speed comparisons: statistics, detector configs of any width, equalised heads, the stage timer, the
benchmark tool end to end on tiny settings. No timing is asserted here: timings are measured by
tools/analysis_tools/benchmark.py and reported."""
import json
import os.path as osp

import pytest
import torch

from rexnet_mmdet.analysis import detector_speed, speed
from rexnet_mmdet.models.channels import out_channels
from rexnet_mmdet.utils.build import build_detector, fake_batch, load_config
from rexnet_mmdet.utils.timing import check_device

pytestmark = pytest.mark.usefixtures('one_thread')


def test_timing_statistics_and_ratios():
    fast = speed.Timing('detectors', 'ReXNet x0.9', 'fused+cl', 1, (1216, 800), [0.3, 0.1, 0.2, 0.5], width=0.9)
    ref = speed.Timing('detectors', 'ResNet-50', 'fused+cl', 1, (1216, 800), [0.4, 0.4, 0.5, 0.3])
    assert fast.median == pytest.approx(0.25) and fast.minimum == pytest.approx(0.1)
    assert fast.label == 'ReXNet x0.9 (fused+cl)' and ref.label == 'ResNet-50 (fused+cl)'
    half = speed.Timing('detectors', 'ReXNet x0.9', 'fused+cl', 1, (1216, 800), [0.1], precision='fp16')
    assert half.label == 'ReXNet x0.9 (fused+cl, fp16)'
    speed.add_ratios([fast, ref], [ref.label])
    assert fast.ratios == {ref.label: pytest.approx(0.25 / 0.4)} and ref.ratios == {}
    # Measurements and ratios only: the package holds no speed goals to judge them by.
    assert not any('TARGET' in name for name in dir(speed) + dir(detector_speed))
    d = fast.to_dict()
    assert d['median_ms'] == pytest.approx(250) and d['times_ms'] == pytest.approx([300, 100, 200, 500])


def test_detector_config_for_any_width():
    assert speed.width_name(1) == 'x1.0' and speed.width_name(0.9) == 'x0.9' and speed.width_name(2.2) == 'x2.2'
    cfg = detector_speed.rexnet_detector_config(0.9)
    assert osp.basename(cfg.filename) == 'faster_rcnn_rexnet_x0.9_fpn.py'
    # No config file for x1.3: the x1.0 config with the width and the FPN channels of the rule.
    cfg = detector_speed.rexnet_detector_config(1.3)
    assert cfg.model.backbone.widen_factor == 1.3
    assert list(cfg.model.neck.in_channels) == list(out_channels(1.3, (1, 2, 3, 5)))


@pytest.mark.slow
def test_equalized_heads_give_every_detector_the_same_proposals():
    size = (128, 96)
    proposals = []
    for cfg in (detector_speed.rexnet_detector_config(0.9), load_config(speed.REFERENCE_DETECTOR)):
        model = build_detector(cfg, calibration_size=size).eval()
        assert detector_speed.equalize_heads(model) == list(detector_speed.PREDICTION_LAYERS)
        data = model.data_preprocessor(fake_batch(1, size), False)
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
            proposals.append(model.rpn_head.predict(feats, data['data_samples'], rescale=False)[0].bboxes)
            results = model.predict(data['inputs'], data['data_samples'])
        assert len(results[0].pred_instances) == 0  # uniform scores stay under the threshold
    # ReXNet and ResNet-50 features differ, the proposals do not: the RoI heads do the same work.
    assert proposals[0].shape[0] > 100 and torch.equal(proposals[0], proposals[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message for a machine without CUDA')
def test_cuda_requested_without_gpu(load_tool, capsys):
    with pytest.raises(ValueError, match='no CUDA'):
        check_device('cuda')
    with pytest.raises(SystemExit) as exc:
        load_tool('analysis_tools/benchmark.py').main(['--device', 'cuda', '--part', 'backbones'])
    assert exc.value.code == 1 and capsys.readouterr().err.startswith('error: ')


@pytest.mark.slow
def test_benchmark_tool_end_to_end(tmp_path, capsys, load_tool):
    out = str(tmp_path / 'speed.json')
    benchmark = load_tool('analysis_tools/benchmark.py')
    code = benchmark.main(['--part', 'speed', '--threads', '1', '--widths', '0.9', '--batches', '1', '2',
                           '--size', '64', '--det-size', '128', '96', '--repeats', '1', '--warmup', '0', '--markdown', '--no-timm',
                           '--json', out, '--plot', str(tmp_path / 'speed.png')])
    text = capsys.readouterr().out
    assert code == 0
    report = json.load(open(out))
    assert report['machine']['cores'] >= 1 and report['machine']['torch'] == torch.__version__

    treatments = list(speed.DEFAULT_TREATMENTS)

    # Every model, baselines included, gets every treatment.
    backbones = report['results']['backbones']
    names = ['ReXNet x0.9', 'MobileNetV2', 'EfficientNet-B0', 'ResNet-50']
    labels = [f'{n} ({t})' for n in names for t in treatments]
    assert [r['label'] for r in backbones] == labels * 2
    assert [r['batch'] for r in backbones] == [1] * len(labels) + [2] * len(labels)
    for r in backbones:
        assert len(r['times_ms']) == 1 and r['median_ms'] > 0
        # Ratios to the baselines under the same treatment.
        assert set(r['ratios']) == {'MobileNetV2', 'EfficientNet-B0', 'ResNet-50'} - {r['name']}
        # Every treatment computes the model as built (float64 reference), to float32 rounding.
        assert 0 <= r['notes']['rel_diff'] <= r['notes']['tolerance'] <= 1e-3

    detectors = report['results']['detectors']
    labels = [f'{n} ({t})' for n in ('ReXNet x0.9', 'ResNet-50') for t in treatments]
    assert [r['label'] for r in detectors] == labels
    for r in detectors:
        assert r['input'] == [128, 96] and r['notes']['rois'] > 0 and r['notes']['detections'] == 0
        stages = r['notes']['stages_ms']
        assert {'backbone', 'neck', 'rpn', 'roi_head', 'other'} <= set(stages)
        # One timed run: its stages add up to it (the timer's own overhead aside).
        assert sum(stages.values()) == pytest.approx(r['median_ms'], rel=0.02)
        assert r['notes']['rel_diff'] <= r['notes']['tolerance'] <= 1e-3
        assert r['notes']['fp32_rel_diff'] <= r['notes']['fp32_tolerance'] <= 1e-3
    assert set(detectors[0]['ratios']) == {f'ResNet-50 ({t})' for t in treatments}
    # The markdown tables carry every row, each column's treatment and precision, and no verdict.
    assert text.count('| Faster R-CNN + FPN |') == len(labels)
    assert '| ReXNet x0.9 (eager) | 2 |' in text
    assert '| fused BN + channels-last, fp32: ms |' in text and '| eager (as built), fp32: ms |' in text
    assert 'numeric settings: CPU' in text and 'target' not in text.lower()
    assert open(tmp_path / 'speed.png', 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_roi_align_benchmark(tmp_path, capsys, load_tool):
    """--part roi_align times mmcv's layer and the batched one (both layouts) on the same RoIs and
    reports that they compute the same features."""
    out = str(tmp_path / 'roi.json')
    code = load_tool('analysis_tools/benchmark.py').main(
        ['--part', 'roi_align', '--threads', '1', '--det-size', '200', '120', '--repeats', '2', '--warmup', '0',
         '--json', out])
    text = capsys.readouterr().out
    assert code == 0 and 'max |diff|' in text
    rows = json.load(open(out))['results']['roi_align']
    assert [(r['name'], r['mode']) for r in rows] == [('mmcv RoIAlign', 'NCHW maps'),
                                                       ('batched RoI Align', 'NCHW maps'),
                                                       ('batched RoI Align', 'channels-last maps')]
    for r in rows:
        assert r['input'] == [224, 128] and len(r['times_ms']) == 2 and r['notes']['max_abs_diff'] <= 1e-4
    assert set(rows[1]['ratios']) == {'mmcv RoIAlign (NCHW maps)'}
    with pytest.raises(SystemExit):
        load_tool('analysis_tools/benchmark.py').main(['--part', 'roi_align', '--device', 'cuda'])


def test_what_cannot_run_is_named_and_nothing_left_fails_clearly():
    cpu, skipped = torch.device('cpu'), []
    assert speed.runnable_precisions(['fp16', 'bf16'], cpu, skipped) == ('bf16',)
    assert speed.runnable_treatments(['fused+cl+cudagraph', 'fused+cl'], cpu, skipped) == ('fused+cl',)
    assert skipped[0].startswith('precision fp16: fp16 runs on a CUDA device only')
    assert skipped[1].startswith('treatment fused+cl+cudagraph: cudagraph') and 'needs a CUDA device' in skipped[1]
    with pytest.raises(ValueError, match=r"none of the precisions \['fp16'\] runs on cpu"):
        speed.runnable_precisions(['fp16'], cpu, [])
    with pytest.raises(ValueError, match='none of the treatments .* runs on cpu.*add one that does'):
        speed.runnable_treatments(['fused+cl+compile'], cpu, [])


def test_stage_timer_times_backbone_and_neck_as_one_under_a_lever():
    """A lever (CUDA graph, torch.compile) runs backbone and neck as one call: the timer then has one
    backbone+neck stage, and the stages still add up to the call."""
    model = build_detector(detector_speed.rexnet_detector_config(0.9), calibration_size=None).eval()
    plain = model.extract_feat
    object.__setattr__(model, 'extract_feat', lambda x: plain(x))  # what graph_features installs
    model.features_lever = 'cudagraph'
    timer = detector_speed.StageTimer(model)
    data = model.data_preprocessor(fake_batch(1, (96, 64)), False)
    with torch.no_grad():
        detector_speed._timed_predict(model, data['inputs'], data['data_samples'], timer, torch.device('cpu'))()
    (stages,) = timer.calls
    assert set(stages) == {'backbone+neck', 'rpn', 'roi_head', 'other'}
    assert all(v >= 0 for v in stages.values()) and stages['backbone+neck'] > 0
