"""tools/analysis_tools/paper_runs.py --dry-run: every command of the paper's tables, in order."""
import os.path as osp
import shlex

import pytest

from rexnet_mmdet.analysis.paper import PAPER_TABLES
from rexnet_mmdet.utils.build import PROJECT_ROOT


def _commands(out: str):
    return [shlex.split(line) for line in out.splitlines() if line and not line.startswith('#')]


def test_dry_run_slurm_prints_train_test_and_gather(load_tool, capsys):
    tool = load_tool('analysis_tools/paper_runs.py')
    assert tool.main(['--table', '7', '--launcher', 'slurm', '--partition', 'gpu', '--gpus', '16',
                      '--root', 'work_dirs/paper', '--dry-run']) == 0
    commands = _commands(capsys.readouterr().out)
    assert len(commands) == 2 * len(PAPER_TABLES['7']) + 1
    for i, name in enumerate(PAPER_TABLES['7']):
        train, test = commands[2 * i], commands[2 * i + 1]
        assert train == ['GPUS=16', 'GPUS_PER_NODE=8', 'bash', 'tools/slurm_train.sh', 'gpu', name,
                         f'configs/{name}.py', f'work_dirs/paper/{name}', '--resume']
        # The R-CNN configs train 12 epochs (mmdet's 1x schedule): the test reads the last checkpoint.
        assert test == ['GPUS=16', 'GPUS_PER_NODE=8', 'bash', 'tools/slurm_test.sh', 'gpu', name,
                        f'configs/{name}.py', f'work_dirs/paper/{name}/epoch_12.pth', '--work-dir',
                        f'work_dirs/paper/{name}']
    assert commands[-1] == ['python', 'tools/analysis_tools/gather_results.py', 'work_dirs/paper', '--out',
                            'work_dirs/paper/results', '--plot']
    for command in commands:
        scripts = [a for a in command if a.startswith('tools/')]
        assert scripts and osp.isfile(osp.join(PROJECT_ROOT, scripts[0]))


def test_dry_run_torchrun_with_test_dev(load_tool, capsys):
    tool = load_tool('analysis_tools/paper_runs.py')
    info = 'data/coco/annotations/image_info_test-dev2017.json'
    assert tool.main(['--table', '6', '--configs', 'configs/ssdlite_rexnet_x1.0.py', '--launcher', 'pytorch',
                      '--root', 'runs', '--test-dev', info, '--test-dev-images', 'data/coco/test2017/',
                      '--dry-run']) == 0
    commands = _commands(capsys.readouterr().out)
    assert len(commands) == 3 * 3 + 1  # the config named twice runs once
    train, test, submission = commands[:3]
    assert train == ['bash', 'tools/dist_train.sh', 'configs/ssdlite_rexnet_x0.9.py', '8', '--work-dir',
                     'runs/ssdlite_rexnet_x0.9', '--resume']
    assert test[:5] == ['bash', 'tools/dist_test.sh', 'configs/ssdlite_rexnet_x0.9.py',
                        'runs/ssdlite_rexnet_x0.9/' + test[3].split('/')[-1], '8']
    assert submission[-4:] == ['--test-dev', info, '--test-dev-images', 'data/coco/test2017/']


@pytest.mark.parametrize('argv, message', [
    (['--table', '7', '--launcher', 'slurm', '--root', 'r', '--dry-run'], '--partition'),
    (['--launcher', 'pytorch', '--root', 'r', '--dry-run'], 'nothing to run'),
    (['--configs', 'configs/nope.py', '--launcher', 'pytorch', '--root', 'r', '--dry-run'], 'not found'),
])
def test_bad_arguments_fail_in_one_line(load_tool, capsys, argv, message):
    tool = load_tool('analysis_tools/paper_runs.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and message in err and '\n' not in err


def test_a_failed_training_skips_its_tests_and_the_table_is_still_gathered(tmp_path):
    from rexnet_mmdet.analysis.paper_runs import Step, run
    marks = tmp_path / 'ran'
    marks.mkdir()
    steps = [Step('train a', ['bash', '-c', 'exit 3']),
             Step('test a', ['bash', '-c', f'touch {marks}/test_a']),
             Step('train b', ['bash', '-c', f'touch {marks}/train_b_$MARK'], env=dict(MARK='env')),
             Step('test b', ['bash', '-c', f'touch {marks}/test_b']),
             Step('gather', ['python', '-c', f'open({str(marks / "gather")!r}, "w")'])]
    lines = []
    assert run(steps, log=lines.append) == ['train a']
    assert sorted(p.name for p in marks.iterdir()) == ['gather', 'test_b', 'train_b_env']
    assert 'skipped: test a (its training failed)' in lines
