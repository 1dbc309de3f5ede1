"""Models from configs, the one place the tools, the inference path and the analyses build them.

- :func:`load_config`: a config file or an installed package's config (``'mmdet::...'``); a
  path that does not exist gets the nearest config names (:func:`missing_config_message`).
- :func:`dataset_classes`: the class names a config's dataset has.
- :func:`build_backbone` / :func:`build_detector`: seeded, random weights by the model's own
  ``init_weights`` (or a backbone checkpoint), never a download, BatchNorm statistics set on
  random images (:func:`rexnet_mmdet.models.norms.reestimate_batchnorm`).
- :func:`fake_batch`: random images with boxes (and masks), as a data loader yields them.
"""
import contextlib
import copy
import difflib
import glob
import os.path as osp
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn

from ..models.norms import reestimate_batchnorm

#: The project's root (configs/ lives there).
PROJECT_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(PROJECT_ROOT, 'configs')


def load_config(config: str, cfg_options: Optional[dict] = None):
    """A config from a file or from an installed package (``'mmdet::faster_rcnn/...py'``),
    with ``cfg_options`` (``{'model.backbone.widen_factor': 1.3}``) merged in."""
    from mmengine.config import Config

    if '::' in config:
        from mmengine.hub import get_config
        cfg = get_config(config)
    elif not osp.isfile(config):
        raise FileNotFoundError(missing_config_message(config))
    else:
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def missing_config_message(config: str) -> str:
    """What to say about a config path that does not exist: the nearest existing config names (in its
    folder, else in configs/), or an example of what to pass."""
    folder = osp.dirname(config)
    candidates = glob.glob(osp.join(folder, '*.py')) if folder and osp.isdir(folder) else []
    if not candidates:
        candidates = [osp.relpath(p) for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
                      if '_base_' not in p]
    by_name = {}
    for path in sorted(candidates):
        by_name.setdefault(osp.basename(path), path)
    near = difflib.get_close_matches(osp.basename(config), list(by_name), n=3, cutoff=0.6)
    if near:
        return f'config file {config} does not exist; did you mean {" or ".join(by_name[n] for n in near)}?'
    return (f'config file {config} does not exist; pass the path of a config, e.g. '
            f'configs/faster_rcnn_rexnet_x1.0_fpn.py, or a package config such as '
            f'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')


def dataset_classes(cfg) -> Optional[Tuple[str, ...]]:
    """The class names of ``cfg``'s test dataset (else its val or train dataset): the dataset's
    ``metainfo.classes``, else its type's ``METAINFO`` (COCO's 80 for ``CocoDataset``); None if unknown.
    Nothing is read from disk."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        ds = (cfg.get(loader) or {}).get('dataset')
        while isinstance(ds, dict) and ('dataset' in ds or ds.get('datasets')):
            ds = ds['dataset'] if 'dataset' in ds else ds['datasets'][0]
        if not isinstance(ds, dict):
            continue
        classes = (ds.get('metainfo') or {}).get('classes')
        if not classes:
            kind = ds.get('type')
            cls = DATASETS.get(kind) if isinstance(kind, str) else kind
            classes = (getattr(cls, 'METAINFO', None) or {}).get('classes')
        if classes:
            return tuple(str(c) for c in classes)
    return None


@contextlib.contextmanager
def quiet_logs(level: str = 'ERROR') -> Iterator[None]:
    """Silence mmengine's current logger below ``level`` (init_weights' per-parameter lines, the
    backbone's random-weights banner) while models are built on purpose with random weights."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def fake_batch(batch_size: int, size_wh: Tuple[int, int], num_boxes: int = 8, num_classes: int = 80,
               with_mask: bool = False) -> Dict[str, list]:
    """Random uint8 images of ``size_wh = (W, H)`` with random boxes (and masks), as a data loader
    yields them: MMDetection's own ``demo_mm_inputs`` (fixed seed, so every call gives the same batch)."""
    from mmdet.testing import demo_mm_inputs

    w, h = size_wh
    return demo_mm_inputs(batch_size, image_shapes=(3, h, w), num_items=[num_boxes] * batch_size,
                          num_classes=num_classes, with_mask=with_mask)


