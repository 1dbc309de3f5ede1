"""What the tests share: the helper modules in tests/helpers/ (as fixtures), loading a tool's module,
one torch thread, and the official-format weight files rebuilt from tests/data.

pytest runs with ``--import-mode=importlib`` (pytest.ini): test files are not importable by one
another, so everything shared lives here.
"""
import importlib.util
import os.path as osp
import sys
from types import ModuleType

import pytest
import torch

from rexnet_mmdet.utils.build import PROJECT_ROOT

HELPERS = osp.join(osp.dirname(osp.abspath(__file__)), 'helpers')


def _load(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Loaded once, here, and registered under their own names, so that a test module may also write
# ``from tiny_runs import write_tiny_config`` at its top (conftest.py is imported before any test module).
_HELPER_MODULES = {name: sys.modules.setdefault(name, _load(osp.join(HELPERS, f'{name}.py'), name))
                   for name in ('tiny_runs', 'reference_weights', 'randomised', 'detections', 'config_models')}


#: What the floor lane (``make test-floor``: ``-m "not slow or floor"``) runs even when slow: what the
#: oldest supported torch can break (checkpoints, weights, training, resume, configs, installing the package).
FLOOR_PATHS = ('tests/models/weights/', 'tests/engine/', 'tests/configs/', 'tests/tools/test_train.py',
               'tests/tools/test_test.py', 'tests/test_install_routes.py', 'tests/test_apis.py', 'tests/utils/')


def pytest_collection_modifyitems(config, items):
    """Mark the floor lane's tests ``floor``; tests marked ``cuda`` run where torch sees a CUDA GPU and are
    skipped, for one reason, elsewhere."""
    for item in items:
        if osp.relpath(str(item.fspath), PROJECT_ROOT).replace(osp.sep, '/').startswith(FLOOR_PATHS):
            item.add_marker(pytest.mark.floor)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='no CUDA GPU visible to torch')
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Say what the suite ran on (the floor lane and the main lane differ), after the results."""
    from rexnet_mmdet.models.weights.safe_load import READER
    from rexnet_mmdet.utils.environment import installed
    found = installed()
    terminalreporter.write_line('environment: ' + ', '.join(f'{name} {found[name]}' for name in found)
                                + f'; checkpoint reader: {READER}')


@pytest.fixture(scope='session')
def tiny_runs() -> ModuleType:
    """tests/helpers/tiny_runs.py: tiny training configs and running tools in a subprocess."""
    return _HELPER_MODULES['tiny_runs']


@pytest.fixture(scope='session')
def reference_weights() -> ModuleType:
    """tests/helpers/reference_weights.py: the official weights' deterministic stand-ins and golden outputs."""
    return _HELPER_MODULES['reference_weights']


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('analysis_tools/benchmark.py')``: a tool's module, to call its ``main`` in this process."""
    def load(relative_path: str) -> ModuleType:
        name = osp.splitext(osp.basename(relative_path))[0] + '_tool'
        return _load(osp.join(PROJECT_ROOT, 'tools', relative_path), name)
    return load


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder served, base URL): an http.server on 127.0.0.1 started here (tiny_runs.served_folder);
    TORCH_HOME in tmp_path, so that downloads land in a fresh hub cache."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    root = tmp_path / 'served'
    root.mkdir()
    with _HELPER_MODULES['tiny_runs'].served_folder(str(root)) as base:
        yield root, base


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread for correctness tests: quick when other work shares the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def official_checkpoints(tmp_path_factory, reference_weights) -> dict:
    """Official-format stand-ins for the published ×0.9 and ×1.0 weights, as files: ``{'0.9': path, ...}``,
    and for ReXNet-lite ×1.0 (``'lite1.0'``)."""
    folder = tmp_path_factory.mktemp('weights')
    paths = {}
    for width in ('0.9', '1.0'):
        paths[width] = str(folder / f'rexnetv1_{width}.pth')
        torch.save(reference_weights.rebuild_official_weights(width), paths[width])
    paths['lite1.0'] = str(folder / 'rexnet_lite_1.0.pth')
    torch.save(reference_weights.rebuild_official_weights('1.0', 'rexnet_lite'), paths['lite1.0'])
    return paths
