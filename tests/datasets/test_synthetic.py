"""The synthetic shapes dataset: valid COCO, exact masks, reproducible, safe to make concurrently."""
import json
import multiprocessing
import os.path as osp

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from rexnet_mmdet.datasets.synthetic import (CLASS_HUES, SHAPE_CLASSES, STAMP_FILE, ShapesSettings,
                                             ann_file_name, generate_shapes_dataset, is_complete,
                                             settings_from_config)

SMALL = ShapesSettings(image_size=96, splits={'train': 10, 'val': 6}, min_objects=0, max_objects=4, seed=3)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return generate_shapes_dataset(str(tmp_path_factory.mktemp('shapes') / 'root'), SMALL)


def test_layout_and_coco_validity(dataset):
    assert is_complete(dataset, SMALL)
    for split, count in SMALL.splits.items():
        coco = COCO(osp.join(dataset, ann_file_name(split)))
        assert len(coco.getImgIds()) == count
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
        for img in coco.loadImgs(coco.getImgIds()):
            pixels = cv2.imread(osp.join(dataset, split, img['file_name']))
            assert pixels.shape == (img['height'], img['width'], 3) == (96, 96, 3)
        for ann in coco.loadAnns(coco.getAnnIds()):
            x, y, w, h = ann['bbox']
            poly = np.array(ann['segmentation'][0]).reshape(-1, 2)
            assert poly.shape[0] >= 3 and ann['iscrowd'] == 0
            # The box is the polygon's extent and lies in the image.
            assert np.allclose([x, y, x + w, y + h], [*poly.min(0), *poly.max(0)], atol=0.02)
            assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96
            # The area is the mask's area (what COCO evaluation uses for small/medium/large).
            assert coco.annToMask(ann).sum() == pytest.approx(ann['area'], rel=0.15)


def test_objects_do_not_overlap_so_masks_are_exact(dataset):
    coco = COCO(osp.join(dataset, ann_file_name('train')))
    for img_id in coco.getImgIds():
        masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id))]
        if len(masks) > 1:
            assert np.stack(masks).sum(0).max() == 1


def test_images_show_the_annotated_shapes(tmp_path):
    settings = ShapesSettings(image_size=96, splits={'val': 8}, colour_by_class=True, seed=1)
    root = generate_shapes_dataset(str(tmp_path / 'root'), settings)
    coco = COCO(osp.join(root, ann_file_name('val')))
    checked = 0
    for img in coco.loadImgs(coco.getImgIds()):
        hsv = cv2.cvtColor(cv2.imread(osp.join(root, 'val', img['file_name'])), cv2.COLOR_BGR2HSV)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
            inside = cv2.erode(coco.annToMask(ann), np.ones((3, 3), np.uint8)).astype(bool)
            ring = cv2.dilate(coco.annToMask(ann), np.ones((7, 7), np.uint8)).astype(bool) & ~coco.annToMask(
                ann).astype(bool)
            # Saturated object on a muted background, in its class's hue (OpenCV hue = degrees / 2).
            assert hsv[..., 1][inside].mean() > hsv[..., 1][ring].mean() + 30
            hue = np.median(hsv[..., 0][inside].astype(float)) * 2
            expected = CLASS_HUES[ann['category_id'] - 1]
            assert min(abs(hue - expected), 360 - abs(hue - expected)) < 35
            checked += 1
    assert checked >= 8


def test_same_settings_same_dataset_and_splits_are_independent(tmp_path):
    a = generate_shapes_dataset(str(tmp_path / 'a'), SMALL)
    b = generate_shapes_dataset(str(tmp_path / 'b'), SMALL)
    more_train = ShapesSettings(**dict(vars(SMALL), splits={'train': 12, 'val': 6}))
    c = generate_shapes_dataset(str(tmp_path / 'c'), more_train)
    for split in SMALL.splits:
        assert json.load(open(osp.join(a, ann_file_name(split)))) == json.load(open(osp.join(b, ann_file_name(split))))
        first = osp.join(split, '000000.png')
        assert np.array_equal(cv2.imread(osp.join(a, first)), cv2.imread(osp.join(b, first)))
    # More training images leave the validation split as it was.
    assert json.load(open(osp.join(a, ann_file_name('val')))) == json.load(open(osp.join(c, ann_file_name('val'))))
    other_seed = generate_shapes_dataset(str(tmp_path / 'd'), ShapesSettings(**dict(vars(SMALL), seed=4)))
    assert json.load(open(osp.join(a, ann_file_name('val')))) != json.load(
        open(osp.join(other_seed, ann_file_name('val'))))


