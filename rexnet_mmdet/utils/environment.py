"""The environments this package supports, declared once, and the check made when it is imported.

:data:`REQUIREMENTS` is the one declaration: ``setup.py`` reads it (this module needs nothing but the
standard library), the import check enforces it, and ``docs/install.md`` shows it.

The check reads the versions from the installed packages' own ``version.py`` files and looks for mmcv's
compiled ops on disk, without importing torch, mmcv, mmengine or mmdet: an unsupported environment is
refused with one line before anything of it is imported and before anything is written.

The floor of each range is the oldest release the floor test lane runs (``make test-floor``: Python 3.8,
torch 2.1.2); the ceilings are the newest the main lane runs (torch 2.13) and what the OpenMMLab
releases accept: mmdet 3.3 refuses mmcv 2.2, and mmcv 2.1's compiled ops are C++17, which torch 2.14's
headers no longer accept.
"""
import importlib.util
import os.path as osp
import re
import sys
from glob import glob
from typing import Dict, Optional, Tuple

#: package -> (pip requirement, lowest supported release, first release not supported).
REQUIREMENTS: Dict[str, Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = {
    'python': ('python>=3.8', (3, 8), (4, 0)),
    'torch': ('torch>=2.1,<2.14', (2, 1), (2, 14)),
    'mmcv': ('mmcv>=2.1.0,<2.2.0', (2, 1, 0), (2, 2, 0)),
    'mmengine': ('mmengine>=0.10.0,<0.11.0', (0, 10, 0), (0, 11, 0)),
    'mmdet': ('mmdet>=3.3.0,<3.4.0', (3, 3, 0), (3, 4, 0)),
}
#: What ``pip install`` is given for the stack (setup.py's install_requires).
INSTALL_REQUIRES = [REQUIREMENTS[name][0] for name in ('torch', 'mmcv', 'mmengine', 'mmdet')]
PYTHON_REQUIRES = REQUIREMENTS['python'][0][len('python'):]

_INSTALL_HINT = {
    'python': 'make a Python 3.8+ environment (see docs/install.md)',
    'torch': 'pip install "{req}", then mmcv built for that torch (docs/install.md)',
    'mmcv': 'pip install -U openmim && mim install "mmcv==2.1.0" (OpenMMLab\'s wheels, torch 2.1 and older), or '
            'build it with its ops: bash scripts/setup.sh (docs/install.md)',
    'mmengine': 'pip install "{req}"',
    'mmdet': 'pip install "{req}"',
}


class UnsupportedEnvironmentError(ImportError):
    """An installed Python, torch, mmcv, mmengine or mmdet outside :data:`REQUIREMENTS`."""


def release(version: str) -> Tuple[int, ...]:
    """The numeric release of a version string: ``2.13.0+cpu`` -> (2, 13, 0), ``2.0.0rc4`` -> (2, 0, 0)."""
    match = re.match(r'\s*v?(\d+(?:\.\d+)*)', version)
    if match is None:
        raise ValueError(f'cannot read a version from {version!r}')
    return tuple(int(part) for part in match.group(1).split('.'))


def _in_range(version: str, low: Tuple[int, ...], high: Tuple[int, ...]) -> bool:
    found = release(version)
    return low <= found[:len(low)] and found[:len(high)] < high


def _package_dir(name: str) -> Optional[str]:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _version_file(package_dir: str) -> Optional[str]:
    """``__version__`` as the package's own ``version.py`` states it (what importing it would report)."""
    path = osp.join(package_dir, 'version.py')
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(r'''^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]''', text, re.M)
    return match.group(1) if match else None


def installed() -> Dict[str, Optional[str]]:
    """What is installed: ``{'python': '3.8.18', 'torch': '2.1.2+cu121', 'mmcv': '2.1.0', ...}`` (None: missing).

    mmcv's entry is suffixed ``' (no ops)'`` where its compiled ops (``mmcv._ext``) are absent, as in mmcv-lite
    or an mmcv built without ``MMCV_WITH_OPS=1``.
    """
    found: Dict[str, Optional[str]] = {'python': '.'.join(map(str, sys.version_info[:3]))}
    for name in ('torch', 'mmcv', 'mmengine', 'mmdet'):
        folder = _package_dir(name)
        version = _version_file(folder) if folder else None
        if name == 'mmcv' and folder and version:
            if not glob(osp.join(folder, '_ext*.so')) + glob(osp.join(folder, '_ext*.pyd')):
                lite = glob(osp.join(osp.dirname(folder), 'mmcv_lite-*-info'))
                version += ' (mmcv-lite: no ops)' if lite else ' (no ops)'
        found[name] = version
    return found


def environment_problem(found: Dict[str, Optional[str]]) -> Optional[str]:
    """One line on the first package of ``found`` outside :data:`REQUIREMENTS`, or None where all fit."""
    for name, (requirement, low, high) in REQUIREMENTS.items():
        version = found.get(name)
        what = 'Python' if name == 'python' else name
        hint = _INSTALL_HINT[name].format(req=requirement)
        if version is None:
            return f'rexnet_mmdet needs {requirement}, and {what} is not installed: {hint}'
        if not _in_range(version, low, high):
            return f'rexnet_mmdet supports {requirement}, found {what} {version}: {hint}'
        if 'no ops' in version:
            return (f'rexnet_mmdet needs mmcv with its compiled ops (mmcv.ops: NMS, RoI Align), found mmcv '
                    f'{version}: {hint}')
    return None


def check_environment(found: Optional[Dict[str, Optional[str]]] = None) -> None:
    """Refuse, with one line, an environment outside :data:`REQUIREMENTS` (called by ``import rexnet_mmdet``)."""
    problem = environment_problem(installed() if found is None else found)
    if problem:
        raise UnsupportedEnvironmentError(problem)


__all__ = ['REQUIREMENTS', 'INSTALL_REQUIRES', 'PYTHON_REQUIRES', 'UnsupportedEnvironmentError', 'release',
           'installed', 'environment_problem', 'check_environment']
