"""Dataset checks before a run: every kind of bad input stops with the file and the problem named."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from rexnet_mmdet.engine.data_checks import DatasetCheckError, check_run_data
from rexnet_mmdet.utils.build import CONFIG_DIR


def _coco(images, annotations, categories=({'id': 3, 'name': 'box'}, {'id': 7, 'name': 'disc'})):
    return dict(images=list(images), annotations=list(annotations), categories=list(categories))


@pytest.fixture
def dataset(tmp_path):
    """A small COCO-format dataset: colour and grayscale images, one without annotations."""
    root = tmp_path / 'data'
    (root / 'images' / 'sub').mkdir(parents=True)
    images, annotations = [], []
    for i in range(4):
        name = f'sub/img{i}.png'
        img = np.full((48, 64, 3), 40, np.uint8)
        cv2.rectangle(img, (10, 8), (40, 30), (0, 200, 0), -1)
        if i == 1:  # grayscale
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(root / 'images' / name), img)
        images.append(dict(id=10 + i, file_name=name, width=64, height=48))
        if i != 2:  # image 12 has no annotations
            annotations.append(dict(id=100 + i, image_id=10 + i, category_id=3, bbox=[10, 8, 31, 23],
                                    area=713.0, iscrowd=0, segmentation=[[10, 8, 41, 8, 41, 31, 10, 31]]))
    (root / 'ann.json').write_text(json.dumps(_coco(images, annotations)))
    return root


def _config(root, loaders=('train_dataloader', 'val_dataloader'), classes=('box', 'disc'), num_classes=2,
            ann='ann.json', evaluator_ann=None) -> Config:
    ds = dict(type='CocoDataset', data_root=str(root), ann_file=ann, data_prefix=dict(img='images/'),
              metainfo=dict(classes=classes))
    cfg = dict(model=dict(roi_head=dict(bbox_head=dict(num_classes=num_classes)),
                          rpn_head=dict(num_classes=1)))
    for loader in loaders:
        cfg[loader] = dict(dataset=dict(ds))
    if evaluator_ann is not None:
        cfg['val_evaluator'] = dict(type='CocoMetric', ann_file=evaluator_ann)
    return Config(cfg)


def test_valid_dataset_passes_with_grayscale_and_unannotated_images(dataset):
    summaries = check_run_data(_config(dataset), ['train_dataloader', 'val_dataloader'], verbose=False)
    assert len(summaries) == 2
    assert summaries[0].num_images == 4 and summaries[0].num_annotations == 3
    assert summaries[0].images_without_annotations == 1 and summaries[0].categories == ['box', 'disc']


def test_grayscale_and_unannotated_images_load_in_mmdet(dataset):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    ds = DATASETS.build(dict(
        type='CocoDataset', data_root=str(dataset), ann_file='ann.json', data_prefix=dict(img='images/'),
        metainfo=dict(classes=('box', 'disc')), test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]))
    samples = {osp.basename(s['img_path']): s for s in (ds[i] for i in range(len(ds)))}
    assert samples['img1.png']['img'].shape == (48, 64, 3)  # grayscale file, colour array
    assert len(samples['img2.png']['gt_bboxes']) == 0


def test_malformed_json_names_file_and_position(dataset):
    (dataset / 'ann.json').write_text('{"images": [\n{"id": 1,}\n]}')
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)
    message = str(err.value)
    assert str(dataset / 'ann.json') in message and 'not valid JSON' in message and 'line 2' in message


def test_truncated_json_is_reported(dataset):
    text = (dataset / 'ann.json').read_text()
    (dataset / 'ann.json').write_text(text[:len(text) // 2])
    with pytest.raises(DatasetCheckError, match='ann.json: not valid JSON'):
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)


def test_json_that_is_not_coco(dataset):
    (dataset / 'ann.json').write_text(json.dumps({'images': [], 'labels': []}))
    with pytest.raises(DatasetCheckError, match="ann.json: no list 'annotations', 'categories' at the top level"):
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)


def test_an_image_info_file_is_a_test_set_but_no_training_set(dataset):
    """COCO's test-dev comes as images and categories without annotations (tools/test.py --test-dev)."""
    data = json.loads((dataset / 'ann.json').read_text())
    del data['annotations']
    (dataset / 'info.json').write_text(json.dumps(data))
    summaries = check_run_data(_config(dataset, ('test_dataloader',), ann='info.json'), ['test_dataloader'],
                               verbose=False)
    assert summaries[0].num_images == 4 and summaries[0].num_annotations == 0
    with pytest.raises(DatasetCheckError, match="info.json: no list 'annotations' at the top level"):
        check_run_data(_config(dataset, ann='info.json'), ['train_dataloader'], verbose=False)


