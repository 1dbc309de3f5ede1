"""Inference speed of ReXNet backbones and detectors beside MMDetection's, training throughput and memory.

All models of a comparison are timed in one process and one run, their runs interleaved after a
warm-up; medians and median ratios are reported. Every model, ReXNet and baseline alike, gets the
same treatments: as built ("eager") and BatchNorm folded + channels-last backbone ("fused+cl":
``optimize_for_inference`` for ReXNet, ``mmcv.cnn.fuse_conv_bn`` for the others); --treatments adds
levers (the backbone in OpenVINO; on a GPU a CUDA graph or torch.compile of backbone + neck), again
for every model, and --precisions the fp16 / bf16 columns beside fp32. TF32 and cuDNN's benchmark
mode are set explicitly (--tf32, --cudnn-benchmark) and printed.

Examples:
    python tools/analysis_tools/benchmark.py                         # backbones + detectors (a few minutes)
    python tools/analysis_tools/benchmark.py --part backbones --batches 1 --repeats 50
    python tools/analysis_tools/benchmark.py --part detectors --repeats 9 --markdown --json work_dirs/speed.json
    python tools/analysis_tools/benchmark.py --part roi_align        # mmcv's RoI Align against the batched one
    python tools/analysis_tools/benchmark.py --part memory           # Faster R-CNN x2.2 training step, with_cp on/off
    python tools/analysis_tools/benchmark.py --device cuda --part all
    python tools/analysis_tools/benchmark.py --device cuda --part detectors --det-batches 1 8 \
        --precisions fp16 --treatments eager fused+cl fused+cl+cudagraph   # the batch-1/8 race in fp16
    python tools/analysis_tools/benchmark.py --device cuda --part train       # training images/s and memory
"""
import argparse
import os.path as osp
import sys
import time
from functools import partial

import torch

from rexnet_mmdet.analysis import (backbone_speed, detector_speed, memory, precision, report, roi_align_speed,
                                   speed, train_speed)
from rexnet_mmdet.deploy import cpu_memory
from rexnet_mmdet.utils import timing
from rexnet_mmdet.utils.build import CONFIG_DIR
from rexnet_mmdet.utils.cli import fail, tool_main

PARTS = ('backbones', 'detectors', 'roi_align', 'memory', 'train', 'speed', 'all')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time ReXNet backbones against MMDetection\'s MobileNetV2, EfficientNet-B0 and '
                    'ResNet-50 (batch 1 and 64 at 224x224), and Faster R-CNN + FPN on ReXNet against '
                    'its ResNet-50 version (batch 1 at 1200x800, padded to 1216x800); or measure the '
                    'peak memory of a training step with and without gradient checkpointing.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Timings are medians over the timed calls; ratios are between medians of the same run. '
               'The machine should be otherwise idle: the load average is printed before and after.')
    _add_run_arguments(parser)
    _add_speed_arguments(parser.add_argument_group(
        'timing (--part backbones, detectors, speed; --repeats, --warmup and --det-size also roi_align)'))
    _add_memory_arguments(parser.add_argument_group('training memory (--part memory)'))
    _add_train_arguments(parser.add_argument_group('training throughput (--part train)'))
    _add_output_arguments(parser.add_argument_group('output'))
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _add_run_arguments(parser) -> None:
    """What to measure, where, with how many threads, which malloc and which numeric settings."""
    parser.add_argument('--part', choices=PARTS, default='speed',
                        help='what to measure: backbones, detectors, roi_align (mmcv\'s RoI Align against the '
                             'batched one, as in a Faster R-CNN at --det-size), memory, train (training '
                             'throughput); speed = backbones + detectors; all = backbones, detectors, roi_align '
                             'and memory (default: speed)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: the usable CPU cores)')
    parser.add_argument('--tf32', choices=('on', 'off'), default='off',
                        help='TF32 for fp32 convolutions and matmuls on a GPU, in every part (default: off)')
    parser.add_argument('--cudnn-benchmark', choices=('on', 'off'), default='off',
                        help='cuDNN benchmark mode on a GPU, in every part: autotunes every new shape, in the '
                             'warm-up calls (default: off)')
    parser.add_argument('--system-malloc', action='store_true',
                        help='leave the C library\'s malloc as it is; by default the tool keeps freed memory for '
                             'reuse (rexnet_mmdet.deploy.keep_freed_memory), for every model alike, as the '
                             'inference tools do')


