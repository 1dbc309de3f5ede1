"""mmengine reads every checkpoint through the safe loader.

``register_safe_checkpoint_loader()`` (called when :mod:`rexnet_mmdet.engine` is imported) makes
:func:`rexnet_mmdet.models.weights.safe_load.load_checkpoint` mmengine's loader for every scheme
mmengine's ``CheckpointLoader`` has registered (local paths, ``http(s)://``, ``torchvision://``,
``open-mmlab://``, ``mmcls://``, ``s3://`` ...), and replaces mmengine's own loader functions in
``mmengine.runner.checkpoint`` (which call one another directly), so ``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained')`` (mmengine's ``PretrainedInit`` too), ``Runner.load_checkpoint``,
mmdet's ``init_detector`` and every tool read checkpoints through it.
"""
from typing import Any, Optional

from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from ..models.weights.safe_load import load_checkpoint

#: The schemes mmengine 0.10 registers; any others registered before this runs are taken over too.
MMENGINE_SCHEMES = ('', 'http://', 'https://', 'pavi://', r'(\S+\:)?s3://', r'(\S+\:)?petrel://',
                    'modelzoo://', 'torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://')


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


__all__ = ['MMENGINE_SCHEMES', 'load_from_safe_loader', 'register_safe_checkpoint_loader']
