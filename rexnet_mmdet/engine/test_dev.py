"""COCO test-dev submissions: detections on images without annotations, in the format COCO's evaluation
server takes.

COCO publishes test-dev as an image-info file (``image_info_test-dev2017.json``: images and categories, no
annotations). :func:`use_test_dev` points a test config at it and makes mmdet's ``CocoMetric`` write its
results instead of scoring them (``format_only``): ``<prefix>.bbox.json`` (and ``<prefix>.segm.json`` for
Mask R-CNN), one entry per detection with the image id, COCO's own category id (mapped from the class
names through the file's categories), the box as ``[x, y, width, height]`` and the score.
:func:`zip_submission` packs each file as the server expects it: ``detections_test-dev2017_<alg>_results.json``
inside a zip, one zip per result type.
"""
import json
import os
import os.path as osp
import re
import zipfile
from typing import Dict, List, Optional

#: COCO's name for a results file: ``[type]_[testset]_[alg]_results.json``.
SUBMISSION_NAME = 'detections_{testset}_{alg}_results.json'


def _check_image_info(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'--test-dev {path}: no such file; give COCO\'s image_info_test-dev2017.json '
                                f'(from the 2017 test image info download)')
    try:
        with open(path) as f:
            info = json.load(f)
    except ValueError as e:
        raise ValueError(f'--test-dev {path} is not JSON ({e}); give COCO\'s image_info_test-dev2017.json') from None
    if not isinstance(info, dict) or not info.get('images') or not info.get('categories'):
        raise ValueError(f'--test-dev {path} has no "images" or no "categories"; give a COCO image-info file '
                         f'such as image_info_test-dev2017.json')
    return info


def use_test_dev(cfg, image_info: str, out_prefix: str, img_dir: Optional[str] = None) -> List[str]:
    """Make ``cfg`` predict on the images of a COCO image-info file and write the results to
    ``<out_prefix>.bbox.json`` (and ``.segm.json`` where the evaluator has ``segm``).

    Args:
        cfg: an mmengine ``Config`` with a ``test_dataloader`` and a ``CocoMetric`` test evaluator.
        image_info: the image-info file (``image_info_test-dev2017.json``).
        out_prefix: where the JSONs go, without extension.
        img_dir: the folder of those images (COCO: ``test2017/``); default: the config's test images.

    Returns the paths that will be written. Raises ``ValueError`` for a config without ``CocoMetric``
    and ``FileNotFoundError`` / ``ValueError`` for an unusable image-info file.
    """
    _check_image_info(image_info)
    image_info = osp.abspath(image_info)
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset and 'ann_file' not in dataset:  # wrappers such as ClassBalancedDataset
        dataset = dataset.dataset
    dataset.ann_file = image_info
    dataset.test_mode = True
    if img_dir is not None:
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'--test-dev-images {img_dir}: no such folder; give the folder of the '
                                    f'test images (COCO: test2017/)')
        dataset.data_prefix = dict(dataset.get('data_prefix', {}), img=osp.join(osp.abspath(img_dir), ''))
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
    coco = [ev for ev in evaluators if isinstance(ev, dict) and ev.get('type') == 'CocoMetric']
    if not coco:
        raise ValueError('--test-dev writes CocoMetric\'s results, but the config\'s test_evaluator has no '
                         'CocoMetric; use a COCO detection config')
    out_prefix = osp.abspath(out_prefix)
    os.makedirs(osp.dirname(out_prefix), exist_ok=True)
    written = []
    for ev in coco:
        ev.update(format_only=True, ann_file=image_info, outfile_prefix=out_prefix)
        metrics = ev.get('metric', 'bbox')
        for metric in [metrics] if isinstance(metrics, str) else metrics:
            if metric in ('bbox', 'segm'):
                written.append(f'{out_prefix}.{metric}.json')
    return written


def check_alg_name(alg: str) -> str:
    """``alg`` if it can stand in COCO's file name (letters, digits, hyphens), else ``ValueError``."""
    if not re.fullmatch(r'[A-Za-z0-9-]+', alg):
        raise ValueError(f'algorithm name {alg!r}: use letters, digits and hyphens only (it becomes part of '
                         f'the file name COCO\'s server parses, which splits on underscores)')
    return alg


def zip_submission(result_json: str, alg: str, testset: str = 'test-dev2017') -> str:
    """Pack ``<prefix>.bbox.json`` (or ``.segm.json``) as ``<prefix>.bbox.zip`` holding
    ``detections_<testset>_<alg>_results.json``, the name COCO's server expects; returns the zip's path."""
    check_alg_name(alg)
    if not osp.isfile(result_json):
        raise FileNotFoundError(f'{result_json} was not written: the model made no detection on any image')
    zip_path = osp.splitext(result_json)[0] + '.zip'
    with zipfile.ZipFile(zip_path, 'w', zipfile.ZIP_DEFLATED) as zf:
        zf.write(result_json, SUBMISSION_NAME.format(testset=testset, alg=alg))
    return zip_path


def submission_summary(result_json: str) -> Dict[str, int]:
    """Detections, images and categories in a results file (what the tool reports)."""
    with open(result_json) as f:
        results = json.load(f)
    return dict(detections=len(results), images=len({r['image_id'] for r in results}),
                categories=len({r['category_id'] for r in results}))


__all__ = ['SUBMISSION_NAME', 'check_alg_name', 'use_test_dev', 'zip_submission', 'submission_summary']