def _add_speed_arguments(group) -> None:
    """How the backbones and detectors are timed, and under which treatments and precisions."""
    group.add_argument('--repeats', type=int, default=None,
                       help='timed calls of each model in every comparison (default: 30 at batch <= 8, '
                            '3 at batch 64, 5 for the detectors)')
    group.add_argument('--warmup', type=int, default=None,
                       help='untimed rounds first (default: 3 at batch <= 8, else 1)')
    group.add_argument('--block', type=int, default=None,
                       help='backbones: calls of one model in a row per turn (default: 5 at batch <= 8, '
                            'else 1), so that its weights stay in the CPU caches as in serving')
    group.add_argument('--widths', type=float, nargs='+', default=None,
                       help='ReXNet widths (default: 0.9 1.0 for the backbones, 0.9 2.2 for the detectors)')
    group.add_argument('--batches', type=int, nargs='+', default=[1, 64], help='backbone batch sizes')
    group.add_argument('--size', type=int, default=224, help='backbone input side (default: 224)')
    group.add_argument('--det-size', type=int, nargs=2, default=[1200, 800], metavar=('W', 'H'),
                       help='detector image before padding to /32 (default: 1200 800)')
    group.add_argument('--det-batches', type=int, nargs='+', default=[1],
                       help='detector batch sizes (images per predict call; default: 1)')
    group.add_argument('--precisions', nargs='+', choices=tuple(precision.PRECISIONS), default=['fp32'],
                       help='precisions every model runs in (fp16/bf16: under torch.autocast; fp16 needs CUDA; '
                            'default: fp32)')
    group.add_argument('--no-timm', action='store_true',
                       help="backbones: leave out timm's ReXNet and EfficientNet-B0 (compared where timm is "
                            'installed)')
    group.add_argument('--no-reference', action='store_true',
                       help='skip the ResNet-50 detector (time the ReXNet ones only)')
    group.add_argument('--random-heads', action='store_true',
                       help='keep the detectors\' random prediction layers (default: zero them, so that every '
                            'detector\'s RoI head gets the same proposals and post-processing does the same work)')
    group.add_argument('--no-optimized', action='store_true',
                       help='time every model as built only (same as --treatments eager)')
    group.add_argument('--treatments', nargs='+', default=None,
                       help='treatments every model gets (default: eager fused+cl; see '
                            'rexnet_mmdet/deploy/treatments.py for the others, e.g. fused+openvino)')


