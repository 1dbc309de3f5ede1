"""tools/train.py end to end: resume after SIGKILL, 2-process gloo training, refusals and errors."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from rexnet_mmdet.engine import find_resume_checkpoint, load_checkpoint_file
from rexnet_mmdet.utils.build import PROJECT_ROOT

MAX_ITERS = 10


def _params(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items() if v.is_floating_point()}


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key


def _momentum(ckpt: dict) -> list:
    return [s['momentum_buffer'] for _, s in sorted(ckpt['optimizer']['state'].items())]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('shapes') / 'root')


@pytest.mark.slow
def test_resume_after_sigkill_continues_exactly(tmp_path, data_root, tiny_runs):
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root, max_iters=MAX_ITERS,
                                         ckpt_interval=2)
    reference_dir, killed_dir = str(tmp_path / 'reference'), str(tmp_path / 'killed')

    reference = tiny_runs.run_tool(['train.py', config, '--work-dir', reference_dir])
    assert reference.returncode == 0, reference.stdout[-3000:]

    # The same run, killed with SIGKILL as soon as it has written a checkpoint.
    proc = subprocess.Popen([sys.executable, osp.join(PROJECT_ROOT, 'tools', 'train.py'), config,
                             '--work-dir', killed_dir,
                             '--cfg-options', 'randomness.seed=0'],
                            cwd=PROJECT_ROOT, env=tiny_runs.tool_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pointer = osp.join(killed_dir, 'last_checkpoint')
    deadline = time.monotonic() + 240
    while not osp.exists(pointer) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, 'the run ended before it could be killed'
    resume_from = find_resume_checkpoint(killed_dir)
    killed_at = int(osp.basename(resume_from)[len('iter_'):-len('.pth')])
    assert 2 <= killed_at < MAX_ITERS
    assert not osp.exists(osp.join(killed_dir, f'iter_{MAX_ITERS}.pth'))

    # Resume without a seed in the config: the interrupted run's seed must be taken over,
    # or the data would come in another order.
    resumed = tiny_runs.run_tool(['train.py', config, '--work-dir', killed_dir, '--resume',
                                  '--cfg-options', 'randomness.seed=None'])
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    log = resumed.stdout
    assert f'--resume: continuing from {resume_from}' in log
    assert "resuming with the interrupted run's seed 0" in log
    assert f'resumed epoch: 0, iter: {killed_at}' in log
    assert f'Advance dataloader {killed_at} steps' in log
    first_logged = int(log.split('Iter(train) [')[1].split('/')[0])
    assert first_logged == killed_at + 1

    final = load_checkpoint_file(osp.join(killed_dir, f'iter_{MAX_ITERS}.pth'))
    expected = load_checkpoint_file(osp.join(reference_dir, f'iter_{MAX_ITERS}.pth'))
    assert final['meta']['iter'] == expected['meta']['iter'] == MAX_ITERS
    # Same weights, same optimizer momentum, same scheduler position as the uninterrupted run:
    # a restarted scheduler or a reset optimizer would give other numbers.
    _assert_same_tensors(_params(final['state_dict']), _params(expected['state_dict']))
    for got, want in zip(_momentum(final), _momentum(expected)):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert final['param_schedulers'] == expected['param_schedulers']
    assert final['param_schedulers'][0]['last_step'] == MAX_ITERS - 1
    # And the curves stitch both sessions together.
    assert osp.isfile(osp.join(killed_dir, 'training_curves.png'))


@pytest.mark.slow
def test_checkpoint_with_code_is_refused_by_resume(tmp_path, data_root, tiny_runs):
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root)
    marker = tmp_path / 'payload_ran'
    evil = tiny_runs.write_malicious_checkpoint(str(tmp_path / 'evil.pth'), str(marker))
    result = tiny_runs.run_tool(['train.py', config, '--work-dir', str(tmp_path / 'wd'), '--resume', evil])
    assert result.returncode != 0
    assert 'refusing to load checkpoint' in result.stdout and 'system' in result.stdout
    assert 'Traceback' not in result.stdout
    assert not marker.exists()


@pytest.mark.slow
def test_missing_coco_stops_before_any_model_is_built(tmp_path, tiny_runs):
    start = time.monotonic()
    result = tiny_runs.run_tool(['train.py', osp.join(PROJECT_ROOT, 'configs', 'faster_rcnn_rexnet_x1.0_fpn.py'),
                                 '--work-dir', str(tmp_path / 'wd')], cwd=str(tmp_path))
    assert result.returncode != 0
    out = result.stdout
    assert 'COCO dataset not found for train_dataloader' in out
    assert 'data/coco/annotations/instances_train2017.json' in out and 'cocodataset.org' in out
    assert 'Traceback' not in out
    # Nothing was built: no runner log, no backbone warning, no work dir contents.
    assert 'mmengine - INFO' not in out and 'RANDOM weights' not in out
    assert not osp.exists(tmp_path / 'wd') or not os.listdir(tmp_path / 'wd')
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_amp_without_cuda_is_a_clear_error(tmp_path, data_root, tiny_runs):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root)
    result = tiny_runs.run_tool(['train.py', config, '--work-dir', str(tmp_path / 'wd'), '--amp'])
    assert result.returncode != 0 and '--amp needs a CUDA GPU' in result.stdout


_RANK_DUMP_HOOK = '''
import os.path as osp
import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankDumpHook(Hook):
    """Each rank writes its final parameters and the images it trained on."""
    def __init__(self):
        self.img_ids = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.img_ids.append(sorted(int(s.img_id) for s in data_batch['data_samples']))

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.save(dict(world_size=world, img_ids=self.img_ids, backend=dist.get_backend(),
                        params={k: v.detach().clone() for k, v in model.named_parameters()}),
                   osp.join(runner.work_dir, f'rank{rank}.pt'))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_training_agrees(tmp_path, data_root, tiny_runs):
    (tmp_path / 'rank_dump_hook.py').write_text(_RANK_DUMP_HOOK)
    extra = ("custom_imports = dict(imports=['rexnet_mmdet', 'rexnet_mmdet.datasets', 'rexnet_mmdet.engine', "
             "'rank_dump_hook'], allow_failed_imports=False)\n"
             "custom_hooks = [dict(type='RankDumpHook')]\n")
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root, max_iters=4, ckpt_interval=4,
                                         val_interval=4, extra=extra)
    work_dir = str(tmp_path / 'wd')
    env = tiny_runs.tool_env({'PYTHON': sys.executable, 'PORT': str(_free_port()),
                              'PYTHONPATH': f'{tmp_path}{os.pathsep}{PROJECT_ROOT}'})
    result = subprocess.run(['bash', osp.join(PROJECT_ROOT, 'tools', 'dist_train.sh'), config, '2',
                             '--work-dir', work_dir],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=400)
    assert result.returncode == 0, result.stdout[-4000:]
    ranks = [torch.load(osp.join(work_dir, f'rank{r}.pt'), weights_only=True) for r in (0, 1)]
    assert [r['world_size'] for r in ranks] == [2, 2] and ranks[0]['backend'] == 'gloo'
    # Each rank saw its own share of the data ...
    assert ranks[0]['img_ids'] != ranks[1]['img_ids']
    # ... and both ended with the same model, the one the checkpoint holds.
    _assert_same_tensors(ranks[0]['params'], ranks[1]['params'])
    ckpt = load_checkpoint_file(osp.join(work_dir, 'iter_4.pth'))
    _assert_same_tensors({k: v for k, v in _params(ckpt['state_dict']).items() if k in ranks[0]['params']},
                         ranks[0]['params'])
    assert 'bbox_mAP' in result.stdout  # the validation at the end ran across both processes


_FAKE_SRUN = '''#!/usr/bin/env bash
# Stands in for Slurm's srun: records its options, then runs the command as task 0 of 1.
printf '%s\\n' "$@" > "$SRUN_ARGS_FILE"
while [ $# -gt 0 ]; do
    case "$1" in -p) shift 2 ;; -*) shift ;; *) break ;; esac
done
SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST=127.0.0.1 exec "$@"
'''


@pytest.mark.slow
def test_slurm_script_launches_a_distributed_run(tmp_path, data_root, tiny_runs):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(_FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root, max_iters=2, ckpt_interval=2,
                                         val_interval=1000)
    work_dir = str(tmp_path / 'wd')
    env = tiny_runs.tool_env({'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                              'SRUN_ARGS_FILE': str(tmp_path / 'args'),
                              'PYTHON': sys.executable, 'GPUS': '1', 'MASTER_PORT': str(_free_port())})
    result = subprocess.run(['bash', osp.join(PROJECT_ROOT, 'tools', 'slurm_train.sh'), 'gpu_part', 'rexnet_job',
                             config,
                             work_dir, '--cfg-options', 'train_cfg.val_interval=1000'],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    args = (tmp_path / 'args').read_text().split('\n')
    assert {'-p', 'gpu_part', '--job-name=rexnet_job', '--ntasks=1', '--ntasks-per-node=1'} <= set(args)
    assert '--launcher=slurm' in args and f'--work-dir={work_dir}' in args
    assert 'Distributed launcher: slurm' in result.stdout and 'Distributed training: True' in result.stdout
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))


def test_auto_scale_lr_and_work_dir_options(tmp_path, data_root, capsys, tiny_runs, load_tool):
    train = load_tool('train.py')
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root)
    cfg = train.configure(train.parse_args([config, '--auto-scale-lr']))
    assert cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size == 4
    assert osp.normpath(cfg.work_dir) == osp.join('work_dirs', 'tiny')
    cfg = train.configure(train.parse_args([config, '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                                            'auto_scale_lr.base_batch_size=16']))
    assert cfg.work_dir == str(tmp_path / 'wd') and not cfg.auto_scale_lr.enable
    assert cfg.auto_scale_lr.base_batch_size == 16
    # The evaluators print COCO's own 12 numbers (maxDets 1, 10, 100).
    assert list(cfg.val_evaluator.proposal_nums) == [1, 10, 100]
    (tmp_path / 'no_base.py').write_text(f'_base_ = {config!r}\nauto_scale_lr = dict(_delete_=True, enable=False)\n')
    with pytest.raises(SystemExit):
        train.configure(train.parse_args([str(tmp_path / 'no_base.py'), '--auto-scale-lr']))
    assert 'needs auto_scale_lr = dict(base_batch_size=N)' in capsys.readouterr().err


def test_a_config_typo_gets_did_you_mean(load_tool, capsys, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    with pytest.raises(SystemExit):
        load_tool('train.py').main(['configs/faster_rcnn_rexnet_x1.0_fnp.py'])
    err = capsys.readouterr().err
    assert err.startswith('error: config file configs/faster_rcnn_rexnet_x1.0_fnp.py does not exist; did you mean '
                          'configs/faster_rcnn_rexnet_x1.0_fpn.py or ') and err.count('\n') == 1


def test_a_dict_in_cfg_options_gets_the_dotted_form(load_tool, capsys, monkeypatch):
    """mmengine keeps KEY=dict(...) as a string and later stops with a bare AssertionError."""
    monkeypatch.chdir(PROJECT_ROOT)
    with pytest.raises(SystemExit):
        load_tool('train.py').main(['configs/faster_rcnn_rexnet_x1.0_fpn.py', '--cfg-options',
                                    "model.backbone.init_cfg=dict(type='Pretrained',checkpoint='w.pth')"])
    err = capsys.readouterr().err
    assert err == ("error: --cfg-options model.backbone.init_cfg=dict(type='Pretrained',checkpoint='w.pth'): a value "
                   'cannot be a dict here; set its fields one by one in the dotted form, e.g. '
                   'model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH (a field the '
                   'config lacks is added)\n')
