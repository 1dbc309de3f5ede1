"""Checks of a config's datasets, run before any model is built.

mmdet reports a missing or broken dataset late (after the model is built, sometimes in a
data-loader worker) and often without the file's name. These checks look at every COCO-format
dataset a run will use and stop with an error that names the file, the problem and what to do:

- a missing dataset (say, COCO not downloaded): where it looked and how to get it there;
- an annotation file that is not valid JSON or not COCO-shaped;
- annotations pointing to unknown images or categories, boxes that are not 4 numbers;
- image files listed but missing (or empty);
- classes in the config that the annotation file does not have, or a model whose
  ``num_classes`` differs from the dataset's.

For training, what MMDetection would drop (:mod:`.dropped_annotations`): boxes it skips are counted
and named in a warning, and a split with no image left stops the run. Images without annotations
(listed in "images", referred to by no annotation) and grayscale images are otherwise fine: mmdet
drops the former from training (``filter_empty_gt``) and keeps them for evaluation, and loads the
latter as colour.
"""
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .dropped_annotations import dropped_boxes_warning, empty_training_split

#: Annotation files above this size get only a light check (parsing them twice costs time
#: and memory: COCO's instances_train2017.json is 450 MB).
DEEP_CHECK_LIMIT_MB = 200
#: How many examples of one problem an error lists.
MAX_EXAMPLES = 5

COCO_HELP = (
    'To get COCO 2017: download train2017.zip, val2017.zip and annotations_trainval2017.zip from '
    'https://cocodataset.org/#download and unpack them so that {root} holds annotations/, train2017/ '
    'and val2017/. If you already have COCO elsewhere, link it (ln -s /path/to/coco {root_noslash}) '
    'or point the config at it with --cfg-options {key}.dataset.data_root=/path/to/coco/ '
    '(for evaluation also val_evaluator.ann_file / test_evaluator.ann_file). '
    'To see the whole train/evaluate loop without COCO, run the demo (make demo), which uses a '
    'built-in synthetic dataset.')


class DatasetCheckError(RuntimeError):
    """A dataset a run needs is missing or malformed; the message says what to do."""


@dataclass
class DatasetSummary:
    """What a check found in one dataset."""
    loader: str
    ann_file: str
    num_images: int = 0
    num_annotations: int = 0
    categories: List[str] = field(default_factory=list)
    images_without_annotations: int = 0
    deep: bool = True
    warning: Optional[str] = None  # boxes MMDetection drops when training

    def __str__(self) -> str:
        if not self.deep:
            return f'{self.loader}: {self.ann_file} (large file: only its presence was checked)'
        extra = f', {self.images_without_annotations} without annotations' \
            if self.images_without_annotations else ''
        return (f'{self.loader}: {self.ann_file}: {self.num_images} images{extra}, '
                f'{self.num_annotations} annotations, {len(self.categories)} categories')


def _leaf_datasets(dataset_cfg: dict) -> Iterator[dict]:
    """The datasets inside wrappers (RepeatDataset, ClassBalancedDataset, ConcatDataset, ...)."""
    if dataset_cfg is None:
        return
    if 'datasets' in dataset_cfg:
        for sub in dataset_cfg['datasets']:
            yield from _leaf_datasets(sub)
    elif 'dataset' in dataset_cfg:
        yield from _leaf_datasets(dataset_cfg['dataset'])
    else:
        yield dataset_cfg


def _resolve(data_root: str, path: str) -> str:
    # The same rule as mmengine's BaseDataset: relative paths hang off data_root.
    path = osp.expanduser(path)
    if osp.isabs(path) or not data_root:
        return path
    return osp.join(osp.expanduser(data_root), path)


def _is_remote(path: str) -> bool:
    return '://' in str(path)


