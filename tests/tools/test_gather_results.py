"""From finished runs to the table, end to end on the CPU: two tiny runs (Faster and Mask R-CNN) are
trained once, evaluated by tools/test.py, and gathered; the gathered APs must be the ones tools/test.py
printed. A damaged log and a run killed mid-way each get a row that says so. tools/test.py --test-dev
writes a submission whose pycocotools evaluation against the held-out annotations gives the printed AP."""
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rexnet_mmdet.analysis.results import BOX_KEYS, read_run

#: Non-contiguous category ids, as COCO's own: the predictions must come back with these.
CATEGORY_IDS = {1: 3, 2: 7, 3: 11, 4: 19}
#: Every proposal kept: every image gets detections, so a submission must list every image.
TEST_OPTIONS = ['--cfg-options', 'model.test_cfg.rcnn.score_thr=0.0']
#: The six AP lines of COCO's printed summary (AP, AP50, AP75, APs, APm, APl), one block per metric.
PRINTED_AP = re.compile(r'Average Precision +\(AP\) @\[ IoU=[0-9.:]+ +\| area= *\w+ \| maxDets=100 \] = (-?[0-9.]+)')


def _remap_val(data_root: str) -> str:
    with open(osp.join(data_root, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    for cat in coco['categories']:
        cat['id'] = CATEGORY_IDS[cat['id']]
    for ann in coco['annotations']:
        ann['category_id'] = CATEGORY_IDS[ann['category_id']]
    path = osp.join(data_root, 'annotations', 'instances_val_coco_ids.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny_runs):
    """Two tiny runs, validated at their last iteration and evaluated by tools/test.py into their work dirs:
    {name: (work dir, config, checkpoint, printed box APs, printed mask AP or None)}."""
    tmp = tmp_path_factory.mktemp('gather')
    data_root = str(tmp / 'shapes')
    out = {}
    for name, masks in (('faster', False), ('mask', True)):
        config = tiny_runs.write_tiny_config(str(tmp / f'tiny_{name}.py'), data_root, max_iters=30, ckpt_interval=15,
                                             val_interval=15, masks=masks, optimizer=tiny_runs.ADAMW)
        work_dir = str(tmp / 'runs' / name)
        result = tiny_runs.run_tool(['train.py', config, '--work-dir', work_dir])
        assert result.returncode == 0, result.stdout[-3000:]
        ann = _remap_val(data_root)
        options = TEST_OPTIONS + [f'test_dataloader.dataset.ann_file={ann}', f'test_evaluator.ann_file={ann}']
        result = tiny_runs.run_tool(['test.py', config, osp.join(work_dir, 'iter_30.pth'), '--work-dir', work_dir]
                                    + options)
        assert result.returncode == 0, result.stdout[-3000:]
        values = [float(v) for v in PRINTED_AP.findall(result.stdout)]
        assert len(values) == (12 if masks else 6), result.stdout[-3000:]
        printed = [values[:6]] + ([values[6:]] if masks else [])
        out[name] = (work_dir, config, osp.join(work_dir, 'iter_30.pth'), printed, ann)
    return tmp, out


@pytest.mark.slow
def test_gathered_table_has_the_aps_tools_test_printed(runs, tiny_runs):
    tmp, trained = runs
    prefix = str(tmp / 'results')
    result = tiny_runs.run_tool(['analysis_tools/gather_results.py', str(tmp / 'runs'), '--out', prefix, '--plot'])
    assert result.returncode == 0, result.stdout[-3000:]
    with open(prefix + '.json') as f:
        rows = {osp.basename(r['work_dir']): r for r in json.load(f)}
    assert set(rows) == {'faster', 'mask'}
    for name, (_, _, _, printed, _) in trained.items():
        row = rows[name]
        assert row['status'] == 'finished' and row['problems'] == [], row
        assert row['test_checkpoint'] == 'iter_30.pth'
        # tools/test.py prints 3 decimals of the fraction (-1: no object of that size); the table keeps percent.
        for part, numbers in zip(('test_box', 'test_mask'), printed):
            assert {k: round(v / 100, 3) for k, v in row[part].items()} == \
                {k: v for (k, _), v in zip(BOX_KEYS, numbers) if v >= 0}, (part, row[part], numbers)
        if name == 'mask':
            assert row['mask'], 'the last validation\'s mask AP'
        assert row['detector'] == ('MaskRCNN' if name == 'mask' else 'FasterRCNN')
        assert row['backbone'] == 'ReXNet-v1' and row['width'] == 1.0
        assert row['schedule'] == '30 iters' and row['images_per_batch'] == 2 and row['gpus'] == 1
        assert row['progress'] == '30/30 iters' and row['val_at'] == 'iter 30'
        assert row['params'] > 1e6 and row['flops'] > 1e6 and row['flops_input'] == '64x64'
        assert row['train_time_s'] > 0 and row['best_box_ap'] >= row['box']['AP']
    table = open(prefix + '.md').read()
    assert f'{rows["faster"]["test_box"]["AP"]:.1f} (iter_30.pth)' in table
    with open(prefix + '.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    csv_lines = open(prefix + '.csv').read().splitlines()
    assert len(csv_lines) == 3 and 'test_box_AP' in csv_lines[0]


@pytest.mark.slow
def test_damaged_log_gets_an_honest_row(runs, tmp_path):
    _, trained = runs
    work_dir = str(tmp_path / 'damaged')
    shutil.copytree(trained['faster'][0], work_dir)
    scalars = [p for p in _glob(work_dir, 'vis_data') if p.endswith('.json')]
    assert scalars
    for path in scalars:
        text = open(path).read()
        with open(path, 'w') as f:
            f.write(text[: len(text) // 2] + '\x00garbage{"coco/bbox_mAP": \n' + text[len(text) // 2:])
    os.remove(osp.join(work_dir, 'iter_30.pth'))
    with open(osp.join(work_dir, 'iter_15.pth'), 'r+b') as f:  # cut short, as by a full disk
        f.truncate(1000)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'iter_30.pth'))
    row = read_run(work_dir, complexity=False)
    assert any('unreadable line' in p for p in row.problems), row.problems
    assert row.status == 'no checkpoint' and 'no complete checkpoint' in row.problems


@pytest.mark.slow
def test_run_killed_mid_way_gets_an_honest_row(tmp_path, tiny_runs):
    config = tiny_runs.write_tiny_config(str(tmp_path / 'long.py'), str(tmp_path / 'shapes'), max_iters=5000,
                                         ckpt_interval=3)
    work_dir = str(tmp_path / 'killed')
    cmd = [sys.executable, osp.join(tiny_runs.ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir]
    proc = subprocess.Popen(cmd, env=tiny_runs.tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not osp.isfile(osp.join(work_dir, 'iter_6.pth')) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
    row = read_run(work_dir, complexity=False)
    assert row.status == 'unfinished', row
    done = int(row.progress.split('/')[0])
    assert row.progress == f'{done}/5000 iters' and 6 <= done < 5000
    assert not row.box and row.test_box == {}  # never validated: no AP, and none made up


@pytest.mark.slow
def test_test_dev_submission_scores_what_tools_test_printed(runs, tiny_runs, tmp_path):
    _, trained = runs
    for name in ('faster', 'mask'):
        work_dir, config, checkpoint, printed, ann = trained[name]
        with open(ann) as f:
            coco = json.load(f)
        info = str(tmp_path / f'image_info_{name}.json')
        with open(info, 'w') as f:
            json.dump(dict(images=coco['images'], categories=coco['categories']), f)  # no annotations
        out = str(tmp_path / name)
        result = tiny_runs.run_tool(['test.py', config, checkpoint, '--work-dir', out, '--test-dev', info,
                                     '--alg', 'ReXNet'] + TEST_OPTIONS)
        assert result.returncode == 0, result.stdout[-3000:]
        kinds = ('bbox', 'segm') if name == 'mask' else ('bbox',)
        gt = COCO(ann)
        for kind, expected in zip(kinds, (numbers[0] for numbers in printed)):
            path = osp.join(out, 'test-dev', f'ReXNet.{kind}.json')
            with open(path) as f:
                dets = json.load(f)
            assert {d['image_id'] for d in dets} == {img['id'] for img in coco['images']}
            assert {d['category_id'] for d in dets} <= set(CATEGORY_IDS.values())
            assert all(len(d['bbox']) == 4 and d['bbox'][2] >= 0 and d['bbox'][3] >= 0 for d in dets)
            with zipfile.ZipFile(path[:-5] + '.zip') as zf:
                assert zf.namelist() == ['detections_test-dev2017_ReXNet_results.json']
            evaluation = COCOeval(gt, gt.loadRes(path), kind)
            evaluation.params.maxDets = [1, 10, 100]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            assert round(evaluation.stats[0], 3) == expected


@pytest.mark.slow
def test_test_dev_refuses_a_file_without_images(tmp_path, tiny_runs):
    info = tmp_path / 'info.json'
    info.write_text(json.dumps(dict(categories=[])))
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    result = tiny_runs.run_tool(['test.py', tiny_runs.DEMO_CONFIG, str(ckpt), '--test-dev', str(info),
                                 '--work-dir', str(tmp_path / 'w')])
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1].startswith('error: --test-dev') and 'image_info' in result.stdout


def _glob(root, part):
    for folder, _, files in os.walk(root):
        if part in folder:
            yield from (osp.join(folder, f) for f in files)
