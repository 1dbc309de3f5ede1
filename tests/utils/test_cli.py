"""The tools' one way to fail: ``error: <message>`` on stderr, exit status 1, no traceback."""
import pytest

from rexnet_mmdet.utils.cli import fail, shape_wh, tool_main


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
    """No tool catches and re-words errors by hand: each tool's main is the one tool_main wraps."""
    import glob
    import os.path as osp

    from rexnet_mmdet.utils.build import PROJECT_ROOT
    for path in sorted(glob.glob(osp.join(PROJECT_ROOT, 'tools', '**', '*.py'), recursive=True)):
        text = open(path).read()
        if 'def main(' not in text:
            continue
        assert '@tool_main' in text, f'{path}: main is not decorated with tool_main'
        assert 'fail(str(e))' not in text, f'{path}: re-words an error by hand'
