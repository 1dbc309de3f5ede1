"""Bad checkpoints x entry points: one clear line, a non-zero exit, nothing run, nothing lost.

The entry points are tools/train.py (--resume, load_from, the backbone's init_cfg Pretrained),
tools/test.py and tools/model_converters/convert_weights.py, called in-process (their ``main``) for the matrix
and as processes for what a user sees on the terminal. Legitimate checkpoints (the project's
own training checkpoint, over a path and over a URL) must load everywhere.
"""
import hashlib
import importlib.util
import os
import os.path as osp
import shutil
import sys

import pytest
import torch

from tiny_runs import ROOT, RunsCommand, run_tool, write_tiny_config  # noqa: E402

# A real training run, then every bad file through every entry point: for make test, not make test-fast.
pytestmark = pytest.mark.slow



#: Tools outside tools/'s top level, by name.
TOOL_PATHS = {'convert_weights': 'model_converters/convert_weights.py'}


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', osp.join(ROOT, 'tools', TOOL_PATHS.get(name, f'{name}.py')))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A tiny config and the checkpoint tools/train.py wrote for it (message hub, optimizer ...)."""
    tmp = tmp_path_factory.mktemp('entry_points')
    config = write_tiny_config(str(tmp / 'tiny.py'), str(tmp / 'data'), max_iters=2, ckpt_interval=2)
    result = run_tool(['train.py', config, '--work-dir', str(tmp / 'run')])
    assert result.returncode == 0, result.stdout[-3000:]
    return tmp, config, str(tmp / 'run' / 'iter_2.pth')