def test_annotation_of_unknown_image_or_bad_box(dataset):
    data = json.loads((dataset / 'ann.json').read_text())
    data['annotations'][0]['image_id'] = 999
    (dataset / 'ann.json').write_text(json.dumps(data))
    with pytest.raises(DatasetCheckError, match=r'refer to image ids that are not in "images" \(annotation ids 100\)'):
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)
    data['annotations'][0]['image_id'] = 10
    data['annotations'][1]['bbox'] = [1, 2, 3]
    (dataset / 'ann.json').write_text(json.dumps(data))
    with pytest.raises(DatasetCheckError, match='not 4 numbers'):
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)


def test_evaluation_needs_area(dataset):
    data = json.loads((dataset / 'ann.json').read_text())
    del data['annotations'][0]['area']
    (dataset / 'ann.json').write_text(json.dumps(data))
    check_run_data(_config(dataset, loaders=('train_dataloader',)), ['train_dataloader'], verbose=False)
    with pytest.raises(DatasetCheckError, match='have no "area"'):
        check_run_data(_config(dataset, loaders=('val_dataloader',)), ['val_dataloader'], verbose=False)


def test_missing_image_names_the_path(dataset):
    os.remove(dataset / 'images' / 'sub' / 'img3.png')
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)
    message = str(err.value)
    assert '1 of 4 images it lists are missing' in message
    assert str(dataset / 'images' / 'sub' / 'img3.png') in message


def test_empty_image_file(dataset):
    (dataset / 'images' / 'sub' / 'img0.png').write_bytes(b'')
    with pytest.raises(DatasetCheckError, match=r'image files are empty \(0 bytes\): .*img0.png'):
        check_run_data(_config(dataset), ['train_dataloader'], verbose=False)


def test_undecodable_image_fails_naming_the_file(dataset):
    # Content is not checked up front (it would mean decoding every image); mmdet's loader names it.
    from mmcv.transforms import LoadImageFromFile
    bad = dataset / 'images' / 'sub' / 'img0.png'
    bad.write_bytes(b'not an image at all')
    with pytest.raises(Exception, match='img0.png'):
        LoadImageFromFile()(dict(img_path=str(bad)))


def test_classes_missing_from_the_file(dataset):
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(_config(dataset, classes=('person', 'car'), num_classes=2), ['train_dataloader'],
                       verbose=False)
    message = str(err.value)
    assert 'none of the 2 classes' in message and "'box'" in message and 'metainfo.classes' in message


def test_model_num_classes_must_match(dataset):
    with pytest.raises(DatasetCheckError, match=r'model.roi_head.bbox_head.num_classes is 80 .* 2 classes'):
        check_run_data(_config(dataset, num_classes=80), ['train_dataloader'], verbose=False)


def test_missing_evaluator_annotation_file(dataset):
    with pytest.raises(DatasetCheckError, match='val_evaluator.ann_file: .*nope.json not found'):
        check_run_data(_config(dataset, evaluator_ann=str(dataset / 'nope.json')), ['val_dataloader'],
                       verbose=False)


def test_missing_coco_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/coco here
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x1.0_fpn.py'))
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(cfg, ['train_dataloader', 'val_dataloader'], verbose=False)
    message = str(err.value)
    assert message.startswith('COCO dataset not found for train_dataloader')
    assert 'data/coco/annotations/instances_train2017.json' in message
    assert str(tmp_path / 'data' / 'coco' / 'annotations' / 'instances_train2017.json') in message
    assert 'https://cocodataset.org' in message and 'ln -s' in message and 'make demo' in message


def _pasted_options(message: str) -> dict:
    """The ``--cfg-options`` a message suggests, parsed as the tools parse them (the shell's quotes removed)."""
    import argparse
    import itertools

    from mmengine.config import DictAction

    rest = message.split('--cfg-options ', 1)[1]
    if rest.startswith('"'):
        words = [rest[1:rest.index('"', 1)]]
    else:
        words = list(itertools.takewhile(lambda w: '=' in w, rest.split(' ')))
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options'] + words).cfg_options


