"""Weight files: reading a checkpoint of any known format into a flat state dict, and writing one.

Files are read by :mod:`.safe_load` (a fixed allowlist on every torch): a checkpoint never runs code.
``.safetensors`` files are read and written with safetensors.
"""
import os
import os.path as osp
from typing import Dict, Optional

import torch

from .families import CheckpointFamily
from .safe_load import CheckpointError, load_checkpoint

OWN_FORMAT_TAG = 'rexnet_mmdet.backbone'


def strip_module_prefix(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state_dict`` without the ``module.`` prefix DataParallel gives every key (unchanged otherwise)."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def read_state_dict(path_or_url: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint (path, URL or mmengine scheme) safely and return its flat state dict (unwrapped).

    Reading goes through :func:`.safe_load.load_checkpoint` (the allowlist of a training checkpoint:
    a detector checkpoint written by ``tools/train.py`` is accepted, its ``backbone.*`` weights are
    what :func:`~.formats.to_own_format` takes); ``.safetensors`` files, local or downloaded, are read by
    safetensors.
    """
    return unwrap_state_dict(load_checkpoint(path_or_url, map_location='cpu'), str(path_or_url))


def unwrap_state_dict(obj, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Find the state dict in common containers and strip ``module.`` prefixes."""
    if isinstance(obj, dict):
        for key in ('state_dict', 'model', 'state_dict_ema', 'model_ema'):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'{source} holds no state dict of tensors (got {type(obj).__name__}); '
                              f'expected a ReXNet ImageNet checkpoint')
    return dict(strip_module_prefix(obj))


def save_own_format(state_dict: Dict[str, torch.Tensor], path: str, widen_factor,
                    source: str = '') -> None:
    """Write a backbone state dict in this project's format, with its family and width in ``meta``.

    ``widen_factor``: a width (ReXNet-v1), a :class:`CheckpointFamily`, or None when unknown. A path
    ending in ``.safetensors`` is written as safetensors (the meta as its string metadata).
    """
    family = widen_factor if isinstance(widen_factor, CheckpointFamily) else None
    meta = {'format': OWN_FORMAT_TAG, 'source': source,
            'widen_factor': family.widen_factor if family else widen_factor}
    if family is not None:
        meta.update(arch=family.arch, channel_divisor=family.channel_divisor)
    if str(path).endswith('.safetensors'):
        write_state_dict(state_dict, path, {k: str(v) for k, v in meta.items()})
        return
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save({'meta': meta, 'state_dict': state_dict}, path)


def write_state_dict(state_dict: Dict[str, torch.Tensor], path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a flat state dict: safetensors when ``path`` ends in ``.safetensors``, else ``torch.save``."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if str(path).endswith('.safetensors'):
        try:
            from safetensors.torch import save_file
        except ImportError:
            raise CheckpointError('writing .safetensors needs the safetensors package: pip install safetensors, '
                                  'or give an output name ending in .pth') from None
        save_file({k: v.contiguous() for k, v in state_dict.items()}, path, metadata=metadata)
    else:
        torch.save(state_dict, path)


__all__ = ['OWN_FORMAT_TAG', 'read_state_dict', 'unwrap_state_dict', 'strip_module_prefix', 'save_own_format',
           'write_state_dict']
