"""mmengine hook-up of the safe loader, checks of what a checkpoint holds, atomic saving and resume.

``register_safe_checkpoint_loader()`` (called when this package is imported) makes
:func:`rexnet_mmdet.models.weights.safe_load.load_checkpoint` mmengine's loader for every scheme
mmengine's ``CheckpointLoader`` has registered (local paths, ``http(s)://``, ``torchvision://``,
``open-mmlab://``, ``mmcls://``, ``s3://`` ...), and replaces mmengine's own loader functions in
``mmengine.runner.checkpoint`` (which call one another directly), so ``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained')`` (mmengine's ``PretrainedInit`` too), ``Runner.load_checkpoint``,
mmdet's ``init_detector`` and every tool read checkpoints through it.

``CheckpointCheckHook`` refuses, with one line, a checkpoint whose content is malformed or whose
weights do not fit the model (``tools/train.py`` and ``tools/test.py`` add it); ``prepare_checkpoints``
sets a config up with it and with atomic checkpoint writes (``AtomicLocalBackend``: a run killed
while saving never leaves a partial ``iter_*.pth``).
"""
import os
import os.path as osp
import re
import zipfile
from typing import Any, Dict, Optional

import torch
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from ..models.weights.safe_load import (CHECKPOINT_GLOBALS, CheckpointError, CheckpointMismatchError,
                                        CheckpointNotFoundError, CorruptCheckpointError, MalformedCheckpointError,
                                        UnsafeCheckpointError, load_checkpoint, load_checkpoint_file)

#: Kept under its earlier name: what a training checkpoint may hold besides tensors and containers.
TRAINING_CHECKPOINT_GLOBALS = CHECKPOINT_GLOBALS

#: The schemes mmengine 0.10 registers; any others registered before this runs are taken over too.
MMENGINE_SCHEMES = ('', 'http://', 'https://', 'pavi://', r'(\S+\:)?s3://', r'(\S+\:)?petrel://',
                    'modelzoo://', 'torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://')


# ----------------------------------------------------------------------------- mmengine loader
def load_from_safe_loader(filename: str, map_location=None, *args, **kwargs) -> Any:
    """mmengine's loader signature around :func:`load_checkpoint` (mmengine logs it as ``safe_loader``)."""
    return load_checkpoint(filename, map_location)


def _load_url(url: str, model_dir: Optional[str] = None, map_location=None, *args, **kwargs) -> Any:
    # Stands in for mmengine's load_url (torch.load without weights_only on the downloaded file).
    return load_checkpoint(url, map_location)


def register_safe_checkpoint_loader() -> None:
    """Make mmengine read every checkpoint, from any source, with the safe loader (idempotent)."""
    prefixes = sorted(set(MMENGINE_SCHEMES) | set(CheckpointLoader._schemes))
    CheckpointLoader.register_scheme(prefixes=prefixes, loader=load_from_safe_loader, force=True)
    # mmengine's scheme loaders call load_from_http / load_url / torch.load directly: whoever
    # calls one of them by name gets the safe loader as well.
    for name in ('load_from_local', 'load_from_http', 'load_from_pavi', 'load_from_ceph',
                 'load_from_torchvision', 'load_from_openmmlab', 'load_from_mmcls'):
        if hasattr(mmengine_checkpoint, name):
            setattr(mmengine_checkpoint, name, load_from_safe_loader)
    mmengine_checkpoint.load_url = _load_url


# ----------------------------------------------------------------------------- what a checkpoint holds
def checkpoint_state_dict(checkpoint: Any, source: str) -> Dict[str, torch.Tensor]:
    """The model weights of a loaded checkpoint (``state_dict`` entry or the dict itself), checked."""
    if not isinstance(checkpoint, dict):
        raise MalformedCheckpointError(
            f'checkpoint {source} holds a {type(checkpoint).__name__}, not a dict of weights (or an mmengine '
            f'checkpoint dict with a state_dict entry)')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise MalformedCheckpointError(f'checkpoint {source}: its state_dict is a {type(state).__name__}, not a '
                                       f'dict of weights')
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad and state is checkpoint and 'meta' in checkpoint:
        bad = [k for k in bad if k not in ('meta', 'message_hub', 'optimizer', 'param_schedulers')]
    if bad:
        raise MalformedCheckpointError(
            f'checkpoint {source}: {"its state_dict" if state is not checkpoint else "it"} has entries that are '
            f'not tensors ({", ".join(repr(k)[:40] for k in bad[:3])}); expected a dict of weight tensors')
    if not state:
        raise MalformedCheckpointError(f'checkpoint {source} holds no weights (empty state_dict)')
    return state


