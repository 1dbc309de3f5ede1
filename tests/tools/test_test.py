"""tools/test.py on a COCO-format dataset this project did not make: the printed AP table must be
pycocotools' own evaluation of the predictions, with the dataset's own category ids."""
import json
import os.path as osp
import pickle
import re

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

CATEGORIES = [{'id': 3, 'name': 'box', 'supercategory': 'thing'}, {'id': 7, 'name': 'disc', 'supercategory': 'thing'}]


def _make_foreign_coco(root) -> str:
    """8 images in nested folders, non-contiguous category ids, string-free integer ids that do not
    start at 1, one grayscale image and one without objects."""
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(8):
        img = (rng.uniform(60, 120, (64, 64, 3))).astype(np.uint8)
        anns = []
        if i != 5:
            x, y = rng.integers(2, 20, 2)
            cv2.rectangle(img, (int(x), int(y)), (int(x) + 30, int(y) + 24), (255, 255, 255), -1)
            anns.append((3, [float(x), float(y), 31.0, 25.0], 31.0 * 25.0))
            cx, cy = int(rng.integers(46, 52)), int(rng.integers(44, 52))
            cv2.circle(img, (cx, cy), 10, (0, 0, 0), -1)
            anns.append((7, [cx - 10.0, cy - 10.0, 21.0, 21.0], 3.14159 * 100))
        if i == 2:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        name = f'batch{i % 2}/frame_{i:03d}.png'
        (root / 'pictures' / f'batch{i % 2}').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / 'pictures' / name), img)
        images.append(dict(id=1000 + 7 * i, file_name=name, width=64, height=64))
        for cat, box, area in anns:
            annotations.append(dict(id=50 + len(annotations), image_id=1000 + 7 * i, category_id=cat, bbox=box,
                                    area=area, iscrowd=0))
    path = root / 'labels.json'
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=CATEGORIES)))
    return str(path)


FOREIGN = '''
_dataset = dict(_delete_=True, type='CocoDataset', data_root={root!r}, ann_file='labels.json',
                data_prefix=dict(img='pictures/'), metainfo=dict(classes=('box', 'disc')), pipeline=pipeline)
train_dataloader = dict(dataset=dict(_dataset, filter_cfg=dict(filter_empty_gt=True, min_size=8)))
val_dataloader = dict(dataset=dict(_dataset, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={ann!r})
test_evaluator = val_evaluator
'''


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_runs):
    """A tiny detector trained for a few dozen iterations on the foreign dataset."""
    tmp = tmp_path_factory.mktemp('foreign')
    ann = _make_foreign_coco(tmp)
    config = tiny_runs.write_tiny_config(str(tmp / 'foreign.py'), str(tmp / 'unused'), max_iters=40,
                                         ckpt_interval=40,
                                         val_interval=1000, num_classes=2, extra=FOREIGN.format(root=str(tmp), ann=ann))
    # Overfit quickly: a higher learning rate than the tiny default.
    result = tiny_runs.run_tool(['train.py', config, '--work-dir', str(tmp / 'train'),
                                 '--cfg-options', 'optim_wrapper.optimizer.lr=0.02', 'train_cfg.val_interval=1000'])
    assert result.returncode == 0, result.stdout[-3000:]
    return tmp, config, ann, str(tmp / 'train' / 'iter_40.pth')


def _printed_table(output: str) -> list:
    """The 12 numbers of pycocotools' summary, in order, as printed."""
    values = re.findall(r'Average (?:Precision|Recall) +\((?:AP|AR)\) @\[.*?\] = (-?[0-9.]+)', output)
    return [float(v) for v in values[-12:]]


@pytest.mark.slow
def test_evaluation_matches_pycocotools_on_a_foreign_dataset(trained, tiny_runs):
    tmp, config, ann, checkpoint = trained
    out, show = str(tmp / 'preds.pkl'), str(tmp / 'pictures_out')
    result = tiny_runs.run_tool(['test.py', config, checkpoint, '--out', out, '--show-dir', show,
                                 '--work-dir', str(tmp / 'test')])
    assert result.returncode == 0, result.stdout[-3000:]
    printed = _printed_table(result.stdout)
    assert len(printed) == 12

    # Evaluate the dumped predictions independently, mapping labels to the file's own category ids.
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 8
    detections = []
    for pred in predictions:
        inst = pred['pred_instances']
        for box, score, label in zip(inst['bboxes'].tolist(), inst['scores'].tolist(), inst['labels'].tolist()):
            detections.append(dict(image_id=int(pred['img_id']), category_id=CATEGORIES[label]['id'],
                                   bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]], score=score))
    assert detections, 'the model predicted nothing: the comparison would be empty'
    gt = COCO(ann)
    evaluation = COCOeval(gt, gt.loadRes(detections), 'bbox')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert printed == pytest.approx(np.round(evaluation.stats, 3).tolist(), abs=1.5e-3)
    assert evaluation.stats[8] > 0  # AR@100 > 0: the predictions do hit the objects

    # One picture per image (nested folders flattened), written where asked.
    pictures = sorted(p.name for p in (tmp / 'pictures_out').iterdir())
    assert len(pictures) == 8 and all(p.startswith('frame_') for p in pictures)
    # Ground truth on the left, detections on the right.
    assert cv2.imread(str(tmp / 'pictures_out' / pictures[0])).shape == (64, 128, 3)


