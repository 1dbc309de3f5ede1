"""Training throughput: a dry run at a tiny size times the timed steps only, reports images/s, peak
memory and the ratio to the baseline, and runs from the benchmark tool."""
import json
import statistics

import pytest

from rexnet_mmdet.analysis import train_speed
from rexnet_mmdet.analysis.report import training_table

pytestmark = pytest.mark.usefixtures('one_thread')
SSDLITE = ['SSDLite ReXNet x1.0', 'SSDLite MobileNetV2']


def test_baselines_are_the_same_detector_on_resnet_or_mobilenet():
    assert train_speed.baseline_of('Faster R-CNN ReXNet x2.2') == 'Faster R-CNN ResNet-50'
    assert train_speed.baseline_of('Mask R-CNN ReXNet x2.2') == 'Mask R-CNN ResNet-50'
    assert train_speed.baseline_of('SSDLite ReXNet x1.0') == 'SSDLite MobileNetV2'
    with pytest.raises(ValueError, match='unknown detectors'):
        train_speed.benchmark_training(['YOLO'])


def test_the_short_plan_runs_every_detector_with_amp_first():
    names = list(train_speed.TRAIN_DETECTORS)
    runs = train_speed.training_runs(names, 'short')
    assert runs[:len(names)] == [(n, True, False) for n in names]  # a cut table keeps the AMP comparison whole
    assert runs[len(names):] == [(n, False, False) for n in train_speed.SHORT_EXTRA] + \
        [(n, True, True) for n in train_speed.SHORT_EXTRA]
    assert {train_speed.baseline_of(n) for n in train_speed.SHORT_EXTRA} <= set(train_speed.SHORT_EXTRA)
    assert len(train_speed.training_runs(names, 'all')) == 4 * len(names)
    assert train_speed.training_runs(SSDLITE, 'short') == [(n, True, False) for n in SSDLITE]
    with pytest.raises(ValueError, match='unknown training plan'):
        train_speed.training_runs(names, 'long')


def test_training_dry_run_of_ssdlite_against_mobilenetv2():
    results = train_speed.benchmark_training(SSDLITE, amp=(True,), with_cp=(True,), batch_size=2,
                                             image_size=(64, 64), warmup=1, steps=2, log=None)
    assert [r['name'] for r in results] == SSDLITE
    for r in results:
        assert r['amp'] and r['with_cp'] and r['batch'] == 2 and r['padded'] == '64x64' and r['losses_finite']
        assert r['steps'] == len(r['times_ms']) == 2  # the warm-up step is not timed
        assert r['images_per_s'] == pytest.approx(2 / (statistics.median(r['times_ms']) / 1e3))
        assert r['peak_mib'] > 0 and r['precision'] == 'bfloat16'  # AMP on the CPU: bfloat16 autocast
    assert results[0]['vs_baseline'] == pytest.approx(results[0]['images_per_s'] / results[1]['images_per_s'])
    assert 'vs_baseline' not in results[1]
    table = training_table(results, markdown=True)
    assert '| SSDLite ReXNet x1.0 | AMP bfloat16 | yes | 2 | 64x64 |' in table


@pytest.mark.slow
def test_train_part_of_the_benchmark_tool(tmp_path, capsys, load_tool):
    out = str(tmp_path / 'train.json')
    code = load_tool('analysis_tools/benchmark.py').main(
        ['--part', 'train', '--threads', '1', '--train-detectors', SSDLITE[0], '--train-batch', '2',
         '--train-size', '64', '64', '--train-warmup', '1', '--train-steps', '1', '--json', out])
    text = capsys.readouterr().out
    assert code == 0 and 'Training throughput' in text and 'images/s' in text
    results = json.load(open(out))['results']['train']
    assert [(r['amp'], r['with_cp']) for r in results] == [(False, False), (False, True), (True, False), (True, True)]
    assert all(r['device'] == 'cpu' and r['steps'] == 1 for r in results)
