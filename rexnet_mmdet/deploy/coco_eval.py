"""COCO box AP of an exported SSD / SSDLite graph on a COCO-format dataset.

::

    from rexnet_mmdet.deploy.runtimes import Detector
    from rexnet_mmdet.deploy.coco_eval import evaluate_coco

    detector = Detector('ssdlite.onnx', backend='openvino', threads=2)
    metrics = evaluate_coco(detector, 'data/coco/annotations/instances_val2017.json', 'data/coco/val2017')
    print(metrics['bbox_mAP'], metrics['bbox_mAP_50'])

The numbers are those of MMDetection's ``CocoMetric`` for the same detections (``tools/test.py``;
it rounds them to 3 decimals): labels map to categories as ``CocoDataset`` maps them for training,
label ``i`` to the ``i``-th of the annotation file's categories, in the file's order, whose names
are among the class names the graph records; boxes go to COCO's ``x, y, w, h`` with ``w = x2 - x1``; pycocotools'
``COCOeval`` runs with ``maxDets`` 100 / 300 / 1000, as ``CocoMetric`` sets them: ``bbox_mAP`` counts
the best 100 detections of an image, ``bbox_mAP_50`` and the others up to 1000 (the graph gives at
most ``max_per_img``).
"""
import contextlib
import io
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence

#: COCOeval's summary values, in its order, under CocoMetric's names.
METRIC_NAMES = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')
#: COCOeval's maxDets as MMDetection's CocoMetric sets them (its proposal_nums).
MAX_DETS = (100, 300, 1000)


def category_ids(categories: Sequence[dict], classes: Optional[Sequence[str]], ann_file: str = '') -> List[int]:
    """The category id of each label, as MMDetection's ``CocoDataset`` assigns labels: the categories
    (in the annotation file's order) whose names are among ``classes``; all of them when the graph
    records no class names."""
    names = [c['name'] for c in categories]
    if not classes:
        return [c['id'] for c in categories]
    missing = [name for name in classes if name not in names]
    if missing:
        raise ValueError(f'the detector\'s classes {missing} are not categories of {ann_file or "the annotations"} '
                         f'({names}): evaluate on the dataset the detector was trained for')
    wanted = set(classes)
    return [c['id'] for c in categories if c['name'] in wanted]


def _read_annotations(ann_file: str, image_root: str):
    """pycocotools' ``COCO`` of ``ann_file``, checked: the file and ``image_root`` exist, categories listed."""
    try:
        from pycocotools.coco import COCO
    except ImportError as e:
        raise ImportError('COCO evaluation needs pycocotools: pip install pycocotools') from e
    if not osp.isfile(ann_file):
        raise ValueError(f'annotation file {ann_file} does not exist: pass a COCO-format json '
                         f'(for the built-in dataset, data/shapes/annotations/instances_val.json)')
    if not osp.isdir(image_root):
        raise ValueError(f'image folder {image_root} does not exist: pass the folder the annotation file\'s '
                         f'file_name entries are relative to')
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco = COCO(ann_file)
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            raise ValueError(f'{ann_file} is not a COCO-format annotation file ({type(e).__name__}: {e})') from e
    categories = coco.dataset.get('categories')
    if not isinstance(categories, list) or not categories:
        raise ValueError(f'{ann_file} lists no categories: a COCO-format annotation file has "images", '
                         f'"annotations" and "categories"')
    return coco


def _detect(detector, coco, image_ids: List[int], ids: List[int], ann_file: str, image_root: str,
            log: Callable[[str], None]) -> List[dict]:
    """``detector``'s detections on ``image_ids`` as COCO results (``x, y, w, h`` boxes, category ids)."""
    import cv2
    results = []
    start, every = time.perf_counter(), max(1, len(image_ids) // 10)
    for n, image_id in enumerate(image_ids, 1):
        file_name = coco.imgs[image_id].get('file_name')
        if not file_name:
            raise ValueError(f'image {image_id} of {ann_file} has no file_name')
        path = osp.join(image_root, file_name)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'{path} (image {image_id} of {ann_file}) is missing or not an image: is '
                             f'{image_root} the folder of this annotation file\'s images?')
        boxes, scores, labels = detector.predict(image)
        if len(labels) and int(labels.max()) >= len(ids):
            raise ValueError(f'the detector predicts label {int(labels.max())}, but {ann_file} has {len(ids)} '
                             f'categories: evaluate on the dataset the detector was trained for')
        for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            results.append(dict(image_id=image_id, category_id=ids[label], score=score,
                                bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]]))
        if n % every == 0 or n == len(image_ids):
            log(f'evaluated {n}/{len(image_ids)} images, {len(results)} detections, '
                f'{time.perf_counter() - start:.1f} s')
    return results


def evaluate_coco(detector, ann_file: str, image_root: str, log: Callable[[str], None] = print,
                  max_images: Optional[int] = None) -> Dict[str, float]:
    """Run ``detector`` (a :class:`~rexnet_mmdet.deploy.runtimes.Detector`) on every image of ``ann_file``
    found under ``image_root`` by its ``file_name``, and return COCO box AP (``bbox_mAP``,
    ``bbox_mAP_50``, ``bbox_mAP_75``, ``bbox_mAP_s/m/l``) with ``images`` and ``detections`` counts.
    ``log`` receives progress and COCOeval's table; ``max_images`` evaluates the first images (in
    order of id) only."""
    import numpy as np

    if max_images is not None and max_images < 1:
        raise ValueError(f'max_images must be at least 1 (or None for all images), got {max_images}')
    coco = _read_annotations(ann_file, image_root)
    from pycocotools.cocoeval import COCOeval
    ids = category_ids(coco.dataset['categories'], detector.classes, ann_file)
    image_ids = sorted(coco.getImgIds())[:max_images]
    if not image_ids:
        raise ValueError(f'{ann_file} lists no images')
    results = _detect(detector, coco, image_ids, ids, ann_file, image_root, log)
    metrics = dict.fromkeys(METRIC_NAMES, 0.0)
    metrics.update(images=len(image_ids), detections=len(results))
    if not results:
        log('no detections: every AP is 0')
        return metrics
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluation = COCOeval(coco, coco.loadRes(results), 'bbox')
        evaluation.params.catIds = ids
        evaluation.params.imgIds = image_ids
        evaluation.params.maxDets = list(MAX_DETS)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    log(table.getvalue().rstrip())
    metrics.update({name: float(np.round(value, 6)) for name, value in zip(METRIC_NAMES, evaluation.stats)})
    return metrics


__all__ = ['METRIC_NAMES', 'MAX_DETS', 'category_ids', 'evaluate_coco']
