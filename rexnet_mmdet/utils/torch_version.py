"""The torch releases this package supports, and the check made when it is imported.

The floor comes from the checkpoint loader (``models/weights/safe_load.py``): it allowlists its
stand-ins under the names a pickle spells (``torch.serialization.add_safe_globals`` with
``(object, 'module.name')`` pairs) and asks ``torch.serialization.get_unsafe_globals_in_checkpoint``
which names a refused file holds; both came with torch 2.6. The ceiling comes from mmcv 2.1.0, whose
compiled ops are C++17: torch 2.14's headers accept C++20 only.
"""
import re

#: What setup.py declares (read from here) and what the import check enforces the floor of.
TORCH_REQUIREMENT = 'torch>=2.6,<2.14'
MIN_TORCH = (2, 6)


def torch_release(version: str) -> tuple:
    """``(major, minor)`` of a torch version string such as ``2.13.0+cpu`` or ``2.6.0a0+git1234``."""
    match = re.match(r'(\d+)\.(\d+)', version)
    if match is None:
        raise ValueError(f'cannot read a torch version from {version!r}')
    return int(match.group(1)), int(match.group(2))


def check_torch_version() -> None:
    """Refuse, with one line, a torch older than :data:`MIN_TORCH`."""
    import torch
    if torch_release(torch.__version__) < MIN_TORCH:
        floor = '.'.join(map(str, MIN_TORCH))
        raise ImportError(
            f'rexnet_mmdet needs torch >= {floor}, found torch {torch.__version__}: its checkpoint loader uses '
            f'torch.serialization.add_safe_globals with (object, name) pairs and get_unsafe_globals_in_checkpoint, '
            f'which came with torch {floor}. Install a supported torch: pip install "{TORCH_REQUIREMENT}" '
            f'(then rebuild mmcv against it: bash scripts/setup.sh)')


__all__ = ['TORCH_REQUIREMENT', 'MIN_TORCH', 'torch_release', 'check_torch_version']
