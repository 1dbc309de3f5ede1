"""The GPU check: does the project work on this GPU machine? Run by scripts/gpu_check.sh.

Steps, in order of value, each given what is left of the budget and at most its own cap:
  install       the wheels in .gpu/ into a site folder (nothing when mmcv, mmdet and mmengine import)
  environment   versions and the GPU (environment.json)
  cuda_tests    the tests marked cuda (cuda_tests.xml)
  demo_train    the built-in demo, Faster R-CNN ReXNet x1.0, 40 iterations with --amp and with_cp
  demo_resume   resumed from its last checkpoint to 60 iterations
  demo_test     tools/test.py on the resumed checkpoint
  batch_tests   the one-image-batch and autocast tests (batch_tests.xml)
  nan_amp       the loss NaN once seen (Mask R-CNN x2.2 from a random backbone, SGD lr 0.01 without warm-up,
  nan_fp32      with_cp): 30 iterations with --amp, then in fp32; the summary counts the NaN losses
Checkpoints and data go to the scratch folder; the demo's logs, metrics and curves are copied into OUTDIR/demo.
"""
import os.path as osp
import re
import shutil
import sys

import gpu_steps
from gpu_steps import ROOT

DEMO = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_rexnet_x1.0_fpn_shapes.py')
MASK_DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_rexnet_x1.0_fpn_shapes.py')
#: The tests of what a GPU run relies on: one-image batches, with_cp under autocast, timm equivalence.
BATCH_TESTS = ['tests/engine/test_one_image_batch_hook.py', 'tests/models/test_one_image_batch.py',
               'tests/models/test_rexnet_bn.py', 'tests/models/test_timm_equivalence.py']
#: The steps after install and environment, in the order they run.
STEPS = ('cuda_tests', 'demo_train', 'demo_resume', 'demo_test', 'batch_tests', 'nan_amp', 'nan_fp32')
#: Each step's own cap (seconds) on the GPU; the budget (default 285 s) is what binds.
CAPS = dict(cuda_tests=140, demo_train=60, demo_resume=45, demo_test=35, batch_tests=80, nan_amp=45, nan_fp32=45)

#: The demo config with its data in the scratch folder (and, in a dry run, a tiny data set).
DEMO_CONFIG = '''_base_ = [{base!r}]
data_root = {data_root!r}
synthetic = dict(image_size={size}, splits=dict(train={train}, val={val}), min_objects=1, max_objects=3,
                 min_size=0.2, max_size=0.45, colour_by_class=True, seed=0)
train_dataloader = dict(dataset=dict(data_root=data_root, synthetic=synthetic))
val_dataloader = dict(dataset=dict(data_root=data_root, synthetic=synthetic))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(val_interval=100000)
model = dict(backbone=dict(with_cp=True))
'''

#: The NaN reproduction: Mask R-CNN x2.2, random backbone, SGD lr 0.01 from the first iteration, with_cp.
NAN_CONFIG = '''_base_ = [{base!r}]
model = dict(backbone=dict(widen_factor=2.2, with_cp=True), neck=dict(in_channels=[85, 134, 283, 406]))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = []
train_cfg = dict(max_iters={iters}, val_interval=100000)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=100000))
'''


def write_config(path: str, text: str) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def nan_count(iters: int):
    def count(log: str, status: str) -> str:
        with open(log, encoding='utf-8', errors='replace') as f:
            text = f.read()
        nan = len(re.findall(r'\bloss: nan\b', text))
        return f'{nan} of {iters} iterations logged loss nan'
    return count


def main(argv=None) -> int:
    args = gpu_steps.parse_args('gpu_check', __doc__, default_budget=285, argv=argv)
    return gpu_steps.run_plan('gpu_check', args, STEPS, run_steps)


def run_steps(budget: gpu_steps.Budget, args) -> None:
    py, dry, scratch = sys.executable, args.dry_run, args.scratch
    if not gpu_steps.install(budget, args) or gpu_steps.environment(budget, args) is None:
        return
    caps = {} if dry else CAPS
    for name in ('demo', 'demo_test', 'nan_amp', 'nan_fp32'):  # a run before this one must not be resumed or kept
        shutil.rmtree(osp.join(scratch, name), ignore_errors=True)
        shutil.rmtree(osp.join(args.outdir, name), ignore_errors=True)
    pytest = [py, '-m', 'pytest', '-p', 'no:cacheprovider', '-vv']  # a line per test: a cut run's log says how far
    budget.run('cuda_tests', pytest + ['--junitxml', osp.join(args.outdir, 'cuda_tests.xml'), '-m', 'cuda',
                                       'tests/tools/test_tools_on_cuda.py' if dry else 'tests'],
               cap=caps.get('cuda_tests'))

    # Train -> resume -> test on the built-in data set, made in the scratch folder on first use.
    first, last = (2, 4) if dry else (40, 60)
    config = write_config(osp.join(scratch, 'demo.py'), DEMO_CONFIG.format(
        base=DEMO, data_root=osp.join(scratch, 'shapes', ''), size=64 if dry else 160,
        train=8 if dry else 400, val=4 if dry else 50))
    work = osp.join(scratch, 'demo')
    amp = [] if dry else ['--amp']  # mixed precision needs CUDA
    options = ['--cfg-options', f'default_hooks.checkpoint.interval={first}']
    if budget.run('demo_train', [py, 'tools/train.py', config, '--work-dir', work] + amp + options
                  + [f'train_cfg.max_iters={first}'], cap=caps.get('demo_train')) == 'passed':
        if budget.run('demo_resume', [py, 'tools/train.py', config, '--work-dir', work, '--resume'] + amp + options
                      + [f'train_cfg.max_iters={last}'], cap=caps.get('demo_resume')) == 'passed':
            budget.run('demo_test', [py, 'tools/test.py', config, osp.join(work, f'iter_{last}.pth'),
                                     '--work-dir', osp.join(scratch, 'demo_test')], cap=caps.get('demo_test'))
    for name in ('demo', 'demo_test'):
        gpu_steps.collect_small(osp.join(scratch, name), osp.join(args.outdir, name))

    budget.run('batch_tests', pytest + ['--junitxml', osp.join(args.outdir, 'batch_tests.xml')]
               + (['-m', 'not slow'] if dry else []) + BATCH_TESTS, cap=caps.get('batch_tests'))

    iters = 2 if dry else 30
    nan_config = write_config(osp.join(scratch, 'mask_rcnn_rexnet_x2.2_random_sgd.py'), NAN_CONFIG.format(
        base=write_config(osp.join(scratch, 'mask_demo.py'), DEMO_CONFIG.format(
            base=MASK_DEMO, data_root=osp.join(scratch, 'shapes', ''), size=64 if dry else 160,
            train=8 if dry else 400, val=4 if dry else 50)), iters=iters))
    for run, flags in (('amp', amp), ('fp32', [])):
        if dry and run == 'amp':
            budget.record('nan_amp', 'skipped', note='--amp needs CUDA: the dry run trains in fp32 only')
            continue
        budget.run(f'nan_{run}', [py, 'tools/train.py', nan_config, '--work-dir', osp.join(scratch, f'nan_{run}')]
                   + flags, cap=caps.get(f'nan_{run}'), after=nan_count(iters))


if __name__ == '__main__':
    sys.exit(main())
