"""The measuring instruments: interleaved timing, statistics, BatchNorm calibration, the benchmark
and memory tools end to end on tiny settings. No timing or memory target is asserted here: those
are measured by tools/benchmark.py and reported."""
import json
import os.path as osp
import sys

import pytest
import torch

from rexnet_mmdet.analysis import benchmark as bm
from rexnet_mmdet.models.channels import out_channels

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # Correctness only: one thread keeps these tests quick when other work shares the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tool():
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    return benchmark


def test_interleaved_rounds_rotate_and_count():
    calls = []
    cases = {name: (lambda n=name: calls.append(n)) for name in 'abc'}
    times = bm.time_interleaved(cases, repeats=4, warmup=2)
    assert {k: len(v) for k, v in times.items()} == {'a': 4, 'b': 4, 'c': 4}
    assert all(t >= 0 for v in times.values() for t in v)
    # Two warm-up rounds in order, then round r starts with case r mod 3.
    assert calls == list('abc' * 2) + list('abc') + list('bca') + list('cab') + list('abc')
    with pytest.raises(ValueError, match='repeats'):
        bm.time_interleaved(cases, repeats=0)
    # Blocks: each turn calls one case twice in a row; the last turn stops at `repeats`.
    calls.clear()
    times = bm.time_interleaved({'a': cases['a'], 'b': cases['b']}, repeats=3, warmup=0, block=2)
    assert calls == list('aabb') + list('ba') and [len(t) for t in times.values()] == [3, 3]


def test_timing_statistics_and_ratios():
    fast = bm.Timing('detectors', 'ReXNet x0.9', 'fused+cl', 1, (1216, 800), [0.3, 0.1, 0.2, 0.5], width=0.9)
    ref = bm.Timing('detectors', 'ResNet-50', 'fused+cl', 1, (1216, 800), [0.4, 0.4, 0.5, 0.3])
    assert fast.median == pytest.approx(0.25) and fast.minimum == pytest.approx(0.1)
    assert fast.label == 'ReXNet x0.9 (fused+cl)' and ref.label == 'ResNet-50 (fused+cl)' == bm.TARGET_REFERENCE
    bm._add_ratios([fast, ref], [ref.label])
    assert fast.ratios == {ref.label: pytest.approx(0.25 / 0.4)} and ref.ratios == {}
    assert bm.target_verdicts([fast, ref]) == ['ReXNet x0.9 (fused+cl): 0.625x the ResNet-50 (fused+cl) time; '
                                               'target <= 0.7x: meets it']
    d = fast.to_dict()
    assert d['median_ms'] == pytest.approx(250) and d['times_ms'] == pytest.approx([300, 100, 200, 500])


def test_batchnorm_calibration_gives_real_scale_activations():
    cfg = dict(type='ReXNet', widen_factor=1.0, out_indices=(5,))
    x = torch.randn(1, 3, 64, 64)
    raw = bm.build_backbone(cfg, calibration_size=None)
    calibrated = bm.build_backbone(cfg, calibration_size=64)
    with torch.no_grad():
        # Default statistics: Kaiming fan_out init shrinks activations through the depthwise convs.
        assert float(raw(x)[0].abs().max()) < 1e-3
        assert float(calibrated(x)[0].std()) > 0.1
    norms = [m for m in calibrated.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.training and m.momentum == 0.1 for m in norms)


def test_detector_config_for_any_width(tmp_path):
    assert bm.width_name(1) == 'x1.0' and bm.width_name(0.9) == 'x0.9' and bm.width_name(2.2) == 'x2.2'
    cfg = bm.rexnet_detector_config(0.9)
    assert osp.basename(cfg.filename) == 'faster_rcnn_rexnet_x0.9_fpn.py'
    # No config file for x1.3: the x1.0 config with the width and the FPN channels of the rule.
    cfg = bm.rexnet_detector_config(1.3)
    assert cfg.model.backbone.widen_factor == 1.3
    assert list(cfg.model.neck.in_channels) == list(out_channels(1.3, (1, 2, 3, 5)))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        bm.load_config(str(tmp_path / 'missing.py'))


def test_equalized_heads_give_every_detector_the_same_proposals():
    size = (128, 96)
    proposals = []
    for cfg in (bm.rexnet_detector_config(0.9), bm.load_config(bm.REFERENCE_DETECTOR)):
        model = bm.build_detector(cfg, calibration_size=size).eval()
        assert bm.equalize_heads(model) == list(bm.PREDICTION_LAYERS)
        data = model.data_preprocessor(bm.synthetic_batch(1, size), False)
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
            proposals.append(model.rpn_head.predict(feats, data['data_samples'], rescale=False)[0].bboxes)
            results = model.predict(data['inputs'], data['data_samples'])
        assert len(results[0].pred_instances) == 0  # uniform scores stay under the threshold
    # ReXNet and ResNet-50 features differ, the proposals do not: the RoI heads do the same work.
    assert proposals[0].shape[0] > 100 and torch.equal(proposals[0], proposals[1])


