"""A trained detector for inference, its checkpoint checked: MMDetection's ``init_detector`` and
``DetInferencer``, with the same arguments in the same order, that stop with one line when the checkpoint
does not fit the model, as ``tools/test.py`` does.

``mmdet.apis.init_detector`` and ``mmdet.apis.DetInferencer`` load whatever part of a checkpoint matches the
model by name and shape, log the rest and return a model that detects nothing (an ImageNet backbone file,
or a x1.3 detector for the x1.0 config). Use them from here instead::

    from rexnet_mmdet.apis import DetInferencer, init_detector
    model = init_detector('configs/ssdlite_rexnet_x1.0.py', 'work_dirs/ssdlite/epoch_600.pth', device='cpu')
    inferencer = DetInferencer('configs/ssdlite_rexnet_x1.0.py', 'work_dirs/ssdlite/epoch_600.pth', device='cpu')

or check a model already built with :func:`check_checkpoint_fits`::

    model = mmdet.apis.init_detector(config, checkpoint, device='cpu')
    check_checkpoint_fits(model, checkpoint)   # raises CheckpointMismatchError if it does not fit
"""
import warnings
from typing import Any, Optional, Sequence, Union

import torch.nn as nn

from mmdet.apis import DetInferencer as _MMDetInferencer

from .engine import check_training_checkpoint, check_weights_fit, load_checkpoint
from .utils.build import dataset_classes, load_config


def check_checkpoint_fits(model: nn.Module, checkpoint: Union[str, dict], min_fit: float = 1.0,
                          source: Optional[str] = None) -> float:
    """Refuse a checkpoint that provides fewer than ``min_fit`` of ``model``'s weights (same name and shape).

    Args:
        model: the detector (or any module) the checkpoint is meant for.
        checkpoint: a path or URL (read with the project's weights-only loader) or a loaded checkpoint.
        min_fit: the share of the model's weights the checkpoint must provide (1.0: every one).
        source: the checkpoint's name in messages (default: the path, or "the checkpoint").

    Returns the share that fits. Raises :class:`~rexnet_mmdet.CheckpointMismatchError`
    (a ``ValueError``) with one line that says how many fit and an example of what does not, and
    :class:`~rexnet_mmdet.MalformedCheckpointError` for a file that holds no weights.
    """
    if isinstance(checkpoint, str):
        source = source or checkpoint
        checkpoint = load_checkpoint(checkpoint, map_location='cpu')
    source = source or 'the checkpoint'
    check_training_checkpoint(checkpoint, source)
    return check_weights_fit(model, checkpoint, source, min_fit)


def _saved_dataset_meta(checkpoint: Any) -> dict:
    """``meta.dataset_meta`` of an mmengine checkpoint (keys lower-cased, as mmdet reads them), or the
    ``CLASSES`` of an MMDetection 2.x one."""
    meta = checkpoint.get('meta') or {}
    saved = {str(k).lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
    if 'classes' not in saved and meta.get('CLASSES'):
        saved['classes'] = meta['CLASSES']
    return saved


def init_detector(config, checkpoint: Optional[str] = None, palette: Union[str, Sequence] = 'none',
                  device: str = 'cuda:0', cfg_options: Optional[dict] = None, *, min_fit: float = 1.0) -> nn.Module:
    """``mmdet.apis.init_detector`` (same arguments, same order) with the checkpoint checked before any weight
    is loaded.

    Args:
        config: a config file, a package config (``'mmdet::ssd/...py'``) or an ``mmengine.Config``.
        checkpoint: the trained checkpoint: a path or URL (read weights-only); None builds the detector
            without loading one (its weights are then the config's initialisation).
        palette: as in ``mmdet.apis.init_detector``.
        device: where the model is put (``'cpu'``, ``'cuda:0'``).
        cfg_options: config entries to override, as ``--cfg-options`` gives them.
        min_fit: keyword only: the share of the model's weights the checkpoint must provide (default 1.0: all).

    Returns the detector in eval mode, with ``model.cfg`` and ``model.dataset_meta`` set. The class
    names come from the checkpoint's meta, else from the config's test dataset (mmdet would
    fall back to COCO's). Raises ``CheckpointMismatchError`` (see :func:`check_checkpoint_fits`).
    """
    from mmdet.apis import init_detector as mmdet_init_detector
    from mmengine.runner import load_state_dict

    cfg = load_config(config) if isinstance(config, str) else config
    loaded = None
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint, map_location='cpu')
        check_training_checkpoint(loaded, checkpoint)
    with warnings.catch_warnings(record=True):
        # "checkpoint is None, use COCO classes by default" (mmdet resets the filters): the classes are set below.
        model = mmdet_init_detector(cfg, None, palette=palette, device='cpu', cfg_options=cfg_options)
    if loaded is not None:
        check_weights_fit(model, loaded, checkpoint, min_fit)
        state = loaded.get('state_dict', loaded)
        if state and all(k.startswith('module.') for k in state):
            state = {k[len('module.'):]: v for k, v in state.items()}
        load_state_dict(model, state, strict=False)

    chosen_palette = model.dataset_meta.get('palette')
    meta = _saved_dataset_meta(loaded) if loaded is not None else {}
    if 'classes' not in meta:
        classes = dataset_classes(model.cfg)
        if classes:
            meta['classes'] = list(classes)
    model.dataset_meta = dict(model.dataset_meta, **meta)
    # mmdet's order for the palette: the argument, the config, the checkpoint.
    if palette != 'none' or chosen_palette != 'random' or 'palette' not in meta:
        model.dataset_meta['palette'] = chosen_palette
    return model.to(device).eval()


class DetInferencer(_MMDetInferencer):
    """``mmdet.apis.DetInferencer`` (same arguments, same order) that refuses weights that do not fit the
    model, with one line, before any is loaded, as :func:`init_detector` does.

    ``min_fit`` (keyword only): the share of the model's weights the checkpoint must provide (default 1.0).
    Everything else, calling it included, is MMDetection's.
    """

    def __init__(self, model=None, weights: Optional[str] = None, device: Optional[str] = None, scope='mmdet',
                 palette: str = 'none', show_progress: bool = True, *, min_fit: float = 1.0) -> None:
        self._source = weights if isinstance(weights, str) else 'the checkpoint'
        self._min_fit = min_fit
        super().__init__(model, weights, device, scope, palette, show_progress)

    def _load_weights_to_model(self, model: nn.Module, checkpoint: Optional[dict], cfg) -> None:
        if checkpoint is not None:
            check_training_checkpoint(checkpoint, self._source)
            check_weights_fit(model, checkpoint, self._source, self._min_fit)
        super()._load_weights_to_model(model, checkpoint, cfg)


__all__ = ['init_detector', 'DetInferencer', 'check_checkpoint_fits']
