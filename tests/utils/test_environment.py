"""The supported environments: declared once, read by setup.py, enforced at import before the stack is imported."""
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import setuptools
import torch

from rexnet_mmdet.utils.build import PROJECT_ROOT
from rexnet_mmdet.utils.environment import (INSTALL_REQUIRES, PYTHON_REQUIRES, REQUIREMENTS,
                                            UnsupportedEnvironmentError, check_environment, environment_problem,
                                            installed, release)

SUPPORTED = {'python': '3.8.18', 'torch': '2.1.2+cu121', 'mmcv': '2.1.0', 'mmengine': '0.10.7', 'mmdet': '3.3.0'}


@pytest.mark.parametrize('version, numbers', [('2.13.0+cpu', (2, 13, 0)), ('2.6.0a0+git1234', (2, 6, 0)),
                                              ('2.0.0rc4', (2, 0, 0)), ('3.8.18', (3, 8, 18)), ('10.1', (10, 1))])
def test_release(version, numbers):
    assert release(version) == numbers


def test_both_ends_and_between_are_supported():
    for torch_version in ('2.1.2+cu121', '2.1.0', '2.6.0', '2.11.0+cu130', '2.13.0+cpu'):
        for python in ('3.8.18', '3.11.7', '3.12.1'):
            assert environment_problem(dict(SUPPORTED, torch=torch_version, python=python)) is None


@pytest.mark.parametrize('name, found, words', [
    ('torch', '2.0.1', ['torch>=2.1,<2.14', 'found torch 2.0.1']),
    ('torch', '1.13.1+cu117', ['found torch 1.13.1+cu117']),
    ('torch', '2.14.0', ['found torch 2.14.0']),
    ('python', '3.7.16', ['python>=3.8', 'found Python 3.7.16']),
    ('mmcv', '2.2.0', ['mmcv>=2.1.0,<2.2.0', 'found mmcv 2.2.0', 'mim install "mmcv==2.1.0"']),
    ('mmcv', '2.0.1', ['found mmcv 2.0.1']),
    ('mmcv', '2.1.0 (mmcv-lite: no ops)', ['compiled ops', 'mmcv-lite', 'bash scripts/setup.sh']),
    ('mmcv', '2.1.0 (no ops)', ['compiled ops', 'found mmcv 2.1.0 (no ops)']),
    ('mmcv', None, ['mmcv is not installed']),
    ('mmengine', '0.9.1', ['mmengine>=0.10.0,<0.11.0', 'found mmengine 0.9.1']),
    ('mmdet', '3.2.0', ['mmdet>=3.3.0,<3.4.0', 'found mmdet 3.2.0']),
    ('mmdet', '3.4.0', ['found mmdet 3.4.0']),
    ('torch', None, ['torch is not installed']),
])
def test_an_unsupported_package_gets_one_line_naming_it_and_the_range(name, found, words):
    with pytest.raises(UnsupportedEnvironmentError) as err:
        check_environment(dict(SUPPORTED, **{name: found}))
    message = str(err.value)
    assert '\n' not in message and isinstance(err.value, ImportError)
    for word in words:
        assert word in message, message


def test_what_is_installed_is_read_without_importing_it():
    import mmcv
    import mmdet
    import mmengine
    found = installed()
    assert found['torch'] == torch.__version__
    assert found['mmcv'] == mmcv.__version__  # with ops: no suffix
    assert (found['mmengine'], found['mmdet']) == (mmengine.__version__, mmdet.__version__)
    assert found['python'] == '.'.join(map(str, sys.version_info[:3]))
    assert environment_problem(found) is None


def test_setup_py_declares_the_same_ranges(monkeypatch):
    captured = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(PROJECT_ROOT)
    runpy.run_path(osp.join(PROJECT_ROOT, 'setup.py'))
    assert captured['install_requires'] == INSTALL_REQUIRES
    assert captured['python_requires'] == PYTHON_REQUIRES == '>=3.8'
    assert [r.split('>=')[0] for r in INSTALL_REQUIRES] == ['torch', 'mmcv', 'mmengine', 'mmdet']
    assert set(REQUIREMENTS) == {'python', 'torch', 'mmcv', 'mmengine', 'mmdet'}


def _fake_package(root, name, version, ext=True, marker=None):
    """A package folder that states ``version`` and, if it is ever imported, writes ``marker``."""
    folder = root / name
    folder.mkdir()
    (folder / 'version.py').write_text(f"__version__ = '{version}'\n")
    (folder / '__init__.py').write_text(f'open({str(marker)!r}, "w").close()\n' if marker else '')
    if ext:
        (folder / '_ext.cpython-38-x86_64-linux-gnu.so').write_bytes(b'')


@pytest.mark.parametrize('package, version, ext, lite, words', [
    ('torch', '2.0.1', True, False, ['found torch 2.0.1']),
    ('mmcv', '2.2.0', True, False, ['found mmcv 2.2.0']),
    ('mmcv', '2.1.0', False, True, ['found mmcv 2.1.0 (mmcv-lite: no ops)']),
    ('mmcv', '2.1.0', False, False, ['found mmcv 2.1.0 (no ops)']),
    ('mmdet', '3.1.0', True, False, ['found mmdet 3.1.0']),
])
def test_import_refuses_before_anything_is_imported_or_written(tmp_path, package, version, ext, lite, words):
    shadow = tmp_path / 'site'
    shadow.mkdir()
    marker = tmp_path / 'imported'
    _fake_package(shadow, package, version, ext=ext, marker=marker)
    if lite:
        (shadow / f'mmcv_lite-{version}.dist-info').mkdir()
    code = ('import sys\n'
            'try:\n'
            '    import rexnet_mmdet\n'
            'except ImportError as e:\n'
            '    print("ERROR", e)\n'
            'print("LOADED", sorted(m for m in ("torch", "mmcv", "mmengine", "mmdet", "rexnet_mmdet") '
            'if m in sys.modules))\n')
    env = dict(PYTHONPATH=f'{shadow}{osp.pathsep}{PROJECT_ROOT}', PATH='/usr/bin:/bin')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                         timeout=120).stdout
    error_lines = [line for line in out.splitlines() if line.startswith('ERROR')]
    assert len(error_lines) == 1, out
    for word in words:
        assert word in error_lines[0], out
    assert 'LOADED []' in out  # not torch, mmcv, mmengine, mmdet, nor a half-imported rexnet_mmdet
    assert not marker.exists()