def test_object_counts_follow_the_settings(dataset, tmp_path):
    coco = COCO(osp.join(dataset, ann_file_name('train')))
    assert max(len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()) <= SMALL.max_objects
    sparse = ShapesSettings(image_size=64, splits={'val': 12}, min_objects=0, max_objects=1)
    coco = COCO(osp.join(generate_shapes_dataset(str(tmp_path / 'sparse'), sparse), ann_file_name('val')))
    counts = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
    assert set(counts) == {0, 1}  # images without objects are part of the dataset


def test_second_call_reuses_and_other_settings_are_refused_unless_overwrite(tmp_path):
    root = str(tmp_path / 'root')
    generate_shapes_dataset(root, SMALL)
    stamp = osp.getmtime(osp.join(root, STAMP_FILE))
    generate_shapes_dataset(root, SMALL)
    assert osp.getmtime(osp.join(root, STAMP_FILE)) == stamp
    # A dataset made with other settings (by the tool, say) is the user's: it is never remade silently.
    bigger = ShapesSettings(**dict(vars(SMALL), splits={'train': 3, 'val': 2}))
    with pytest.raises(FileExistsError, match=r"made with other settings \(splits \{'train': 10, 'val': 6\} there, "
                                              r"\{'train': 3, 'val': 2\} wanted\); refusing to replace it"):
        generate_shapes_dataset(root, bigger)
    assert is_complete(root, SMALL) and osp.getmtime(osp.join(root, STAMP_FILE)) == stamp
    generate_shapes_dataset(root, bigger, overwrite=True)
    assert is_complete(root, bigger) and not is_complete(root, SMALL)
    assert len(COCO(osp.join(root, ann_file_name('train'))).getImgIds()) == 3


def test_a_folder_it_did_not_make_is_never_overwritten(tmp_path):
    root = tmp_path / 'mine'
    root.mkdir()
    (root / 'precious.txt').write_text('keep')
    with pytest.raises(FileExistsError, match='not a synthetic shapes dataset'):
        generate_shapes_dataset(str(root), SMALL)
    assert (root / 'precious.txt').read_text() == 'keep'


def _make(root: str) -> bool:
    generate_shapes_dataset(root, SMALL)
    return is_complete(root, SMALL)


def test_concurrent_generation_gives_one_complete_dataset(tmp_path):
    # Every rank of a distributed run may ask for the dataset at the same moment.
    root = str(tmp_path / 'root')
    with multiprocessing.get_context('fork').Pool(3) as pool:
        assert all(pool.map(_make, [root] * 3))
    assert len(COCO(osp.join(root, ann_file_name('val'))).getImgIds()) == SMALL.splits['val']
    assert not [p for p in tmp_path.iterdir() if 'partial' in p.name]


def test_bad_settings_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match='image_size'):
        ShapesSettings(image_size=8)
    with pytest.raises(ValueError, match='min_objects'):
        ShapesSettings(min_objects=3, max_objects=1)
    with pytest.raises(ValueError, match="unknown synthetic dataset settings \\['imgsize'\\]"):
        settings_from_config(dict(imgsize=64))


def test_shapes_dataset_loads_in_mmdet(tmp_path):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    import rexnet_mmdet.datasets  # noqa: F401
    register_all_modules()
    root = str(tmp_path / 'made_on_first_use')
    cfg = dict(type='ShapesDataset', data_root=root, ann_file='annotations/instances_val.json',
               data_prefix=dict(img='val/'), synthetic=dict(image_size=64, splits=dict(train=2, val=3)),
               test_mode=True, pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)])
    # Asked for its metainfo only (as mmdet's init_detector asks for the palette): nothing is made.
    assert DATASETS.build(dict(cfg, lazy_init=True)).metainfo['classes'] == SHAPE_CLASSES
    assert not osp.exists(root)
    dataset = DATASETS.build(cfg)
    assert len(dataset) == 3 and dataset.metainfo['classes'] == SHAPE_CLASSES
    sample = dataset[0]
    assert sample['img'].shape == (64, 64, 3) and len(sample['gt_bboxes']) == len(sample['gt_bboxes_labels'])