def check_training_checkpoint(checkpoint: Any, source: str, resume: bool = False) -> None:
    """Refuse, with one line, a checkpoint whose layout mmengine would trip over.

    Always: a dict, weights as a dict of tensors, ``meta`` (if any) a dict. For ``resume``
    also what ``Runner.resume`` reads: ``meta.iter`` / ``meta.epoch`` as integers, a
    ``message_hub`` dict and, if present, ``optimizer`` (dict) and ``param_schedulers``.
    """
    checkpoint_state_dict(checkpoint, source)
    meta = checkpoint.get('meta')
    if 'meta' in checkpoint and not isinstance(meta, dict):
        raise MalformedCheckpointError(f'checkpoint {source}: its meta is a {type(meta).__name__}, not a dict')
    if not resume:
        return
    what = 'a training checkpoint written by tools/train.py (mmengine), not a weights-only file'
    if meta is None:
        raise MalformedCheckpointError(f'cannot resume from {source}: it has no meta (iteration, epoch); '
                                       f'--resume needs {what}. To start from its weights use load_from')
    for key in ('iter', 'epoch'):
        if type(meta.get(key)) is not int or meta[key] < 0:
            raise MalformedCheckpointError(f'cannot resume from {source}: meta[{key!r}] is {meta.get(key)!r:.40}, '
                                           f'not a non-negative integer; --resume needs {what}')
    hub = checkpoint.get('message_hub')
    if not isinstance(hub, dict) or not isinstance(hub.get('log_scalars', {}), dict) \
            or not isinstance(hub.get('runtime_info', {}), dict):
        raise MalformedCheckpointError(f'cannot resume from {source}: its message_hub is missing or malformed; '
                                       f'--resume needs {what}')
    if 'optimizer' in checkpoint and not isinstance(checkpoint['optimizer'], dict):
        raise MalformedCheckpointError(f'cannot resume from {source}: its optimizer state is a '
                                       f'{type(checkpoint["optimizer"]).__name__}, not a dict')
    if 'param_schedulers' in checkpoint and not isinstance(checkpoint['param_schedulers'], (list, dict)):
        raise MalformedCheckpointError(f'cannot resume from {source}: its param_schedulers is a '
                                       f'{type(checkpoint["param_schedulers"]).__name__}, not a list')