@pytest.fixture(scope='module')
def bad_files(run):
    """name -> path of every kind of file that must be refused."""
    tmp, _, good = run
    folder = tmp / 'bad'
    folder.mkdir()
    state = torch.load(good, map_location='cpu', weights_only=False)['state_dict']
    files = {}

    def put(name, data=None, obj=None):
        path = folder / f'{name}.pth'
        if obj is not None:
            torch.save(obj, str(path))
        else:
            path.write_bytes(data)
        files[name] = str(path)

    put('empty', b'')
    put('garbage', b'\x01' + bytes(range(256)) * 16)
    put('text', b'checkpoint: see the shared drive\n')
    data = open(good, 'rb').read()
    put('truncated', data[:len(data) // 2])
    scripted = folder / 'torchscript.pth'
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    files['torchscript'] = str(scripted)
    put('not_a_dict', obj=[torch.ones(2)])
    put('meta_not_a_dict', obj={'meta': ['iter', 2], 'state_dict': state})
    put('fits_none', obj={'state_dict': {'fc.weight': torch.ones(4, 4), 'fc.bias': torch.ones(4)}})
    put('fits_too_few', obj={'state_dict': {k: v for k, v in state.items() if not k.startswith('backbone.')}})
    put('payload', obj={'meta': RunsCommand(f'touch {tmp / "payload_ran"}'), 'state_dict': state})
    return files


def _pretrained_config(tmp, config: str, checkpoint: str) -> str:
    path = tmp / f'pretrained_{hashlib.md5(checkpoint.encode()).hexdigest()[:8]}.py'
    path.write_text(f'_base_ = {config!r}\n'
                    f'model = dict(backbone=dict(init_cfg=dict(_delete_=True, type="Pretrained", checkpoint={checkpoint!r})))\n')
    return str(path)


ENTRY_POINTS = ['train --resume', 'train load_from', 'train init_cfg', 'test', 'convert_weights']
#: Files whose problem the entry point cannot see (weights-only tools take any weights they can use).
NOT_APPLICABLE = {('meta_not_a_dict', 'train init_cfg'), ('meta_not_a_dict', 'convert_weights')}


def _call(entry: str, run, path: str, tmp):
    """Run an entry point in-process; return its exit code."""
    _, config, _ = run
    work_dir = str(tmp / 'wd')
    try:
        if entry == 'train --resume':
            _tool('train').main([config, '--work-dir', work_dir, '--resume', path])
        elif entry == 'train load_from':
            _tool('train').main([config, '--work-dir', work_dir, '--cfg-options', f'load_from={path}'])
        elif entry == 'train init_cfg':
            _tool('train').main([_pretrained_config(tmp, config, path), '--work-dir', work_dir])
        elif entry == 'test':
            _tool('test').main([config, path, '--work-dir', work_dir])
        else:
            return _tool('convert_weights').main([path, str(tmp / 'converted.pth')])
    except SystemExit as e:
        return e.code
    return 0


@pytest.mark.parametrize('entry', ENTRY_POINTS)
@pytest.mark.parametrize('name', ['empty', 'garbage', 'text', 'truncated', 'torchscript', 'not_a_dict',
                                  'meta_not_a_dict', 'fits_none', 'fits_too_few', 'payload'])
def test_bad_file_gives_one_clear_line(run, bad_files, tmp_path, capsys, name, entry):
    if (name, entry) in NOT_APPLICABLE:
        pytest.skip('this entry point reads only the weights')
    code = _call(entry, run, bad_files[name], tmp_path)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert code not in (0, None), f'{entry} accepted {name}: {err[-2000:]}'
    assert len(errors) == 1, err[-3000:]
    assert osp.basename(bad_files[name]) in errors[0]
    assert not (run[0] / 'payload_ran').exists()
    assert 'coco/bbox_mAP' not in err and 'Traceback' not in err


def test_the_terminal_shows_one_line_and_no_traceback(run, bad_files, tmp_path):
    # Through a real process, as a user runs it, with a work dir that holds a run: nothing in it changes.
    tmp, config, good = run
    work_dir = tmp_path / 'wd'
    shutil.copytree(str(tmp / 'run'), str(work_dir))
    before = {p: open(osp.join(work_dir, p), 'rb').read() for p in os.listdir(work_dir)
              if osp.isfile(osp.join(work_dir, p))}
    for args in (['train.py', config, '--work-dir', str(work_dir), '--resume', bad_files['truncated']],
                 ['train.py', config, '--work-dir', str(work_dir), '--resume', bad_files['meta_not_a_dict']],
                 ['test.py', config, bad_files['fits_too_few'], '--work-dir', str(tmp_path / 'test_wd')],
                 ['model_converters/convert_weights.py', bad_files['empty'], str(tmp_path / 'out.pth')]):
        result = run_tool(args)
        assert result.returncode == 1, result.stdout[-3000:]
        assert 'Traceback' not in result.stdout
        errors = [line for line in result.stdout.splitlines() if line.startswith('error:')]
        bad = [a for a in args if a in bad_files.values()][0]
        assert len(errors) == 1 and osp.basename(bad) in errors[0], result.stdout[-2000:]
    for name, data in before.items():
        assert open(osp.join(work_dir, name), 'rb').read() == data, name


def test_own_training_checkpoint_loads_everywhere(run, tmp_path, capsys):
    tmp, config, good = run
    # test.py evaluates it; load_from fine-tunes from it; the backbone's init_cfg takes its
    # backbone.* weights; convert_weights turns it into ImageNet-format backbone weights.
    assert 'coco/bbox_mAP' in _tool('test').run([config, good, '--work-dir', str(tmp_path / 'test')])
    assert _call('train load_from', run, good, tmp_path) == 0
    (tmp_path / 'init').mkdir()
    assert _call('train init_cfg', run, good, tmp_path / 'init') == 0
    assert _call('convert_weights', run, good, tmp_path) == 0
    converted = torch.load(str(tmp_path / 'converted.pth'), weights_only=True)
    assert 'stem.conv.weight' in converted['state_dict'] and converted['meta']['widen_factor'] == 1.0


def test_weights_only_tools_take_the_backbone_of_a_training_checkpoint(run, tmp_path):
    tmp, config, good = run
    result = run_tool(['analysis_tools/feature_rank.py', '--config', f'{config}:{good}', '--num-images', '8', '--size', '64',
                       '--batch-size', '8', '--out', str(tmp_path / 'rank.png')])
    assert result.returncode == 0, result.stdout[-3000:]
    result = run_tool(['deployment/export_onnx.py', '--widen-factor', '1.0', '--checkpoint', good, '--shape', '64', '64',
                       '--repeats', '0', '--out', str(tmp_path / 'backbone.onnx')])
    assert result.returncode == 0, result.stdout[-3000:]
    assert f'weights from {good}' in result.stdout


def test_url_payload_through_train_is_refused_and_never_runs(run, http_root, tmp_path):
    tmp, config, good = run
    root, base = http_root
    marker = tmp_path / 'payload_ran'
    state = torch.load(good, map_location='cpu', weights_only=False)['state_dict']
    torch.save({'meta': RunsCommand(f'touch {marker}'), 'state_dict': state}, str(root / 'evil.pth'))
    result = run_tool(['train.py', config, '--work-dir', str(tmp_path / 'wd'),
                       '--cfg-options', f'load_from={base}/evil.pth'],
                      env={'TORCH_HOME': str(tmp_path / 'torch_home')})
    assert result.returncode == 1, result.stdout[-3000:]
    errors = [line for line in result.stdout.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'evil.pth' in errors[0] and 'Nothing from the file was run' in errors[0]
    assert 'Traceback' not in result.stdout
    assert not marker.exists()


def test_good_checkpoint_over_a_url_evaluates(run, http_root, tmp_path):
    tmp, config, good = run
    root, base = http_root
    shutil.copy(good, str(root / 'tiny_iter_2.pth'))
    result = run_tool(['test.py', config, f'{base}/tiny_iter_2.pth', '--work-dir', str(tmp_path / 'wd')],
                      env={'TORCH_HOME': str(tmp_path / 'torch_home')})
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'coco/bbox_mAP' in result.stdout
    assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'tiny_iter_2.pth').is_file()


def test_random_backbone_with_frozen_batchnorm_is_refused_with_the_options_to_use(run, tmp_path, capsys):
    tmp, config, _ = run
    frozen = tmp_path / 'frozen.py'
    frozen.write_text(f'_base_ = {config!r}\nmodel = dict(backbone=dict(init_cfg=None, norm_eval=True, '
                      f'norm_cfg=dict(type="BN", requires_grad=False)))\n')
    train = _tool('train')
    with pytest.raises(SystemExit) as exc:
        train.main([str(frozen), '--work-dir', str(tmp_path / 'wd')])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith('error: ') and err.count('\n') == 1, err
    assert 'model.backbone.norm_eval=False model.backbone.norm_cfg.requires_grad=True' in err
    # With those options it trains; with a checkpoint to load, the frozen config is fine.
    cfg = train.configure(train.parse_args([str(frozen), '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                                            'model.backbone.norm_eval=False',
                                            'model.backbone.norm_cfg.requires_grad=True']))
    assert cfg.model.backbone.norm_eval is False
    cfg = train.configure(train.parse_args([str(frozen), '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                                            f'load_from={run[2]}']))
    assert cfg.load_from == run[2]
