"""The supported torch range: declared once, enforced at import for the floor."""
import os.path as osp
import runpy

import pytest
import setuptools
import torch
from packaging.requirements import Requirement

from rexnet_mmdet.utils.build import PROJECT_ROOT
from rexnet_mmdet.utils.torch_version import MIN_TORCH, TORCH_REQUIREMENT, check_torch_version, torch_release


@pytest.mark.parametrize('version, release', [('2.13.0+cpu', (2, 13)), ('2.6.0a0+git1234', (2, 6)),
                                              ('2.11.0+cu130', (2, 11)), ('10.0.1', (10, 0))])
def test_torch_release(version, release):
    assert torch_release(version) == release


@pytest.mark.parametrize('old', ['2.5.1', '2.4.0+cu121', '1.13.1'])
def test_older_torch_is_refused_with_the_versions_named(monkeypatch, old):
    monkeypatch.setattr(torch, '__version__', old)
    with pytest.raises(ImportError) as err:
        check_torch_version()
    message = str(err.value)
    assert f'found torch {old}' in message and 'torch >= 2.6' in message and TORCH_REQUIREMENT in message
    assert '\n' not in message


def test_the_floor_and_newer_are_accepted(monkeypatch):
    for version in ('2.6.0', '2.13.0+cpu', '2.11.0+cu130'):
        monkeypatch.setattr(torch, '__version__', version)
        check_torch_version()


def test_setup_py_declares_the_same_range(monkeypatch):
    captured = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(PROJECT_ROOT)
    runpy.run_path(osp.join(PROJECT_ROOT, 'setup.py'))
    torch_requirements = [r for r in captured['install_requires'] if Requirement(r).name == 'torch']
    assert torch_requirements == [TORCH_REQUIREMENT]
    specifier = Requirement(TORCH_REQUIREMENT).specifier
    floor = '.'.join(map(str, MIN_TORCH)) + '.0'
    assert specifier.contains(floor) and not specifier.contains('2.5.1')
    assert specifier.contains(torch.__version__.split('+')[0])  # the torch this suite runs on