def check_weights_fit(model: torch.nn.Module, checkpoint: Any, source: str, min_fraction: float = 1.0) -> float:
    """Refuse weights that fit fewer than ``min_fraction`` of ``model``'s (same name and shape).

    ``num_batches_tracked`` buffers are not counted; a ``module.`` prefix (DataParallel) is
    ignored. Returns the fraction that fits.
    """
    state = checkpoint_state_dict(checkpoint, source)
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    own = {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
    if not own:
        return 1.0
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    fits = len(own) - len(missing) - len(wrong)
    fraction = fits / len(own)
    if fits == 0:
        raise CheckpointMismatchError(
            f'checkpoint {source} fits none of the model\'s {len(own)} weights (checkpoint keys like '
            f'{", ".join(sorted(state)[:3])}; model keys like {", ".join(list(own)[:3])}): is it a checkpoint of '
            f'this config\'s model?')
    if fraction < min_fraction:
        detail = []
        if missing:
            detail.append(f'{len(missing)} missing, e.g. {missing[0]}')
        if wrong:
            k = wrong[0]
            detail.append(f'{len(wrong)} of another shape, e.g. {k} {tuple(state[k].shape)} in the checkpoint, '
                          f'{tuple(own[k].shape)} in the model')
        raise CheckpointMismatchError(
            f'checkpoint {source} fits only {fits} of the model\'s {len(own)} weights ({"; ".join(detail)}): '
            f'it belongs to another model or config; give the checkpoint trained with this config')
    return fraction


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Refuse a loaded checkpoint that is malformed or does not fit the model, before it is used.

    Args:
        source: the checkpoint's name for messages (path or URL).
        resume: the checkpoint is resumed from (its meta, message hub and optimizer are checked too).
        min_fit: the fraction of the model's weights the checkpoint must provide (1.0: all of them,
            for evaluation and resuming; less for fine-tuning with another head).
    """

    priority = 'VERY_HIGH'

    def __init__(self, source: str = 'the checkpoint', resume: bool = False, min_fit: float = 1.0):
        self.source = source
        self.resume = resume
        self.min_fit = min_fit

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_training_checkpoint(checkpoint, self.source, resume=self.resume)
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        check_weights_fit(model, checkpoint, self.source, self.min_fit)


#: The share of the model's weights a ``load_from`` checkpoint (fine-tuning) must provide.
FINE_TUNE_MIN_FIT = 0.5


def prepare_checkpoints(cfg, purpose: str) -> None:
    """Set ``cfg`` up for checkpoints: checks of what is loaded; atomic saving when training.

    ``purpose``: ``'train'`` (``load_from`` must fit half of the model, a resumed checkpoint all of
    it) or ``'test'`` (all of it).
    """
    if purpose not in ('train', 'test'):
        raise ValueError(f"purpose must be 'train' or 'test', got {purpose!r}")
    if cfg.get('load_from'):
        resume = purpose == 'train' and bool(cfg.get('resume'))
        min_fit = FINE_TUNE_MIN_FIT if purpose == 'train' and not resume else 1.0
        hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'CheckpointCheckHook']
        cfg.custom_hooks = hooks + [dict(type='CheckpointCheckHook', source=str(cfg.load_from), resume=resume,
                                         min_fit=min_fit)]
    if purpose == 'train':
        hook = (cfg.get('default_hooks') or {}).get('checkpoint')
        if hook is not None and hook.get('backend_args') is None and not hook.get('out_dir'):
            hook['backend_args'] = dict(backend=ATOMIC_BACKEND)


RANDOM_BACKBONE_OPTIONS = ('model.backbone.init_cfg=None model.backbone.norm_eval=False '
                           'model.backbone.norm_cfg.requires_grad=True model.backbone.frozen_stages=-1')


def check_backbone_start(cfg, config_name: str = 'the config') -> None:
    """Refuse to train a ReXNet from random weights with frozen BatchNorm or frozen stages.

    Frozen BatchNorm keeps its initial statistics (mean 0, variance 1) and so normalises
    nothing: on random weights the activations shrink layer by layer to denormal floats (a CPU
    step ~25 times slower) and the backbone cannot learn; frozen random stages never learn.
    The R-CNN configs freeze BN for ImageNet weights; with ``init_cfg=None`` and no
    ``load_from`` / resume, that is refused with the options that train a random backbone.
    """
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    if backbone.get('type') != 'ReXNet' or cfg.get('load_from') or cfg.get('resume'):
        return
    init_cfg = backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return
    norm_cfg = backbone.get('norm_cfg') or {}
    frozen = []
    if backbone.get('norm_eval'):
        frozen.append('norm_eval=True')
    if norm_cfg.get('requires_grad') is False:
        frozen.append('norm_cfg.requires_grad=False')
    if (backbone.get('frozen_stages') if backbone.get('frozen_stages') is not None else -1) >= 0:
        frozen.append(f'frozen_stages={backbone.get("frozen_stages")}')
    if frozen:
        raise ValueError(
            f'{config_name}: the backbone would start from random weights (no ImageNet init_cfg, no load_from) '
            f'with {", ".join(frozen)}: frozen BatchNorm keeps mean 0 / variance 1, so activations shrink to '
            f'denormal floats (a CPU step ~25x slower) and frozen random layers never learn. To train a random '
            f'backbone add --cfg-options {RANDOM_BACKBONE_OPTIONS}; or give ImageNet weights with '
            f'model.backbone.init_cfg.checkpoint=PATH_OR_URL')


# ----------------------------------------------------------------------------- atomic saving
ATOMIC_BACKEND = 'rexnet_mmdet_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """Local files written whole or not at all: a temporary name in the same folder, then ``os.replace``.

    A run killed while saving leaves at most a hidden ``.NAME.partial-PID`` file; the previous
    checkpoints and the pointer to them are untouched.
    """

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        tmp = osp.join(folder, f'.{osp.basename(filepath)}.partial-{os.getpid()}')
        try:
            with open(tmp, 'wb') as f:
                self._write_data(f, obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    @staticmethod
    def _write_data(f, data: bytes) -> None:
        f.write(data)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


# ----------------------------------------------------------------------------- resume
_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def is_readable_checkpoint(filename: str) -> bool:
    """Whether ``filename`` is a complete zip checkpoint (every member's CRC checks out)."""
    try:
        with zipfile.ZipFile(filename) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint in ``work_dir``, or None.

    mmengine's ``last_checkpoint`` pointer is tried first; if it is missing, empty or names a
    damaged file (a run killed while saving), the newest complete ``iter_*.pth`` /
    ``epoch_*.pth`` is used instead. The caller should say which one it picked.
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, errors='replace') as f:
            named = f.read().strip()
        if named:
            candidates.append(named if osp.isabs(named) else osp.join(work_dir, osp.basename(named)))
    if osp.isdir(work_dir):
        numbered = []
        for name in os.listdir(work_dir):
            match = _CKPT_NAME.match(name)
            if match:
                numbered.append((osp.getmtime(osp.join(work_dir, name)), int(match.group(1)), name))
        candidates += [osp.join(work_dir, name) for _, _, name in sorted(numbered, reverse=True)]
    for path in candidates:
        if osp.isfile(path) and is_readable_checkpoint(path):
            return path
    return None


__all__ = [
    'CheckpointError', 'CheckpointNotFoundError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'MalformedCheckpointError', 'CheckpointMismatchError', 'TRAINING_CHECKPOINT_GLOBALS', 'load_checkpoint',
    'load_checkpoint_file', 'register_safe_checkpoint_loader', 'checkpoint_state_dict', 'check_training_checkpoint',
    'check_weights_fit', 'CheckpointCheckHook', 'prepare_checkpoints', 'check_backbone_start', 'AtomicLocalBackend', 'ATOMIC_BACKEND',
    'is_readable_checkpoint', 'find_resume_checkpoint'
]
