"""The tools' one way to fail: ``error: <message>`` on stderr, exit status 1, no traceback."""
import pytest

from rexnet_mmdet.utils.cli import fail, keep_tracebacks, shape_wh, tool_main


class ToolSpecificError(Exception):
    pass


@tool_main
def _main(argv=None):
    kind = argv[0]
    if kind == 'value':
        raise ValueError('widen_factor must be positive; got -1')
    if kind == 'missing':
        raise FileNotFoundError('config file x.py does not exist')
    if kind == 'fail':
        fail('nothing to count: give a config')
    if kind == 'bug':
        raise KeyError('a bug keeps its traceback')
    return None if kind == 'ok' else 3


@tool_main(errors=(ToolSpecificError,))
def _main_with_own_error(argv=None):
    raise ToolSpecificError('the checkpoint carries code')


@pytest.mark.parametrize('kind, message', [('value', 'widen_factor must be positive'),
                                           ('missing', 'x.py does not exist'), ('fail', 'nothing to count')])
def test_user_errors_become_one_line_and_exit_1(kind, message, capsys):
    with pytest.raises(SystemExit) as exc:
        _main([kind])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == f'error: {err[len("error: "):]}' and message in err and err.count('\n') == 1


def test_results_and_bugs_pass_through(capsys):
    assert _main(['ok']) == 0 and _main(['other']) == 3
    with pytest.raises(KeyError):
        _main(['bug'])
    with pytest.raises(SystemExit):
        _main_with_own_error([])
    assert capsys.readouterr().err == 'error: the checkpoint carries code\n'


def test_shape_is_width_first_everywhere():
    assert shape_wh([96, 64]) == (96, 64) and shape_wh([128]) == (128, 128)
    with pytest.raises(ValueError, match='--shape takes WIDTH \\[HEIGHT\\], got 1 2 3'):
        shape_wh([1, 2, 3])
    with pytest.raises(ValueError, match='too small'):
        shape_wh([8])


def test_the_traceback_variable_shows_where_an_error_came_from(monkeypatch, capsys):
    monkeypatch.setenv('REXNET_MMDET_TRACEBACK', '1')
    with pytest.raises(ValueError, match='widen_factor must be positive'):
        _main(['value'])
    monkeypatch.setenv('REXNET_MMDET_TRACEBACK', '0')
    with pytest.raises(SystemExit):
        _main(['value'])
    assert capsys.readouterr().err.startswith('error: widen_factor')


def test_every_tool_fails_through_tool_main():
    """No tool catches and re-words errors by hand: every tool's main is decorated with tool_main."""
    import ast
    import glob
    import os.path as osp

    from rexnet_mmdet.utils.build import PROJECT_ROOT
    tools = sorted(glob.glob(osp.join(PROJECT_ROOT, 'tools', '**', '*.py'), recursive=True))
    checked = 0
    for path in tools:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == 'main':
                # @tool_main or @tool_main(errors=...)
                names = [getattr(d, 'id', None) or getattr(getattr(d, 'func', None), 'id', '')
                         for d in node.decorator_list]
                assert 'tool_main' in names, f'{path}: main is not decorated with tool_main'
                checked += 1
        for node in ast.walk(tree):
            # fail(str(e)) in an except block repeats what tool_main does (fail(f'{context}: {e}') adds to it).
            if isinstance(node, ast.ExceptHandler) and node.name:
                repeats = [c for c in ast.walk(node) if isinstance(c, ast.Call) and getattr(c.func, 'id', '') == 'fail'
                           and len(c.args) == 1 and isinstance(c.args[0], ast.Call)
                           and getattr(c.args[0].func, 'id', '') == 'str'
                           and [getattr(a, 'id', '') for a in c.args[0].args] == [node.name]]
                assert not repeats, f'{path}:{node.lineno}: catches an error only to say it as tool_main would'
    assert checked >= 12, checked  # train, test, the analysis, deployment, converter and misc tools


class _ProjectError(ValueError):
    pass


@tool_main(errors=(_ProjectError,))
def _main_running_foreign_code(argv=None):
    with keep_tracebacks(except_for=(_ProjectError,)):
        if argv[0] == 'foreign':
            raise ValueError('Expected more than 1 value per channel when training')
        raise _ProjectError('the neck expects in_channels=[256, 512], but ReXNet returns [38, 61]')


def test_errors_of_code_not_the_projects_keep_their_traceback(capsys):
    """Inside keep_tracebacks (mmengine's Runner in train.py and test.py) a ValueError is not a message to a
    user: it propagates with its traceback; the project's own errors still become one line."""
    with pytest.raises(ValueError, match='Expected more than 1 value'):
        _main_running_foreign_code(['foreign'])
    with pytest.raises(SystemExit) as exc:
        _main_running_foreign_code(['own'])
    assert exc.value.code == 1 and capsys.readouterr().err.startswith('error: the neck expects')
