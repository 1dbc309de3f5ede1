"""What MMDetection drops from a COCO-format training split, said before training instead of silently.

MMDetection 3.x's ``CocoDataset`` skips, when it reads the file, every box that is less than 1 pixel wide
or high (negative and zero included), has ``area <= 0``, or lies outside its image; the object is then
not learned. With ``filter_cfg=dict(filter_empty_gt=True)`` (every COCO recipe) a training split keeps
only the images that have at least one annotation of the config's classes ("images without
annotations": images listed under ``"images"`` that no entry of ``"annotations"`` refers to), and with
``min_size`` only those at least that many pixels on their shorter side. Evaluation keeps every image.

:func:`dropped_boxes_warning` counts and names the boxes (a warning: the rest of the data trains);
:func:`empty_training_split` says when no image would be left (the run cannot start; the same line stops a
dataset built with no sample under MMDetection's own tools, :mod:`.empty_dataset`).
"""
from typing import Dict, List, Optional, Sequence

#: How many boxes a warning names.
MAX_NAMED = 5


def _drop_reason(ann: dict, image: Optional[dict]) -> Optional[str]:
    """Why MMDetection's ``CocoDataset.parse_data_info`` skips this annotation's box, or None."""
    x, y, w, h = ann['bbox']
    if image is not None and isinstance(image.get('width'), (int, float)) and isinstance(image.get('height'),
                                                                                        (int, float)):
        inter_w = max(0, min(x + w, image['width']) - max(x, 0))
        inter_h = max(0, min(y + h, image['height']) - max(y, 0))
        if inter_w * inter_h == 0 and w >= 1 and h >= 1:
            return 'outside its image'
    if w < 1 or h < 1:
        return 'width or height below 1 pixel'
    area = ann.get('area')
    if isinstance(area, (int, float)) and area <= 0:
        return 'area <= 0'
    return None


def dropped_boxes_warning(data: dict, ann_file: str) -> Optional[str]:
    """One line that counts the boxes MMDetection will drop when training on ``data`` (a parsed COCO file
    whose structure was checked), by reason, and names the first few; None when it drops none."""
    images: Dict[object, dict] = {img['id']: img for img in data['images']}
    dropped = []
    for ann in data['annotations']:
        reason = _drop_reason(ann, images.get(ann['image_id']))
        if reason:
            dropped.append((reason, ann))
    if not dropped:
        return None
    counts: Dict[str, int] = {}
    for reason, _ in dropped:
        counts[reason] = counts.get(reason, 0) + 1
    named = '; '.join(f"annotation {a['id']} in {images.get(a['image_id'], {}).get('file_name', a['image_id'])} "
                      f"bbox {a['bbox']}" for _, a in dropped[:MAX_NAMED])
    more = f' (and {len(dropped) - MAX_NAMED} more)' if len(dropped) > MAX_NAMED else ''
    by_reason = ', '.join(f'{n} {reason}' for reason, n in counts.items())
    return (f'{ann_file}: MMDetection drops {len(dropped)} of its {len(data["annotations"])} boxes when training '
            f'({by_reason}; bbox is [x, y, width, height]), so those objects are not learned: {named}{more}. '
            f'Fix or remove them in the annotation file')


def empty_training_split(data: dict, ann_file: str, classes: Optional[Sequence[str]],
                         filter_cfg: Optional[dict]) -> Optional[str]:
    """The one-line error when MMDetection would keep no training image of ``data``, else None.

    ``classes``: the config's classes (None: every category of the file); ``filter_cfg``: the dataset's.
    """
    filter_cfg = filter_cfg or {}
    if not data['images']:
        return (f'{ann_file}: the training split is empty: the file lists no images. Point the training '
                f'dataset at its annotation file (train_dataloader.dataset.ann_file)')
    keep_ids = {c['id'] for c in data['categories'] if classes is None or c['name'] in classes}
    with_objects = {a['image_id'] for a in data['annotations'] if a['category_id'] in keep_ids}
    min_size = filter_cfg.get('min_size', 0) or 0
    empty_gt = bool(filter_cfg.get('filter_empty_gt', False))
    kept: List[dict] = [img for img in data['images']
                        if (not empty_gt or img['id'] in with_objects)
                        and min(img['width'], img['height']) >= min_size]
    if kept:
        return None
    if empty_gt and not with_objects:
        why = (f'none of its {len(data["images"])} images has an annotation of the config\'s classes '
               f'({len(data["annotations"])} annotations in the file), and MMDetection drops images without '
               f'annotations from training (filter_cfg.filter_empty_gt=True)')
    else:
        why = f'every image is smaller than filter_cfg.min_size={min_size} on its shorter side'
    return (f'{ann_file}: the training split would be empty: {why}. Add annotations to the file, or point '
            f'train_dataloader.dataset.ann_file at the training annotations')


__all__ = ['dropped_boxes_warning', 'empty_training_split']