@pytest.mark.slow
def test_missing_checkpoint_is_a_clear_error(trained, tiny_runs):
    tmp, config, _, _ = trained
    result = tiny_runs.run_tool(['test.py', config, str(tmp / 'nope.pth')])
    assert result.returncode != 0 and 'checkpoint' in result.stdout and 'nope.pth not found' in result.stdout
    assert 'Traceback' not in result.stdout


@pytest.mark.slow
def test_checkpoint_with_code_is_refused(trained, tiny_runs):
    tmp, config, _, _ = trained
    marker = tmp / 'payload_ran'
    evil = tiny_runs.write_malicious_checkpoint(str(tmp / 'evil.pth'), str(marker))
    result = tiny_runs.run_tool(['test.py', config, evil, '--work-dir', str(tmp / 'evil_wd')])
    assert result.returncode != 0
    assert 'refusing to load checkpoint' in result.stdout and not osp.exists(marker)


def _independent_eval(gt: COCO, detections: list, iou_type: str) -> list:
    evaluation = COCOeval(gt, gt.loadRes(detections), iou_type)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats.tolist()


@pytest.mark.slow
def test_mask_rcnn_gets_box_and_mask_ap_and_mask_pictures(tmp_path, tiny_runs):
    data_root = str(tmp_path / 'shapes')
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny_mask.py'), data_root, max_iters=100,
                                         ckpt_interval=100,
                                         masks=True, optimizer=tiny_runs.ADAMW)
    # Trained on the 4 images it is evaluated on, with mmdet's usual random samplers: after a few
    # dozen steps it predicts boxes and masks.
    trained = tiny_runs.run_tool(['train.py', config, '--work-dir', str(tmp_path / 'train'), '--cfg-options',
                                  'train_dataloader.dataset.ann_file=annotations/instances_val.json',
                                  'train_dataloader.dataset.data_prefix.img=val/',
                                  'model.train_cfg.rpn.sampler.type=RandomSampler',
                                  'model.train_cfg.rcnn.sampler.type=RandomSampler'])
    assert trained.returncode == 0, trained.stdout[-3000:]
    out, show = str(tmp_path / 'preds.pkl'), tmp_path / 'pictures'
    result = tiny_runs.run_tool(['test.py', config, str(tmp_path / 'train' / 'iter_100.pth'), '--out', out,
                                 '--show-dir', str(show), '--work-dir', str(tmp_path / 'test')])
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'Evaluating bbox' in result.stdout and 'Evaluating segm' in result.stdout
    values = re.findall(r'Average (?:Precision|Recall) +\((?:AP|AR)\) @\[.*?\] = (-?[0-9.]+)', result.stdout)
    printed_box, printed_mask = [float(v) for v in values[-24:-12]], [float(v) for v in values[-12:]]

    gt = COCO(osp.join(data_root, 'annotations', 'instances_val.json'))
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    boxes, masks = [], []
    for pred in predictions:
        inst = pred['pred_instances']
        for box, score, label, rle in zip(inst['bboxes'].tolist(), inst['scores'].tolist(), inst['labels'].tolist(),
                                          inst['masks']):
            common = dict(image_id=int(pred['img_id']), category_id=label + 1, score=score)
            boxes.append(dict(common, bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]]))
            counts = rle['counts'].decode() if isinstance(rle['counts'], bytes) else rle['counts']
            masks.append(dict(common, segmentation=dict(size=rle['size'], counts=counts)))
    assert boxes, 'the model predicted nothing: the comparison would be empty'
    box_stats, mask_stats = _independent_eval(gt, boxes, 'bbox'), _independent_eval(gt, masks, 'segm')
    assert printed_box == pytest.approx(np.round(box_stats, 3).tolist(), abs=1.5e-3)
    assert printed_mask == pytest.approx(np.round(mask_stats, 3).tolist(), abs=1.5e-3)
    assert max(box_stats) > 0 and max(mask_stats) > 0  # not a comparison of empty evaluations
    assert len(list(show.iterdir())) == 4


def test_a_shapes_dataset_made_with_other_settings_is_never_remade(tmp_path, monkeypatch, capsys, load_tool):
    """The SSDLite demo config finds data/shapes/ made by tools/misc/make_synthetic_dataset.py with other
    settings: tools/test.py stops with one line and the user's images stay as they were."""
    import torch

    from rexnet_mmdet.utils.build import CONFIG_DIR

    monkeypatch.chdir(tmp_path)
    assert load_tool('misc/make_synthetic_dataset.py').main(['--image-size', '64', '--train', '3', '--val', '2']) == 0
    capsys.readouterr()
    shapes = tmp_path / 'data' / 'shapes'
    stamp = (shapes / 'synthetic.json').read_text()
    before = {p.name: p.stat().st_mtime_ns for p in (shapes / 'train').iterdir()}
    checkpoint = tmp_path / 'model.pth'
    torch.save({}, checkpoint)  # never read: the datasets are checked first
    with pytest.raises(SystemExit) as exc:
        load_tool('test.py').main([osp.join(CONFIG_DIR, 'demo', 'ssdlite_rexnet_x0.9_shapes.py'), str(checkpoint),
                                   '--work-dir', str(tmp_path / 'wd')])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith('error: ') and err.count('\n') == 1, err
    assert 'made with other settings' in err and 'image_size 64 there, 160 wanted' in err
    assert (shapes / 'synthetic.json').read_text() == stamp
    assert {p.name: p.stat().st_mtime_ns for p in (shapes / 'train').iterdir()} == before
