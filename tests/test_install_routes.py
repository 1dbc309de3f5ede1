"""The package as an MMDetection user installs and runs it: MMDetection's own tools, a non-editable install.

``make setup`` and ``make setup-floor`` install the package the way docs/install.md tells a user with an
existing MMDetection environment to (``pip install -e . --no-deps``). Here MMDetection's own
``tools/train.py`` and ``tools/test.py`` (the copies inside the installed mmdet package, ``mmdet/.mim``)
train and test a tiny detector whose config only adds ``custom_imports``; and a wheel of the package,
installed without ``-e`` into a folder of its own, does the same from outside the repository.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import mmdet
import pytest

from rexnet_mmdet.utils.build import PROJECT_ROOT

MMDET_TOOLS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
CUSTOM_IMPORTS = "\ncustom_imports = dict(imports=['rexnet_mmdet'], allow_failed_imports=False)\n"


def _run(args, cwd, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env_extra or {}))
    result = subprocess.run([sys.executable] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def _train_and_test_with_mmdet_tools(tmp_path, tiny_runs, env_extra=None):
    data_root = str(tmp_path / 'shapes')
    config = tiny_runs.write_tiny_config(str(tmp_path / 'user_config.py'), data_root, max_iters=2,
                                         ckpt_interval=2, extra=CUSTOM_IMPORTS)
    work_dir = str(tmp_path / 'work')
    _run([osp.join(MMDET_TOOLS, 'train.py'), config, '--work-dir', work_dir], str(tmp_path), env_extra)
    checkpoint = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(checkpoint)
    out = _run([osp.join(MMDET_TOOLS, 'test.py'), config, checkpoint, '--work-dir', work_dir], str(tmp_path),
               env_extra)
    assert 'coco/bbox_mAP' in out, out[-2000:]
    results = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    metrics = json.load(open(results[-1]))
    assert 'coco/bbox_mAP' in metrics
    return out


@pytest.mark.slow
def test_mmdetections_own_tools_train_and_test_with_custom_imports(tmp_path, tiny_runs):
    assert osp.isfile(osp.join(MMDET_TOOLS, 'train.py')), 'mmdet has no .mim/tools: an unusual mmdet install'
    _train_and_test_with_mmdet_tools(tmp_path, tiny_runs)


@pytest.mark.slow
def test_a_wheel_installed_without_editable_works_like_the_checkout(tmp_path, tiny_runs):
    wheels, site, source = tmp_path / 'wheels', tmp_path / 'site', tmp_path / 'source'
    # Built from a copy of the checkout: building writes build/ and egg-info folders beside the sources.
    shutil.copytree(PROJECT_ROOT, str(source), ignore=shutil.ignore_patterns(
        '.git', '.venv*', 'work_dirs', 'data', 'build', '*.egg-info', '__pycache__', '.pytest_cache', '.gpu'))
    _run(['-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(wheels), str(source)],
         str(tmp_path))
    wheel = glob.glob(str(wheels / 'rexnet_mmdet-*.whl'))
    assert len(wheel) == 1
    _run(['-m', 'pip', 'install', '--no-deps', '--no-index', '-q', '--target', str(site), wheel[0]], str(tmp_path))
    env = {'PYTHONPATH': str(site)}
    where = _run(['-c', 'import rexnet_mmdet, rexnet_mmdet.models.weights.restricted_unpickler as r; '
                  'print(rexnet_mmdet.__file__); print(r.__file__)'], str(tmp_path), env)
    assert all(line.startswith(str(site)) for line in where.split()), where
    _train_and_test_with_mmdet_tools(tmp_path, tiny_runs, env)