def _without_pretrained(cfg):
    """``cfg`` without its ``Pretrained`` init (other inits, such as a backbone's own default list, stay)."""
    init = cfg.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        cfg['init_cfg'] = None
    elif isinstance(init, (list, tuple)):
        cfg['init_cfg'] = [i for i in init if not (isinstance(i, dict) and i.get('type') == 'Pretrained')] or None
    return cfg


def build_backbone(cfg: dict, seed: int = 0, checkpoint: Optional[str] = None,
                   calibration_size: Optional[int] = 224) -> nn.Module:
    """An MMDetection backbone from its config, in eval mode.

    Weights: ``checkpoint`` (any ImageNet or detector checkpoint
    :func:`~rexnet_mmdet.models.weights.load_backbone_weights` reads) when given; else the
    backbone's own ``init_weights`` after ``torch.manual_seed(seed)``, its BatchNorm statistics set
    on random images of ``calibration_size`` (``None``: left at their defaults). The config's ``init_cfg`` is never followed (no download).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from ..models import ReXNet  # noqa: F401  (registers type='ReXNet')
    from ..models.weights.pretrained import load_backbone_weights
    init_default_scope('mmdet')
    cfg = _without_pretrained(copy.deepcopy(dict(cfg)))
    torch.manual_seed(seed)
    if checkpoint:
        model = MODELS.build(cfg)
        load_backbone_weights(model, checkpoint)
    else:
        with quiet_logs():
            model = MODELS.build(cfg)
            model.init_weights()
        if calibration_size:
            # Random weights with BatchNorm's default statistics (mean 0, variance 1) normalise
            # nothing: activations shrink block by block to subnormal floats, which CPUs compute
            # slowly and which no parity check could fail on. Statistics of the data fix that.
            x = torch.randn(4, 3, calibration_size, calibration_size,
                            generator=torch.Generator().manual_seed(seed))
            reestimate_batchnorm(model, lambda: model(x))
    model.eval()  # not chained: MobileNetV2.train() returns None
    return model


def build_detector(cfg, seed: int = 0, init_weights: bool = True,
                   calibration_size: Optional[Tuple[int, int]] = (640, 416)) -> nn.Module:
    """The detector of ``cfg`` (an ``mmengine.Config``) with random weights, no checkpoint read.

    ``init_weights``: run the model's own ``init_weights`` (after ``torch.manual_seed(seed)``);
    the backbone's ``init_cfg`` is dropped first, so nothing is downloaded. ``calibration_size``:
    ``(W, H)`` of the random images whose activations set the BatchNorm statistics (``None``:
    left at their defaults).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from ..models import ReXNet  # noqa: F401  (registers type='ReXNet')
    cfg = copy.deepcopy(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    # Random weights: no ImageNet download, no local checkpoint needed.
    cfg.model.backbone = _without_pretrained(cfg.model.backbone)
    torch.manual_seed(seed)
    with quiet_logs():
        model = MODELS.build(cfg.model)
        if init_weights:
            model.init_weights()
    if calibration_size:
        # Two images: the SE blocks' BatchNorm sees one value per channel and image.
        data = model.data_preprocessor(fake_batch(2, calibration_size), False)
        reestimate_batchnorm(model, lambda: model.extract_feat(data['inputs']))
    return model


def calibration_image_size(image_size: Tuple[int, int], longest: int = 640) -> Tuple[int, int]:
    """``image_size = (W, H)`` scaled down to at most ``longest`` pixels on its long side: enough
    for BatchNorm statistics, cheaper than the full size."""
    scale = min(1.0, longest / max(image_size))
    return max(32, int(image_size[0] * scale)), max(32, int(image_size[1] * scale))


__all__ = ['PROJECT_ROOT', 'CONFIG_DIR', 'load_config', 'missing_config_message', 'dataset_classes', 'quiet_logs',
           'fake_batch', 'build_backbone', 'build_detector', 'calibration_image_size']