def test_hints_paste_as_they_stand(dataset, tmp_path):
    """No literal ``...`` in a suggested command: it is set as a value when pasted."""
    cfg = _config(tmp_path / 'elsewhere')
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(cfg, ['train_dataloader'], verbose=False)
    message = str(err.value)
    assert '...' not in message
    assert _pasted_options(message) == {'train_dataloader.dataset.data_root': '/path/to/dataset/',
                                        'train_dataloader.dataset.ann_file': 'ann.json'}
    # More categories than an error lists as examples: the suggested classes are all of them.
    names = ['box', 'disc', 'cone', 'ring', 'cube', 'star']
    data = json.loads((dataset / 'ann.json').read_text())
    data['categories'] = [dict(id=3 + i, name=n) for i, n in enumerate(names)]
    (dataset / 'ann.json').write_text(json.dumps(data))
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(_config(dataset, classes=('person', 'car')), ['train_dataloader'], verbose=False)
    message = str(err.value)
    assert '...' not in message
    assert _pasted_options(message) == {'train_dataloader.dataset.metainfo.classes': names}


def _rewrite(root, edit) -> None:
    data = json.loads((root / 'ann.json').read_text())
    edit(data)
    (root / 'ann.json').write_text(json.dumps(data))


def test_boxes_mmdet_drops_are_counted_and_named(dataset, capsys):
    def degenerate(data):
        data['annotations'][0]['bbox'] = [10, 8, -5, 23]     # negative width
        data['annotations'][1]['bbox'] = [10, 8, 31, 0]      # zero height
        data['annotations'][2]['bbox'] = [70, 8, 10, 10]     # right of its 64 px image
    _rewrite(dataset, degenerate)
    summary = check_run_data(_config(dataset, loaders=('train_dataloader',)), ['train_dataloader'])[0]
    assert summary.warning == (
        f'{dataset}/ann.json: MMDetection drops 3 of its 3 boxes when training (2 width or height below 1 pixel, '
        '1 outside its image; bbox is [x, y, width, height]), so those objects are not learned: annotation 100 in '
        'sub/img0.png bbox [10, 8, -5, 23]; annotation 101 in sub/img1.png bbox [10, 8, 31, 0]; annotation 103 in '
        'sub/img3.png bbox [70, 8, 10, 10]. Fix or remove them in the annotation file')
    assert f'[data check] warning: {summary.warning}' in capsys.readouterr().err
    # Evaluation keeps what it reads: no warning there.
    assert check_run_data(_config(dataset, loaders=('val_dataloader',)), ['val_dataloader'])[0].warning is None


def test_a_training_split_left_empty_stops_with_one_line(dataset):
    _rewrite(dataset, lambda data: data.update(annotations=[]))
    cfg = _config(dataset, loaders=('train_dataloader', 'val_dataloader'))
    cfg.train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=True, min_size=32)
    with pytest.raises(DatasetCheckError) as err:
        check_run_data(cfg, ['train_dataloader'], verbose=False)
    assert str(err.value) == (
        f"{dataset}/ann.json: the training split would be empty: none of its 4 images has an annotation of the "
        "config's classes (0 annotations in the file), and MMDetection drops images without annotations from "
        "training (filter_cfg.filter_empty_gt=True). Add annotations to the file, or point "
        "train_dataloader.dataset.ann_file at the training annotations")
    # Without filter_empty_gt, and for evaluation, every image stays.
    cfg.train_dataloader.dataset.filter_cfg = None
    assert check_run_data(cfg, ['train_dataloader', 'val_dataloader'], verbose=False)[0].num_images == 4


def test_a_dataset_built_by_mmdet_with_no_sample_left_names_its_file(dataset):
    """What MMDetection's own tools/train.py does (build the dataset, no check first): a training split whose
    images all lack annotations, and an evaluation file with no images, stop with the file named; a split with
    samples builds as before."""
    import rexnet_mmdet.engine  # noqa: F401  (a config's custom_imports imports it)
    from mmdet.datasets import CocoDataset
    data = json.loads((dataset / 'ann.json').read_text())
    (dataset / 'no_annotations.json').write_text(json.dumps(dict(data, annotations=[])))
    (dataset / 'no_images.json').write_text(json.dumps(dict(data, images=[], annotations=[])))
    common = dict(data_root=str(dataset), data_prefix=dict(img='images/'), metainfo=dict(classes=('box', 'disc')),
                  pipeline=[])
    with pytest.raises(DatasetCheckError, match=r'no_annotations\.json: the training split would be empty: none '
                                                r'of its 4 images has an annotation'):
        CocoDataset(ann_file='no_annotations.json', filter_cfg=dict(filter_empty_gt=True), **common)
    with pytest.raises(DatasetCheckError, match=r'no_images\.json: the evaluation dataset \(CocoDataset\) has no '
                                                r'sample left'):
        CocoDataset(ann_file='no_images.json', test_mode=True, **common)
    assert len(CocoDataset(ann_file='ann.json', filter_cfg=dict(filter_empty_gt=True), **common)) == 3