def _dataset_class(ds_cfg: dict):
    """The dataset class a config names, or None (an unknown type is mmdet's to report)."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    kind = ds_cfg.get('type')
    try:
        return DATASETS.get(kind) if isinstance(kind, str) else kind
    except Exception:
        return None


def reads_coco_files(cls) -> bool:
    """Whether the dataset reads its annotation file the way ``CocoDataset`` does.

    Subclasses that keep CocoDataset's reading (``ShapesDataset``, a user's ``MyCocoDataset``)
    are checked; ones with their own format (LVIS, COCO panoptic, VOC ...) are left to mmdet.
    """
    from mmdet.datasets import CocoDataset
    return (isinstance(cls, type) and issubclass(cls, CocoDataset)
            and cls.load_data_list is CocoDataset.load_data_list
            and cls.parse_data_info is CocoDataset.parse_data_info)


def _dataset_classes(ds_cfg: dict, cls) -> Optional[Tuple[str, ...]]:
    metainfo = ds_cfg.get('metainfo') or {}
    if metainfo.get('classes'):
        return tuple(metainfo['classes'])
    classes = getattr(cls, 'METAINFO', {}).get('classes') if cls is not None else None
    return tuple(classes) if classes else None


def _examples(items: Sequence) -> str:
    shown = ', '.join(map(str, items[:MAX_EXAMPLES]))
    return shown + (f' (and {len(items) - MAX_EXAMPLES} more)' if len(items) > MAX_EXAMPLES else '')


def _fail(path: str, problem: str, todo: str = '') -> None:
    raise DatasetCheckError(f'{path}: {problem}' + (f'. {todo}' if todo else ''))


def load_coco_json(ann_file: str, image_info_ok: bool = False) -> dict:
    """Read a COCO annotation file, with errors that name it and the problem. ``image_info_ok``: also
    take an image-info file (images and categories, no ``annotations``, as COCO's test-dev), read as one
    with no annotations."""
    try:
        with open(ann_file, 'rb') as f:
            raw = f.read()
    except OSError as e:
        _fail(ann_file, f'cannot read the annotation file ({e.strerror})')
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as e:
        _fail(ann_file, f'not a text (JSON) file: {e.reason} at byte {e.start}',
              'A COCO annotation file is a JSON document; check that this is the right file')
    except json.JSONDecodeError as e:
        _fail(ann_file, f'not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}',
              'The file is probably truncated or was edited by hand; download or export it again')
    if not isinstance(data, dict):
        _fail(ann_file, f'the top level is a JSON {type(data).__name__}, expected an object with '
                        f'"images", "annotations" and "categories" (COCO format)')
    if image_info_ok and 'annotations' not in data:
        data['annotations'] = []
    missing = [k for k in ('images', 'annotations', 'categories') if not isinstance(data.get(k), list)]
    if missing:
        _fail(ann_file, f'no list {", ".join(repr(k) for k in missing)} at the top level (it has: '
                        f'{", ".join(map(repr, data)) or "nothing"}); a COCO instance file needs "images", '
                        f'"annotations" and "categories"')
    return data


def check_coco_annotations(data: dict, ann_file: str, for_evaluation: bool) -> List[str]:
    """Structural checks of a parsed COCO file; returns its category names."""
    def need(records: list, what: str, keys: Sequence[str]) -> None:
        for key in keys:
            bad = [i for i, r in enumerate(records) if not isinstance(r, dict) or key not in r]
            if bad:
                _fail(ann_file, f'{len(bad)} of {len(records)} {what} have no "{key}" '
                                f'(e.g. {what} at positions {_examples(bad)})')

    need(data['categories'], 'categories', ('id', 'name'))
    need(data['images'], 'images', ('id', 'file_name', 'width', 'height'))
    ann_keys = ('id', 'image_id', 'category_id', 'bbox') + (('area',) if for_evaluation else ())
    need(data['annotations'], 'annotations', ann_keys)

    image_ids = [img['id'] for img in data['images']]
    if len(set(image_ids)) != len(image_ids):
        seen, dups = set(), []
        for i in image_ids:
            (dups.append(i) if i in seen else seen.add(i))
        _fail(ann_file, f'image ids repeat: {_examples(dups)}', 'Every image needs its own id')
    known_images = set(image_ids)
    known_cats = {c['id'] for c in data['categories']}
    unknown_img = [a['id'] for a in data['annotations'] if a['image_id'] not in known_images]
    if unknown_img:
        _fail(ann_file, f'{len(unknown_img)} annotations refer to image ids that are not in "images" '
                        f'(annotation ids {_examples(unknown_img)})')
    unknown_cat = [a['id'] for a in data['annotations'] if a['category_id'] not in known_cats]
    if unknown_cat:
        _fail(ann_file, f'{len(unknown_cat)} annotations refer to category ids that are not in "categories" '
                        f'(annotation ids {_examples(unknown_cat)})')

    def bad_bbox(box) -> bool:
        return not (isinstance(box, (list, tuple)) and len(box) == 4
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box))
    bad = [a['id'] for a in data['annotations'] if bad_bbox(a['bbox'])]
    if bad:
        _fail(ann_file, f'{len(bad)} annotations have a "bbox" that is not 4 numbers [x, y, width, height] '
                        f'(annotation ids {_examples(bad)})')
    bad_seg = [a['id'] for a in data['annotations']
               if 'segmentation' in a and not isinstance(a['segmentation'], (list, dict))]
    if bad_seg:
        _fail(ann_file, f'{len(bad_seg)} annotations have a "segmentation" that is neither a list of '
                        f'polygons nor an RLE object (annotation ids {_examples(bad_seg)})')
    return [c['name'] for c in data['categories']]


def check_image_files(data: dict, img_dir: str, ann_file: str) -> None:
    """Every image the annotation file lists must exist (and not be empty) under ``img_dir``."""
    listing: Dict[str, Dict[str, int]] = {}

    def entries(folder: str) -> Dict[str, int]:
        if folder not in listing:
            try:
                # One directory listing instead of one stat per image: COCO has 118k images.
                with os.scandir(folder) as it:
                    listing[folder] = {e.name: -1 for e in it}
            except OSError:
                listing[folder] = {}
        return listing[folder]

    missing, empty = [], []
    for img in data['images']:
        path = osp.join(img_dir, str(img['file_name']))
        folder, name = osp.split(path)
        if name not in entries(folder):
            missing.append(path)
        elif osp.getsize(path) == 0:
            empty.append(path)
    if missing:
        where = img_dir if osp.isdir(img_dir) else f'{img_dir} (which does not exist)'
        raise DatasetCheckError(
            f'{ann_file}: {len(missing)} of {len(data["images"])} images it lists are missing under {where}: '
            f'{_examples(missing)}. Check the image folder (data_prefix.img in the config) or restore the '
            f'missing files')
    if empty:
        raise DatasetCheckError(f'{ann_file}: {len(empty)} image files are empty (0 bytes): {_examples(empty)}. '
                                f'Copy them again')


def _missing_dataset_error(loader: str, ds_cfg: dict, ann_file: str) -> DatasetCheckError:
    data_root = ds_cfg.get('data_root') or ''
    looked = f'looked for the annotation file {ann_file} (absolute path {osp.abspath(ann_file)})'
    if data_root and not osp.isdir(osp.expanduser(data_root)):
        looked += f'; the dataset folder data_root={data_root!r} does not exist either'
    is_coco = ds_cfg.get('type') == 'CocoDataset' and 'coco' in (data_root + ann_file).lower()
    name = 'COCO dataset' if is_coco else f'dataset of {loader}'
    root = data_root or osp.dirname(osp.dirname(ann_file)) or '.'
    todo = COCO_HELP.format(root=root, root_noslash=root.rstrip('/'), key=loader) if is_coco else (
        f'Put the dataset there, or point the config at it with your folder in place of /path/to/dataset/: '
        f'--cfg-options {loader}.dataset.data_root=/path/to/dataset/ '
        f'{loader}.dataset.ann_file={ds_cfg.get("ann_file")}')
    return DatasetCheckError(f'{name} not found for {loader} (run from {os.getcwd()}): {looked}. {todo}')


def _num_classes_fields(model_cfg: dict) -> List[Tuple[str, int]]:
    """(name, num_classes) of the heads that predict dataset classes (not the RPN's objectness)."""
    found = []
    if not isinstance(model_cfg, dict):
        return found
    roi = model_cfg.get('roi_head') or {}
    for head in ('bbox_head', 'mask_head'):
        heads = roi.get(head)
        for i, h in enumerate(heads if isinstance(heads, (list, tuple)) else [heads]):
            if isinstance(h, dict) and 'num_classes' in h:
                suffix = f'[{i}]' if isinstance(heads, (list, tuple)) else ''
                found.append((f'model.roi_head.{head}{suffix}.num_classes', h['num_classes']))
    head = model_cfg.get('bbox_head')
    if isinstance(head, dict) and 'num_classes' in head:
        found.append(('model.bbox_head.num_classes', head['num_classes']))
    return found


def _check_classes(loader: str, ann_file: str, classes: Sequence[str], names: List[str],
                   model_cfg: Optional[dict]) -> None:
    """The config's classes against the file's category ``names``, and the heads' num_classes against them."""
    present = [c for c in classes if c in names]
    if not present:
        example = ','.join(map(repr, names))  # every name: the option is pasted as it stands
        raise DatasetCheckError(
            f'{ann_file}: none of the {len(classes)} classes the config expects ({_examples(list(classes))}) '
            f'is a category of this file (its categories: {_examples(names)}). Tell the config the '
            f'dataset\'s classes, e.g. --cfg-options "{loader}.dataset.metainfo.classes=[{example}]", '
            f'and set the model heads\' num_classes to match')
    absent = [c for c in classes if c not in names]
    if absent:
        print(f'[data check] warning: {ann_file} has no category named {_examples(absent)}; '
              f'those classes get no training data', file=sys.stderr)
    for field_name, num in _num_classes_fields(model_cfg or {}):
        if num != len(classes):
            raise DatasetCheckError(
                f'{field_name} is {num} but {loader} uses {len(classes)} classes '
                f'({_examples(list(classes))}) from {ann_file}; set {field_name}={len(classes)}')


def check_dataset(loader: str, ds_cfg: dict, for_evaluation: bool, model_cfg: Optional[dict] = None,
                  deep_limit_mb: float = DEEP_CHECK_LIMIT_MB) -> Optional[DatasetSummary]:
    """Check one (leaf) dataset config; raise ``DatasetCheckError`` on a problem.

    Every dataset with a local ``ann_file`` must have it; COCO instance datasets (see
    ``reads_coco_files``) are checked in depth. Returns None for what was not looked into.
    """
    if not ds_cfg.get('ann_file'):
        return None  # no annotation file (e.g. a folder of images): nothing to look at
    data_root = ds_cfg.get('data_root') or ''
    ann_file = _resolve(data_root, ds_cfg['ann_file'])
    if _is_remote(ann_file) or (ds_cfg.get('backend_args') or {}).get('backend', 'local') != 'local':
        return None  # remote storage: mmdet's file backends report their own errors
    if not osp.isfile(ann_file):
        raise _missing_dataset_error(loader, ds_cfg, ann_file)
    cls = _dataset_class(ds_cfg)
    if not reads_coco_files(cls):
        return None  # another format (LVIS, VOC, panoptic ...): mmdet reads and reports it
    summary = DatasetSummary(loader, ann_file)
    if osp.getsize(ann_file) > deep_limit_mb * 2 ** 20:
        with open(ann_file, 'rb') as f:
            if f.read(64).lstrip()[:1] != b'{':
                _fail(ann_file, 'does not start like a JSON object; a COCO annotation file is a JSON document')
        summary.deep = False
        return summary
    data = load_coco_json(ann_file, image_info_ok=for_evaluation)
    names = check_coco_annotations(data, ann_file, for_evaluation)
    img_prefix = (ds_cfg.get('data_prefix') or {}).get('img', '')
    check_image_files(data, _resolve(data_root, img_prefix), ann_file)

    classes = _dataset_classes(ds_cfg, cls)
    if classes:
        _check_classes(loader, ann_file, classes, names, model_cfg)

    if not for_evaluation and not ds_cfg.get('test_mode'):
        empty = empty_training_split(data, ann_file, classes, ds_cfg.get('filter_cfg'))
        if empty:
            raise DatasetCheckError(empty)
        summary.warning = dropped_boxes_warning(data, ann_file)
    per_image = {a['image_id'] for a in data['annotations']}
    summary.num_images = len(data['images'])
    summary.num_annotations = len(data['annotations'])
    summary.categories = names
    summary.images_without_annotations = sum(1 for img in data['images'] if img['id'] not in per_image)
    return summary


def check_evaluator_ann_file(key: str, evaluator_cfg) -> None:
    for ev in evaluator_cfg if isinstance(evaluator_cfg, (list, tuple)) else [evaluator_cfg]:
        if isinstance(ev, dict) and ev.get('ann_file') and not _is_remote(ev['ann_file']):
            path = osp.expanduser(ev['ann_file'])
            if not osp.isfile(path):
                raise DatasetCheckError(
                    f'{key}.ann_file: {path} not found (absolute path {osp.abspath(path)}); the evaluator reads '
                    f'the ground truth from it. Point it at the annotation file of the evaluated split with '
                    f'--cfg-options {key}.ann_file=PATH')


def prepare_synthetic_datasets(cfg: Config, loaders: Sequence[str]) -> None:
    """Make the synthetic datasets a config uses, if they are not there yet (a folder holding other
    data is refused with a ``DatasetCheckError``, never replaced)."""
    from rexnet_mmdet.datasets.synthetic import generate_shapes_dataset, settings_from_config
    for loader in loaders:
        for ds in _leaf_datasets((cfg.get(loader) or {}).get('dataset')):
            if ds.get('type') == 'ShapesDataset':
                try:
                    generate_shapes_dataset(osp.expanduser(ds['data_root']), settings_from_config(ds.get('synthetic')))
                except FileExistsError as e:
                    raise DatasetCheckError(str(e)) from e


def check_run_data(cfg: Config, loaders: Sequence[str], verbose: bool = True) -> List[DatasetSummary]:
    """Check every dataset of ``loaders`` (e.g. ``('train_dataloader', 'val_dataloader')``).

    Synthetic datasets are made first. Raises ``DatasetCheckError`` on the first problem.
    """
    prepare_synthetic_datasets(cfg, loaders)
    summaries = []
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for_evaluation = not loader.startswith('train')
        for ds in _leaf_datasets(loader_cfg.get('dataset')):
            summary = check_dataset(loader, ds, for_evaluation, cfg.get('model'))
            if summary is not None:
                summaries.append(summary)
                if verbose:
                    print(f'[data check] {summary}', flush=True)
                if summary.warning:
                    print(f'[data check] warning: {summary.warning}', file=sys.stderr, flush=True)
        evaluator_key = loader.replace('_dataloader', '_evaluator')
        if cfg.get(evaluator_key):
            check_evaluator_ann_file(evaluator_key, cfg.get(evaluator_key))
    return summaries


def report_dropped_boxes(cfg: Config, loaders: Sequence[str]) -> None:
    """Log, as warnings, the boxes MMDetection drops from the local COCO-format datasets of ``loaders``
    (what ``ReXNetGuardHook`` does under a training script without the project's data check)."""
    from mmengine.logging import print_log
    for loader in loaders:
        for ds in _leaf_datasets((cfg.get(loader) or {}).get('dataset')):
            if not ds.get('ann_file') or not reads_coco_files(_dataset_class(ds)):
                continue
            ann_file = _resolve(ds.get('data_root') or '', ds['ann_file'])
            if _is_remote(ann_file) or not osp.isfile(ann_file) \
                    or osp.getsize(ann_file) > DEEP_CHECK_LIMIT_MB * 2 ** 20:
                continue
            try:
                data = load_coco_json(ann_file)
                check_coco_annotations(data, ann_file, for_evaluation=False)
            except DatasetCheckError:
                continue  # mmdet read it already; what it could not read it reported
            warning = dropped_boxes_warning(data, ann_file)
            if warning:
                print_log(f'[data check] {warning}', logger='current', level=30)
