"""scripts/gpu_check.sh and scripts/gpu_benchmarks.sh rehearsed on the CPU: the budget holds when a step
hangs, a step or the whole command stopped at any moment leaves what it measured, and the output folder
holds only small files with summary.txt. Each guarantee is tested by doing the bad thing for real."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from functools import partial

import pytest

from rexnet_mmdet.utils.build import PROJECT_ROOT

SCRIPTS = osp.join(PROJECT_ROOT, 'scripts')
MAX_FILE_BYTES = 2 << 20


def _env() -> dict:
    return dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')


def _start(script: str, tmp_path, *args) -> subprocess.Popen:
    out, scratch = tmp_path / 'out', tmp_path / 'scratch'
    return subprocess.Popen(['bash', osp.join(SCRIPTS, script), '--scratch', str(scratch), *args, str(out)],
                            cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _steps(out) -> dict:
    summary = json.loads((out / 'summary.json').read_text())
    return {s['name']: s for s in summary['steps']}


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'  # a zombie has ended
    except OSError:
        return False


def _hang_pids(tmp_path) -> list:
    path = tmp_path / 'scratch' / 'hang.pids'
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, 'the hang step never started'
        time.sleep(0.1)
    return [int(p) for p in path.read_text().split()]


def _assert_small(out) -> None:
    for folder, _, names in os.walk(out):
        for name in names:
            path = osp.join(folder, name)
            assert osp.getsize(path) <= MAX_FILE_BYTES, path
            assert not name.endswith(('.pth', '.onnx')), path


@pytest.mark.slow
def test_a_hanging_step_is_cut_with_its_children_and_the_budget_holds(tmp_path):
    start = time.monotonic()
    proc = _start('gpu_benchmarks.sh', tmp_path, '--hang-step', '--budget', '10')
    pids = _hang_pids(tmp_path)
    stdout, _ = proc.communicate(timeout=60)
    elapsed = time.monotonic() - start
    assert elapsed < 10 + 3, stdout  # the budget, and the runner's own start
    assert proc.returncode == 1
    assert not any(_alive(p) for p in pids), 'a process of the cut step is still running'
    steps = _steps(tmp_path / 'out')
    assert steps['hang']['status'] == 'cut' and 'stopped at its limit' in steps['hang']['note']
    # Every step of the plan has its line: none could start once the hang had used the budget.
    assert [s for s in steps if s != 'hang'] == ['install', 'environment', 'race', 'train', 'backbones',
                                                  'precisions', 'compile']
    assert all(s['status'] == 'cut' for s in steps.values())
    text = (tmp_path / 'out' / 'summary.txt').read_text()
    assert text.splitlines()[1].split()[:2] == ['hang', 'cut'] and '| sleeping' in text
    assert text in stdout  # printed at the end too


def test_stopping_the_whole_command_ends_the_step_and_keeps_the_summary(tmp_path):
    proc = _start('gpu_check.sh', tmp_path, '--hang-step', '--budget', '300')
    pids = _hang_pids(tmp_path)
    assert 'hang' in (tmp_path / 'out' / 'summary.txt').read_text()  # the running step is named while it runs
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stdout
    assert not any(_alive(p) for p in pids)
    steps = _steps(tmp_path / 'out')
    assert steps['hang']['status'] == 'cut' and 'the whole command was stopped (SIGTERM)' in steps['hang']['note']
    assert 'hang' in (tmp_path / 'out' / 'summary.txt').read_text()


def test_a_command_killed_outright_leaves_no_step_running(tmp_path):
    """SIGKILL gives the runner no chance to act: the step's group still ends, and summary.txt says
    which step was running."""
    proc = _start('gpu_benchmarks.sh', tmp_path, '--hang-step', '--budget', '300')
    pids = _hang_pids(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, 'the step outlived the command'
        time.sleep(0.1)
    assert 'hang          running' in (tmp_path / 'out' / 'summary.txt').read_text()


def test_bad_options_fail_with_one_line(tmp_path):
    for args, message in ((['--budget', '0'], '--budget must be positive'),
                          (['--cap', 'race'], '--cap takes STEP=SECONDS'),
                          (['--scratch', str(tmp_path / 'out' / 'x')], 'is inside OUTDIR')):
        result = subprocess.run(['bash', osp.join(SCRIPTS, 'gpu_benchmarks.sh'), *args, str(tmp_path / 'out')],
                                cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=60)
        assert result.returncode == 2 and message in result.stdout, result.stdout


@pytest.mark.slow
def test_a_benchmark_stopped_midway_keeps_the_rows_it_measured(tmp_path):
    """benchmark.py killed (SIGKILL, no chance to tidy up) after its first training run: the .md and
    .json files hold that row, and the record says the run did not finish."""
    md, js = tmp_path / 'train.md', tmp_path / 'train.json'
    proc = subprocess.Popen(
        [sys.executable, 'tools/analysis_tools/benchmark.py', '--part', 'train', '--threads', '1', '--markdown',
         '--md', str(md), '--json', str(js), '--train-detectors', 'SSDLite ReXNet x1.0', 'SSDLite MobileNetV2',
         '--train-batch', '2', '--train-size', '64', '64', '--train-warmup', '0', '--train-steps', '1'],
        cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (js.exists() and json.loads(js.read_text())['results'].get('train')):
            assert proc.poll() is None, 'benchmark.py ended before its first row'
            assert time.monotonic() < deadline, 'no row within 240 s'
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    record = json.loads(js.read_text())
    rows = record['results']['train']
    assert record['complete'] is False and 1 <= len(rows) < 8
    table = md.read_text()
    assert 'Training throughput' in table
    assert table.count('| SSDLite ') == len(rows)


def _dry_run(script: str, tmp_path, budget: int):
    start = time.monotonic()
    proc = _start(script, tmp_path, '--dry-run', '--budget', str(budget))
    stdout, _ = proc.communicate(timeout=budget + 60)
    elapsed = time.monotonic() - start
    out = tmp_path / 'out'
    assert elapsed < budget + 10, stdout[-3000:]
    assert (out / 'summary.txt').read_text() in stdout
    _assert_small(out)
    return _steps(out), out, stdout


@pytest.mark.slow
def test_benchmarks_dry_run(tmp_path):
    """A short budget on a shared CPU: the steps that do not fit are cut, and every table there is
    holds every row its record holds."""
    steps, out, stdout = _dry_run('gpu_benchmarks.sh', tmp_path, 60)
    assert list(steps) == ['install', 'environment', 'race', 'train', 'backbones', 'precisions', 'compile']
    assert steps['install']['status'] == steps['environment']['status'] == 'passed', stdout[-3000:]
    for name, step in steps.items():
        assert step['status'] in ('passed', 'cut'), stdout[-3000:]  # nothing fails on the CPU
        if name in ('install', 'environment') or not (out / f'{name}.json').exists():
            continue
        record = json.loads((out / f'{name}.json').read_text())
        if step['status'] == 'passed':
            assert record['complete'] is True, step
        else:  # cut: the summary says whether it was stopped after its last row (while ending) or short of it
            assert ('its tables were complete' in step['note']) is record['complete'], step
        table = (out / f'{name}.md').read_text()
        for rows in record['results'].values():
            assert all(r.get('label', r.get('name')) in table for r in rows)
    assert steps['race']['status'] == 'passed' or 'stopped at its limit' in steps['race']['note']


@pytest.mark.slow
def test_check_dry_run(tmp_path):
    """A short budget on a shared CPU: the first steps pass, the rest pass or are cut (the whole
    check takes about 4 minutes here), and what came back is small."""
    steps, out, stdout = _dry_run('gpu_check.sh', tmp_path, 120)
    assert list(steps) == ['install', 'environment', 'cuda_tests', 'demo_train', 'demo_resume', 'demo_test',
                           'batch_tests', 'nan_amp', 'nan_fp32']
    for name in ('install', 'environment', 'cuda_tests'):
        assert steps[name]['status'] == 'passed', stdout[-3000:]
    assert all(s['status'] in ('passed', 'cut', 'skipped') for s in steps.values()), stdout[-3000:]
    assert steps['nan_amp']['status'] in ('skipped', 'cut')  # --amp needs CUDA
    assert (out / 'cuda_tests.xml').exists() and json.loads((out / 'environment.json').read_text())['gpu'] is False
    if steps['demo_train']['status'] == 'passed':
        # The run's logs came back; its checkpoints stayed in the scratch folder.
        assert list(out.glob('demo/*/*.log')) and list((tmp_path / 'scratch' / 'demo').glob('iter_2.pth'))


def test_a_step_cut_after_its_last_row_says_its_tables_are_whole(tmp_path, monkeypatch):
    """benchmark.py stopped at its limit after writing its last row (while it ends) is still cut, but its
    summary line says the tables are whole; one stopped before says nothing of the kind."""
    monkeypatch.syspath_prepend(SCRIPTS)
    import gpu_benchmarks
    import gpu_steps
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        budget = gpu_steps.Budget('rehearsal', str(tmp_path / 'out'), 60, str(tmp_path / 'scratch'))
        for name, complete in (('ending', True), ('midway', False)):
            record = tmp_path / f'{name}.json'
            writer = (f'import json, time; json.dump(dict(complete={complete}), open({str(record)!r}, "w")); '
                      f'time.sleep(60)')
            budget.run(name, [sys.executable, '-c', writer], cap=gpu_steps.MIN_STEP_S + 1,
                       after=partial(gpu_benchmarks._finished_tables, str(record)))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    steps = {s['name']: s for s in budget.steps}
    assert steps['ending']['status'] == steps['midway']['status'] == 'cut'
    assert 'its tables were complete' in steps['ending']['note']
    assert 'its tables' not in steps['midway']['note']
