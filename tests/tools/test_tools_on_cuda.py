"""The tools on a CUDA GPU: mixed-precision training with with_cp, --resume, a GPU-written checkpoint on
the CPU, tools/test.py with and without the inference path, and the SSDLite export of a GPU-trained model.

Every test here is marked ``cuda`` (skipped where torch sees no GPU). The runs are the CPU tests' tiny
configs (tests/helpers/tiny_runs.py); fp32 comparisons are made with TF32 off.
"""
import os.path as osp
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.structures import InstanceData

from detections import assert_same_detections  # tests/helpers/, registered by conftest.py
from rexnet_mmdet.engine import load_checkpoint_file
from rexnet_mmdet.utils.build import PROJECT_ROOT

pytestmark = pytest.mark.cuda

MAX_ITERS = 6

#: Runs a tool (argv[1]) with TF32 off in fp32 convolutions and matmuls.
WITHOUT_TF32 = '''
import runpy, sys, torch
torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _run_without_tf32(tiny_runs, tmp_path, args, env=None):
    wrapper = tmp_path / 'without_tf32.py'
    wrapper.write_text(WITHOUT_TF32)
    return subprocess.run([sys.executable, str(wrapper), osp.join(PROJECT_ROOT, 'tools', args[0])] + list(args[1:]),
                          cwd=PROJECT_ROOT, env=tiny_runs.tool_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)


@pytest.fixture(scope='module')
def gpu_run(tmp_path_factory, tiny_runs):
    """A tiny Faster R-CNN trained on the GPU with --amp and with_cp; its config and work dir."""
    tmp = tmp_path_factory.mktemp('gpu_run')
    config = tiny_runs.write_tiny_config(str(tmp / 'tiny.py'), str(tmp / 'shapes'), max_iters=MAX_ITERS,
                                         ckpt_interval=2, optimizer=tiny_runs.ADAMW)
    work_dir = str(tmp / 'full')
    result = tiny_runs.run_tool(['train.py', config, '--work-dir', work_dir, '--amp',
                                 '--cfg-options', 'model.backbone.with_cp=True'])
    assert result.returncode == 0, result.stdout[-3000:]
    return dict(config=config, work_dir=work_dir, folder=tmp, log=result.stdout)


def test_amp_training_with_cp_runs_on_the_gpu_with_finite_losses(gpu_run):
    checkpoint = load_checkpoint_file(osp.join(gpu_run['work_dir'], f'iter_{MAX_ITERS}.pth'), map_location='cpu')
    assert checkpoint['meta']['iter'] == MAX_ITERS
    assert 'loss_scaler' in checkpoint['optimizer']  # AmpOptimWrapper's dynamic scale, for --resume
    assert 'loss: nan' not in gpu_run['log'] and 'loss: inf' not in gpu_run['log']
    assert 'Iter(train) [6/6]' in gpu_run['log']


def test_resume_on_the_gpu_continues_the_run(gpu_run, tiny_runs):
    resumed_dir = str(gpu_run['folder'] / 'resumed')
    shutil.copytree(gpu_run['work_dir'], resumed_dir,
                    ignore=lambda d, names: [n for n in names if n.startswith('iter_') and n != 'iter_2.pth'])
    result = tiny_runs.run_tool(['train.py', gpu_run['config'], '--work-dir', resumed_dir, '--amp',
                                 '--resume', osp.join(resumed_dir, 'iter_2.pth'),
                                 '--cfg-options', 'model.backbone.with_cp=True'])
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'resumed' in result.stdout.lower() or 'Iter(train) [3/6]' in result.stdout
    start = load_checkpoint_file(osp.join(gpu_run['work_dir'], 'iter_2.pth'), map_location='cpu')['state_dict']
    full = load_checkpoint_file(osp.join(gpu_run['work_dir'], f'iter_{MAX_ITERS}.pth'), map_location='cpu')
    resumed = load_checkpoint_file(osp.join(resumed_dir, f'iter_{MAX_ITERS}.pth'), map_location='cpu')
    assert resumed['meta']['iter'] == MAX_ITERS
    # The same four steps after iteration 2, up to the GPU's run-to-run rounding: mmcv's RoI Align
    # backward adds with atomics, fp16 may then round one unit apart, and AdamW turns a gradient near
    # zero into a step of the learning rate whatever its size, so single weights may differ by a step.
    # What the four steps changed agrees as a whole; a lost optimizer state, loss scale or schedule
    # would change it by a large fraction.
    keys = [k for k, v in start.items() if v.is_floating_point()]
    update_full = torch.cat([(full['state_dict'][k] - start[k]).double().flatten() for k in keys])
    update_resumed = torch.cat([(resumed['state_dict'][k] - start[k]).double().flatten() for k in keys])
    assert update_full.norm() > 0
    assert (update_resumed - update_full).norm() <= 0.05 * update_full.norm()


def test_a_gpu_written_checkpoint_loads_on_the_cpu(gpu_run, tiny_runs):
    path = osp.join(gpu_run['work_dir'], f'iter_{MAX_ITERS}.pth')
    checkpoint = load_checkpoint_file(path, map_location='cpu')
    assert all(v.device.type == 'cpu' for v in checkpoint['state_dict'].values())
    # A process that sees no GPU evaluates it.
    result = tiny_runs.run_tool(['test.py', gpu_run['config'], path, '--work-dir', str(gpu_run['folder'] / 'cpu')],
                                env={'CUDA_VISIBLE_DEVICES': ''})
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'bbox_mAP' in result.stdout


def test_test_tool_predicts_the_same_with_and_without_the_inference_path(gpu_run, tiny_runs, tmp_path):
    path = osp.join(gpu_run['work_dir'], f'iter_{MAX_ITERS}.pth')
    predictions = []
    for flag in ([], ['--no-optimize']):
        out = str(tmp_path / f'preds{len(predictions)}.pkl')
        result = _run_without_tf32(tiny_runs, tmp_path, ['test.py', gpu_run['config'], path, '--out', out,
                                                         '--work-dir', str(tmp_path / 'wd')] + flag)
        assert result.returncode == 0, result.stdout[-3000:]
        with open(out, 'rb') as f:
            predictions.append(pickle.load(f))
    optimized, eager = predictions
    assert len(optimized) == len(eager) > 0
    matched = 0
    for a, b in zip(eager, optimized):
        ref, out = InstanceData(**a['pred_instances']), InstanceData(**b['pred_instances'])
        if len(ref) == 0:
            assert len(out) == 0
            continue
        matched += len(assert_same_detections(ref, out))
    assert matched > 0


def test_ssdlite_export_from_a_gpu_trained_checkpoint(tmp_path, tiny_runs):
    data_root = str(tmp_path / 'shapes') + '/'
    config = tmp_path / 'ssdlite_gpu.py'
    config.write_text(f'''
_base_ = {osp.join(PROJECT_ROOT, 'configs', 'demo', 'ssdlite_rexnet_x0.9_shapes.py')!r}
data_root = {data_root!r}
synthetic = dict(image_size=96, splits=dict(train=8, val=3), min_objects=1, max_objects=2, min_size=0.3,
                 max_size=0.6, colour_by_class=True, seed=0)
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, synthetic=synthetic))
val_dataloader = dict(dataset=dict(data_root=data_root, synthetic=synthetic))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters=4, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=4))
''')
    result = tiny_runs.run_tool(['train.py', str(config), '--work-dir', str(tmp_path / 'train'), '--amp'])
    assert result.returncode == 0, result.stdout[-3000:]
    checkpoint = str(tmp_path / 'train' / 'iter_4.pth')
    onnx_path = str(tmp_path / 'ssdlite.onnx')
    result = tiny_runs.run_tool(['deployment/ssdlite_onnx.py', str(config), checkpoint, '--out', onnx_path,
                                 '--images', data_root + 'val'])
    assert result.returncode == 0, result.stdout[-3000:]
    assert osp.getsize(onnx_path) > 1_000_000