def test_synthetic_batch():
    batch = bm.synthetic_batch(2, (96, 64), num_boxes=5, num_classes=3, with_mask=True)
    assert [tuple(i.shape) for i in batch['inputs']] == [(3, 64, 96)] * 2
    for sample in batch['data_samples']:
        boxes = sample.gt_instances.bboxes
        assert boxes.shape == (5, 4)
        assert bool(((boxes[:, 2:] > boxes[:, :2]) & (boxes[:, 2:] <= torch.tensor([95.0, 63.0]))).all())
        assert int(sample.gt_instances.labels.max()) < 3
        assert sample.gt_instances.masks.masks.shape == (5, 64, 96)


def test_peak_memory_sees_an_allocation():
    with bm.PeakMemory(torch.device('cpu')) as mem:
        block = torch.ones(64, 1024, 1024 // 4)  # 64 MiB, written (resident)
        del block
    assert mem.method.startswith('VmHWM')
    assert 60 * 2 ** 20 <= mem.peak_bytes < 200 * 2 ** 20


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message for a machine without CUDA')
def test_cuda_requested_without_gpu():
    with pytest.raises(ValueError, match='no CUDA'):
        bm.check_device('cuda')
    assert _tool().main(['--device', 'cuda', '--part', 'backbones']) == 2


def test_benchmark_tool_end_to_end(tmp_path, capsys):
    out = str(tmp_path / 'speed.json')
    code = _tool().main(['--part', 'speed', '--threads', '1', '--widths', '0.9', '--batches', '1', '2', '--size', '64',
                         '--det-size', '128', '96', '--repeats', '1', '--warmup', '0', '--markdown', '--json', out,
                         '--plot', str(tmp_path / 'speed.png')])
    text = capsys.readouterr().out
    assert code == 0
    report = json.load(open(out))
    assert report['machine']['cores'] >= 1 and report['machine']['torch'] == torch.__version__
    treatments = list(bm.DEFAULT_TREATMENTS)

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
        if r['mode'] != 'eager':  # the same function, to float32 rounding
            assert r['notes']['max_abs_diff_vs_eager'] <= 1e-4 * max(1.0, r['notes']['output_max_abs'])

    detectors = report['results']['detectors']
    labels = [f'{n} ({t})' for n in ('ReXNet x0.9', 'ResNet-50') for t in treatments]
    assert [r['label'] for r in detectors] == labels
    for r in detectors:
        assert r['input'] == [128, 96] and r['notes']['rois'] > 0 and r['notes']['detections'] == 0
        stages = r['notes']['stages_ms']
        assert {'backbone', 'neck', 'rpn', 'roi_head', 'other'} <= set(stages)
        # One timed run: its stages add up to it (the timer's own overhead aside).
        assert sum(stages.values()) == pytest.approx(r['median_ms'], rel=0.02)
    assert set(detectors[0]['ratios']) == {f'ResNet-50 ({t})' for t in treatments}
    # The markdown tables carry every row, both treatment columns, and the verdict on the target.
    assert text.count('| Faster R-CNN + FPN |') == len(labels)
    assert '| ReXNet x0.9 (eager) | 2 |' in text
    assert '| fused BN + channels-last: ms |' in text and '| eager (as built): ms |' in text
    assert 'ReXNet x0.9 (fused+cl): ' in text and 'the ResNet-50 (fused+cl) time; target <= 0.7x' in text
    assert open(tmp_path / 'speed.png', 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


def test_memory_measurement_in_a_fresh_process():
    result = bm.train_step_memory_isolated(osp.join(ROOT, 'configs', 'faster_rcnn_rexnet_x1.0_fpn.py'), True,
                                           threads=1, batch_size=1, image_size=(128, 96), warmup=0)
    assert result['with_cp'] is True and result['scope'] == 'detector'
    assert result['padded'] == '128x96' and result['batch'] == 1
    assert result['method'].startswith('VmHWM')
    # A training step of a detector allocates at least its gradients.
    assert result['peak_mib'] >= result['grad_mib'] > 0
    table = bm.memory_table([dict(result, with_cp=False), result])
    assert 'faster_rcnn_rexnet_x1.0_fpn.py' in table and '0%' in table
    with pytest.raises(ValueError, match='scope'):
        bm.train_step_memory('unused.py', False, scope='neck')