def _add_memory_arguments(group) -> None:
    """The training step whose peak memory --part memory measures."""
    group.add_argument('--memory-config', nargs='+',
                       default=[osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x2.2_fpn.py')],
                       help='detector config(s) for --part memory (default: Faster R-CNN x2.2)')
    group.add_argument('--memory-batch', type=int, default=2, help='training batch (default: 2)')
    group.add_argument('--memory-size', type=int, nargs=2, default=[1200, 800], metavar=('W', 'H'),
                       help='training image before padding (default: 1200 800)')
    group.add_argument('--memory-scope', nargs='+', choices=['detector', 'backbone'], default=['detector'],
                       help='detector: the whole training step; backbone: the backbone alone (to see '
                            'where the peak comes from)')
    group.add_argument('--memory-warmup', type=int, default=1,
                       help='unmeasured training steps before the measured one (default: 1)')


def _add_train_arguments(group) -> None:
    """The training runs --part train times."""
    group.add_argument('--train-detectors', nargs='+', choices=tuple(train_speed.TRAIN_DETECTORS),
                       default=list(train_speed.TRAIN_DETECTORS), metavar='NAME',
                       help='--part train: detectors (default: all of ' + ', '.join(train_speed.TRAIN_DETECTORS)
                            + ')')
    group.add_argument('--train-batch', type=int, default=None,
                       help="--part train: images per step (default: each config's own batch size)")
    group.add_argument('--train-size', type=int, nargs=2, default=None, metavar=('W', 'H'),
                       help="--part train: image size for every detector (default: each detector's own, "
                            '1200x800 or 320x320)')
    group.add_argument('--train-warmup', type=int, default=15,
                       help='--part train: untimed steps first, the start-up (default: 15)')
    group.add_argument('--train-steps', type=int, default=10, help='--part train: timed steps (default: 10)')
    group.add_argument('--train-plan', choices=('all', 'short'), default='all',
                       help='--part train: all = every detector in fp32 and AMP, with_cp off and on; short = '
                            'every detector with AMP, then fp32 and AMP + with_cp for the x2.2 detectors and '
                            'their ResNet-50 counterparts (default: all)')


def _add_output_arguments(group) -> None:
    """Tables, files and pictures."""
    group.add_argument('--markdown', action='store_true', help='print markdown tables')
    group.add_argument('--json', metavar='OUT',
                       help='also write every timing and setting to this JSON file, rewritten as each comparison '
                            'is measured ("complete" says whether the run finished)')
    group.add_argument('--md', metavar='OUT',
                       help='also write the tables to this file, rewritten as each comparison is measured, so that '
                            'a run stopped midway leaves what it measured')
    group.add_argument('--plot', metavar='PNG', help='also draw the timings (backbones, detector stages) to this PNG')


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ('repeats', 'threads', 'block'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be at least 1, got {value}')
    if args.warmup is not None and args.warmup < 0:
        parser.error(f'--warmup must be 0 or more, got {args.warmup}')
    if args.widths is not None and any(w <= 0 for w in args.widths):
        parser.error(f'--widths must be positive, got {args.widths}')
    if any(b < 1 for b in args.batches + args.det_batches) or args.memory_batch < 1 or \
            (args.train_batch is not None and args.train_batch < 1):
        parser.error('batch sizes must be at least 1')
    if args.size < 32 or min(args.det_size) < 32 or min(args.memory_size) < 32 or \
            (args.train_size and min(args.train_size) < 32):
        parser.error('input sizes must be at least 32 pixels')
    if args.train_steps < 1 or args.train_warmup < 0:
        parser.error('--train-steps must be at least 1 and --train-warmup 0 or more')
    if args.cudnn_benchmark == 'on' and args.warmup == 0:
        parser.error('--cudnn-benchmark on autotunes in the warm-up calls: give --warmup 1 or more')


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def show(out: report.LiveTables, key: str, text: str) -> None:
    """Print a finished section and keep it in the files."""
    out.update(key, text)
    print(text, flush=True)


def update(out: report.LiveTables, part: str, render, args, numeric, skipped, rows):
    """The rows of a part so far into the record and the files; returns the part's text."""
    out.record['results'][part] = [r.to_dict() for r in rows]
    text = render(rows, args, numeric, skipped)
    out.update(part, text)
    return text


def backbones_text(rows, args, numeric, skipped) -> str:
    lines = [f'\nBackbones up to their final feature map, random {args.size}x{args.size} images, eval mode, '
             f'torch.no_grad(); median of the timed calls; "/ X" = median over X\'s median (same treatment and '
             f'precision)']
    lines += [f'not run: {line}' for line in dict.fromkeys(skipped)]
    lines += [report.timing_table(rows, args.markdown),
              '\nThe same, one column pair per treatment and precision (every model got each); "/ ResNet-50 (t, p)" '
              '= median over the ResNet-50 median under the same treatment t and precision p',
              report.treatment_table(rows, args.markdown, numeric=numeric),
              '\nOutputs against each model as built in the most exact setting (float64 on the CPU, fp32 with '
              'TF32 off on a GPU): ||out - ref|| / ||ref||, largest over the output maps',
              report.accuracy_table(rows, args.markdown), PHASES, report.phase_table(rows, args.markdown)]
    return '\n'.join(lines)


def detectors_text(rows, args, numeric, skipped) -> str:
    lines = ['\nFaster R-CNN + FPN, random weights'
             + ('' if args.random_heads else ' (prediction layers zeroed: the same proposals for every detector)')
             + f', eval mode, model.predict under torch.no_grad(), random {args.det_size[0]}x'
             f'{args.det_size[1]} images padded by the data preprocessor; median of the timed calls']
    lines += [f'not run: {line}' for line in dict.fromkeys(skipped)]
    lines += [report.timing_table(rows, args.markdown),
              '\nThe same, one column pair per treatment and precision (every detector got each; neck and '
              'heads as built unless the treatment names them)',
              report.treatment_table(rows, args.markdown, numeric=numeric),
              '\nWhere the time goes (median ms per stage; rpn = RPN head + proposals, roi_head = RoI '
              'heads + post-processing, other = the rest of predict; stages from '
              + (rows[0].notes['stages_timed'] if rows else 'the timed calls') + ')',
              report.stage_table(rows, args.markdown),
              '\nFeatures the neck hands the heads, against each detector as built in the most exact setting '
              '(float64 on the CPU, fp32 with TF32 off on a GPU): ||out - ref|| / ||ref||',
              report.accuracy_table(rows, args.markdown), PHASES, report.phase_table(rows, args.markdown)]
    return '\n'.join(lines)


#: The phase table's title.
PHASES = ('\nSeconds each comparison spent (not part of any timing): reference and accuracy passes, warm-up '
          'calls (where cuDNN\'s autotuning, when on, and graph captures fall), timed calls')


def memory_text(args, results) -> str:
    return (f'\nPeak memory of one training step (forward + backward, after {args.memory_warmup} unmeasured '
            f'step(s)), above the memory held before it (model, batch); each row in a fresh process; measured as '
            f'{results[0]["method"]}\n' + report.memory_table(results, args.markdown))


def update_training(out: report.LiveTables, args, device, results):
    out.record['results']['train'] = results
    amp = train_speed.AMP_DTYPES[device.type]
    text = (f'\nTraining throughput: forward, backward and SGD step on one fixed synthetic batch, random weights; '
            f'median of {args.train_steps} timed steps after {args.train_warmup} untimed ones; AMP = autocast '
            f'{str(amp).replace("torch.", "")}' + (' with a gradient scaler' if device.type == 'cuda' else '')
            + f'; peak memory = {results[0]["memory_method"]} over the timed steps, model and optimizer state '
            f'included; "/ baseline" = images/s over the ResNet-50 (MobileNetV2 for SSDLite) detector\'s in the '
            f'same setting\n' + report.training_table(results, args.markdown))
    out.update('train', text)
    return text


def _start(args, device: torch.device) -> tuple:
    """Threads, malloc and numeric settings; the record and its live files, headed by the machine."""
    torch.set_num_threads(args.threads or timing.usable_cores())
    if not args.system_malloc:
        cpu_memory.keep_freed_memory()
    numeric = precision.apply_numeric_settings(device, args.tf32 == 'on', args.cudnn_benchmark == 'on')
    machine = timing.machine_info(args.device)
    machine['malloc'] = cpu_memory.describe()
    machine['numeric'] = numeric
    out = report.LiveTables(args.md, args.json, dict(machine=machine, settings=vars(args), results={}, skipped=[]))
    lines = [timing.format_machine(machine), machine['malloc'] + ' (the same for every model: it is the process\'s)',
             precision.describe_numeric_settings(numeric)]
    warning = timing.busy_warning(torch.get_num_threads()) if args.device == 'cpu' and args.part != 'memory' else None
    if warning:
        lines.append(warning)
    show(out, 'machine', '\n'.join(lines))
    return out, numeric


def run_backbones(out: report.LiveTables, args, numeric, treatments, optimize: bool) -> list:
    widths = args.widths or speed.DEFAULT_BACKBONE_WIDTHS
    repeats = {b: args.repeats for b in args.batches} if args.repeats else None
    warmup = {b: args.warmup for b in args.batches} if args.warmup is not None else None
    block = {b: args.block for b in args.batches} if args.block else None
    skipped = []
    live = partial(update, out, 'backbones', backbones_text, args, numeric, skipped)
    rows = backbone_speed.benchmark_backbones(
        widths, args.batches, args.size, repeats, warmup, args.device, optimize=optimize, block=block, log=log,
        treatments=treatments, precisions=args.precisions, with_timm=not args.no_timm, numeric=numeric,
        skipped=skipped, on_rows=live)
    show(out, 'backbones', live(rows))
    out.record['skipped'] += skipped
    return rows


def run_detectors(out: report.LiveTables, args, numeric, treatments, optimize: bool) -> list:
    widths = args.widths or speed.DEFAULT_DETECTOR_WIDTHS
    skipped = []
    live = partial(update, out, 'detectors', detectors_text, args, numeric, skipped)
    rows = detector_speed.benchmark_detectors(
        widths, tuple(args.det_size), args.repeats or 5, 1 if args.warmup is None else args.warmup,
        args.device, reference=None if args.no_reference else speed.REFERENCE_DETECTOR, optimize=optimize,
        uniform_heads=not args.random_heads, log=log, treatments=treatments, batches=args.det_batches,
        precisions=args.precisions, numeric=numeric, skipped=skipped, on_rows=live)
    show(out, 'detectors', live(rows))
    out.record['skipped'] += skipped
    return rows


def run_roi_align(out: report.LiveTables, args) -> None:
    size = (args.det_size[0] + (-args.det_size[0]) % 32, args.det_size[1] + (-args.det_size[1]) % 32)
    rows = roi_align_speed.benchmark_roi_align(image_size=size, repeats=args.repeats or 20,
                                               warmup=3 if args.warmup is None else args.warmup, log=log)
    out.record['results']['roi_align'] = [r.to_dict() for r in rows]
    show(out, 'roi_align', f'\nRoI feature extraction as in a Faster R-CNN + FPN (mmdet SingleRoIExtractor, 7x7, '
         f'adaptive sampling) at {size[0]}x{size[1]}: random maps and RoIs; median of the timed calls\n'
         + report.roi_align_table(rows, args.markdown))


def run_memory(out: report.LiveTables, args) -> None:
    results = out.record['results']['memory'] = []
    for config in args.memory_config:
        for scope in args.memory_scope:
            for with_cp in (False, True):
                log(f'memory: {osp.basename(config)}, {scope}, with_cp={with_cp} (fresh process) ...')
                r = memory.train_step_memory_isolated(
                    config, with_cp, threads=torch.get_num_threads(), batch_size=args.memory_batch,
                    image_size=tuple(args.memory_size), device=args.device, warmup=args.memory_warmup, scope=scope)
                log(f'  peak {r["peak_mib"]:.0f} MiB above {r["baseline_mib"]:.0f} MiB, step {r["step_s"]:.1f} s')
                results.append(r)
                out.update('memory', memory_text(args, results))
    show(out, 'memory', memory_text(args, results))


def run_training(out: report.LiveTables, args, device: torch.device) -> None:
    runs = train_speed.training_runs(args.train_detectors, args.train_plan)
    live = partial(update_training, out, args, device)
    show(out, 'train', live(train_speed.benchmark_training(
        device=args.device, batch_size=args.train_batch, runs=runs, warmup=args.train_warmup,
        image_size=tuple(args.train_size) if args.train_size else None, steps=args.train_steps, log=log,
        on_result=live)))


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    device = timing.check_device(args.device)
    if args.part == 'roi_align' and args.device != 'cpu':
        fail('--part roi_align times the CPU layers (on a GPU both run mmcv\'s kernel); use --device cpu')
    out, numeric = _start(args, device)
    optimize = not args.no_optimized
    treatments = args.treatments or (speed.DEFAULT_TREATMENTS if optimize else ('eager',))
    parts = {'speed': ('backbones', 'detectors'), 'all': ('backbones', 'detectors', 'roi_align', 'memory')}.get(
        args.part, (args.part,))
    started = time.time()
    backbone_rows = run_backbones(out, args, numeric, treatments, optimize) if 'backbones' in parts else []
    detector_rows = run_detectors(out, args, numeric, treatments, optimize) if 'detectors' in parts else []
    if 'roi_align' in parts and args.device == 'cpu':
        run_roi_align(out, args)
    if 'memory' in parts:
        run_memory(out, args)
    if 'train' in parts:
        run_training(out, args, device)
    if args.plot and ('backbones' in parts or 'detectors' in parts):
        picture = report.plot_timings(backbone_rows, detector_rows, args.plot,
                                      timing.format_machine(out.record['machine']))
        show(out, 'plot', f'wrote {picture}')
    load_after = out.record['load_average_after'] = timing.load_average()
    out.record['seconds'] = time.time() - started
    if load_after:
        show(out, 'load', f'\nload average after: {" ".join(f"{v:.2f}" for v in load_after)} '
             f'({out.record["seconds"]:.0f} s in all)')
    out.finish()
    for path in (args.json, args.md):
        if path:
            print(f'wrote {path}')

if __name__ == '__main__':
    sys.exit(main())
