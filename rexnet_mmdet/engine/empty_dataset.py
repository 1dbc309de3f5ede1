"""A dataset left with no sample stops with its file's name and the reason.

mmengine's datasets serialise their samples right after loading and filtering them; with none left,
numpy stops the run with "need at least one array to concatenate", which names neither the file
nor the cause. This project's tools check the datasets before building anything (:mod:`.data_checks`),
but MMDetection's own ``tools/train.py`` builds them before any hook can look. So
``register_empty_dataset_check()`` (called when :mod:`rexnet_mmdet.engine` is imported, which a
config's ``custom_imports`` does) wraps ``BaseDataset._serialize_data``: an empty sample list raises
:class:`DatasetCheckError` naming the annotation file and, for a COCO-format training split, why
MMDetection kept no image (:func:`.dropped_annotations.empty_training_split`). Datasets with samples
are serialised exactly as before.
"""
import os.path as osp
from typing import Optional

from mmengine.dataset import BaseDataset

from .data_checks import DEEP_CHECK_LIMIT_MB, DatasetCheckError, load_coco_json, reads_coco_files
from .dropped_annotations import empty_training_split


def _coco_reason(dataset) -> Optional[str]:
    """The training-split message for a local file of a dataset that reads COCO files as ``CocoDataset``
    does (the datasets :func:`.data_checks.check_dataset` looks into), else None."""
    ann_file = getattr(dataset, 'ann_file', '') or ''
    if (getattr(dataset, 'test_mode', True) or not reads_coco_files(type(dataset)) or not osp.isfile(ann_file)
            or osp.getsize(ann_file) > DEEP_CHECK_LIMIT_MB * 2 ** 20):
        return None
    try:
        data = load_coco_json(ann_file)
        classes = dataset.metainfo.get('classes')
        return empty_training_split(data, ann_file, list(classes) if classes else None, dataset.filter_cfg)
    except (DatasetCheckError, KeyError, TypeError):  # a file mmdet read but that is not whole COCO
        return None


def empty_dataset_message(dataset) -> str:
    """The one-line error for ``dataset`` (a BaseDataset) that loaded to no sample."""
    reason = _coco_reason(dataset)
    if reason:
        return reason
    ann_file = getattr(dataset, 'ann_file', '') or '(no ann_file)'
    split = 'evaluation' if getattr(dataset, 'test_mode', False) else 'training'
    return (f'{ann_file}: the {split} dataset ({type(dataset).__name__}) has no sample left after loading and '
            f'filtering (filter_cfg={getattr(dataset, "filter_cfg", None)}). Check that the file lists images '
            f'with annotations of the config\'s classes, or point the dataset at the right ann_file')


def register_empty_dataset_check() -> None:
    """Make every mmengine dataset that serialises its samples stop on an empty list with
    :func:`empty_dataset_message` (idempotent)."""
    original = BaseDataset._serialize_data
    if getattr(original, '_rexnet_checks_empty', False):
        return

    def _serialize_data(self):
        if len(self.data_list) == 0:
            raise DatasetCheckError(empty_dataset_message(self))
        return original(self)

    _serialize_data._rexnet_checks_empty = True
    _serialize_data.__doc__ = original.__doc__
    BaseDataset._serialize_data = _serialize_data


__all__ = ['empty_dataset_message', 'register_empty_dataset_check']
