"""The GPU benchmarks: how fast is it on this GPU? Run by scripts/gpu_benchmarks.sh.

Steps, in order of value, each one run of tools/analysis_tools/benchmark.py given what is left of the
budget and at most its own cap; each writes OUTDIR/<step>.md and <step>.json row by row, as its rows
are measured, a <step>.log and (race, backbones) a <step>.png:
  race        Faster R-CNN prediction, ReXNet x0.9 and x2.2 against ResNet-50, fp16, 1200x800 (padded
              1216x800), batch 1 and 8; as built, fused+cl and fused+cl with a CUDA graph of backbone + neck
  train       training images/s and peak memory: every detector with AMP; fp32 and with_cp as well for the
              x2.2 detectors and their ResNet-50 counterparts (benchmark.py --train-plan short)
  backbones   batch-64 backbone throughput at 224x224, fp32 and fp16, against timm's ReXNet and
              EfficientNet-B0, MMDetection's EfficientNet-B0, ResNet-50 and MobileNetV2
  precisions  batch-1 prediction, fused+cl, in fp32 (TF32 off), fp16 and bf16
  compile     batch-1 prediction, fp16: fused+cl against torch.compile of backbone + neck (compiles longest)
cuDNN's autotuning (benchmark mode) is off unless --cudnn-benchmark is given; then it tunes in the warm-up
calls, whose time each table reports apart.
"""
import json
import os
import os.path as osp
import sys
from functools import partial

import gpu_steps

#: The steps in the order they run, each with its own cap (seconds) on the GPU; the budget (default 285 s)
#: is what binds.
CAPS = dict(race=100, train=90, backbones=45, precisions=40, compile=60)

GPU = dict(
    race=['--widths', '0.9', '2.2', '--det-size', '1200', '800', '--det-batches', '1', '8', '--repeats', '10',
          '--warmup', '2'],
    train=['--train-plan', 'short', '--train-warmup', '5', '--train-steps', '5'],
    backbones=['--widths', '1.0', '--batches', '64', '--size', '224', '--repeats', '10', '--warmup', '2'],
    single=['--widths', '0.9', '2.2', '--det-size', '1200', '800', '--repeats', '10', '--warmup', '2'],
    half=['fp16'])
#: A dry run: tiny sizes on the CPU (fp16 and the CUDA-graph levers are reported as not run there: bf16
#: stands in for fp16); one or two calls each.
DRY = dict(
    race=['--widths', '0.9', '--det-size', '96', '64', '--det-batches', '1', '2', '--repeats', '2',
          '--warmup', '1'],
    train=['--train-plan', 'short', '--train-detectors', 'Faster R-CNN ReXNet x2.2', 'Faster R-CNN ResNet-50',
           'SSDLite ReXNet x1.0', '--train-batch', '2', '--train-size', '64', '64', '--train-warmup', '0',
           '--train-steps', '1'],
    backbones=['--widths', '1.0', '--batches', '2', '--size', '64', '--repeats', '2', '--warmup', '1'],
    single=['--widths', '0.9', '--det-size', '96', '64', '--repeats', '2', '--warmup', '1'],
    half=['fp16', 'bf16'])


def _finished_tables(record_path: str, log: str, status: str) -> str:
    """A step cut at its limit after benchmark.py wrote its last row (while it was ending) has whole
    tables: the summary says so rather than let a cut step pass for a short one."""
    if status != 'cut':
        return ''
    try:
        with open(record_path) as f:
            complete = json.load(f).get('complete') is True
    except (OSError, ValueError):
        return ''
    return 'its tables were complete when it was stopped' if complete else ''


def main(argv=None) -> int:
    args = gpu_steps.parse_args('gpu_benchmarks', __doc__, default_budget=285, argv=argv, add=lambda p: p.add_argument(
        '--cudnn-benchmark', action='store_true',
        help="cuDNN's autotuning on in every step: it tunes in the warm-up calls, timed apart (default: off)"))
    return gpu_steps.run_plan('gpu_benchmarks', args, tuple(CAPS), run_steps)


def run_steps(budget: gpu_steps.Budget, args) -> None:
    if not gpu_steps.install(budget, args) or gpu_steps.environment(budget, args) is None:
        return
    plan, caps = (DRY, {}) if args.dry_run else (GPU, CAPS)
    device = ['--device', 'cpu' if args.dry_run else 'cuda', '--tf32', 'off',
              '--cudnn-benchmark', 'on' if args.cudnn_benchmark else 'off']

    def step(name, *options, plot=False):
        out = osp.join(args.outdir, name)
        for suffix in ('.md', '.json', '.png'):  # a table of an earlier run must not pass for this one's
            if osp.exists(out + suffix):
                os.remove(out + suffix)
        cmd = [sys.executable, 'tools/analysis_tools/benchmark.py', '--markdown', '--md', out + '.md',
               '--json', out + '.json'] + device + list(options) + (['--plot', out + '.png'] if plot else [])
        budget.run(name, cmd, cap=caps.get(name), after=partial(_finished_tables, out + '.json'))

    step('race', '--part', 'detectors', *plan['race'], '--precisions', *plan['half'],
         '--treatments', 'eager', 'fused+cl', 'fused+cl+cudagraph', plot=True)
    step('train', '--part', 'train', *plan['train'])
    step('backbones', '--part', 'backbones', *plan['backbones'], '--precisions', 'fp32', *plan['half'][:1],
         '--treatments', 'eager', 'fused+cl', plot=True)
    step('precisions', '--part', 'detectors', *plan['single'], '--precisions', 'fp32', 'fp16', 'bf16',
         '--treatments', 'fused+cl')
    step('compile', '--part', 'detectors', *plan['single'], '--precisions', *plan['half'],
         '--treatments', 'fused+cl', 'fused+cl+compile')


if __name__ == '__main__':
    sys.exit(main())
