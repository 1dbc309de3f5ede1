"""The package's layers import downward only, imports inside functions included.

Every module of rexnet_mmdet/ is parsed with ``ast``; each ``import`` and ``from ... import`` anywhere
in it (module level, functions, classes) is an edge to the package module it names.
"""
import ast
import importlib.util
import os
import os.path as osp
from typing import Dict, Set

import pytest

PACKAGE = 'rexnet_mmdet'
# Found, not imported: the check needs the source only.
PACKAGE_DIR = importlib.util.find_spec(PACKAGE).submodule_search_locations[0]

#: What each layer may import of the package (besides itself); the root __init__ may import anything.
ALLOWED: Dict[str, Set[str]] = {
    'models': set(),
    'datasets': set(),
    'utils': {'models', 'datasets'},
    'engine': {'models', 'datasets', 'utils'},
    'deploy': {'models', 'utils', 'engine'},
    'analysis': {'models', 'datasets', 'utils', 'engine', 'deploy'},
    'apis': {'models', 'datasets', 'utils', 'engine'},
}


def _modules() -> Dict[str, str]:
    """``{'rexnet_mmdet.models.rexnet': path, 'rexnet_mmdet.models': path/__init__.py, ...}``."""
    found = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith('.py'):
                continue
            rel = osp.relpath(osp.join(folder, name), osp.dirname(PACKAGE_DIR))[:-3].split(os.sep)
            if rel[-1] == '__init__':
                rel = rel[:-1]
            found['.'.join(rel)] = osp.join(folder, name)
    return found


MODULES = _modules()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ''
    parts = module.split('.')
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def _target(name: str) -> str:
    """The package module ``name`` refers to: itself, or its closest parent that is a module."""
    while name and name not in MODULES:
        name = name.rpartition('.')[0]
    return name


def _imports(module: str) -> Set[str]:
    path = MODULES[module]
    is_package = path.endswith('__init__.py')
    edges = set()
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            # ``from .x import y``: y may be a submodule (an edge to it) or a name in x (an edge to x).
            names = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in MODULES else base for alias in node.names]
        else:
            continue
        edges |= {_target(n) for n in names if n == PACKAGE or n.startswith(PACKAGE + '.')}
    edges.discard(module)
    return edges


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def test_every_module_is_seen():
    assert {'rexnet_mmdet.models.rexnet', 'rexnet_mmdet.models.weights.formats', 'rexnet_mmdet.utils.build',
            'rexnet_mmdet.analysis.speed', 'rexnet_mmdet.deploy.onnx_backbone'} <= set(GRAPH)
    # Function-level imports count: the analysis builds models through utils inside functions too.
    assert 'rexnet_mmdet.models.weights.pretrained' in GRAPH['rexnet_mmdet.utils.build']


def test_no_import_cycle():
    state: Dict[str, int] = {}
    stack = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


@pytest.mark.parametrize('layer', sorted(ALLOWED))
def test_layers_import_downward_only(layer):
    wrong = []
    for module, deps in GRAPH.items():
        if _layer(module) != layer:
            continue
        for dep in deps:
            if _layer(dep) != layer and _layer(dep) not in ALLOWED[layer]:
                wrong.append(f'{module} imports {dep or PACKAGE}')
    assert not wrong, f'{layer}/ may import only {sorted(ALLOWED[layer]) or "itself"}:\n' + '\n'.join(wrong)


def test_deploy_never_imports_analysis_and_models_stays_alone():
    assert not any(_layer(dep) == 'analysis' for m, deps in GRAPH.items() if _layer(m) == 'deploy' for dep in deps)
    assert all(_layer(dep) == 'models' for m, deps in GRAPH.items() if _layer(m) == 'models' for dep in deps)
