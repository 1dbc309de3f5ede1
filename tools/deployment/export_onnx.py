"""Export a ReXNet backbone to ONNX, check ONNX Runtime against PyTorch and time both.

The backbone is exported with BatchNorm fused into its convolutions. The check compares ONNX
Runtime's outputs with those of the PyTorch backbone as built (unfused), on the export size and,
with --dynamic, on other batch sizes and image sizes. The timing runs the eager PyTorch backbone,
the optimised one (``rexnet_mmdet.deploy.optimize_for_inference``) and the ONNX Runtime session,
interleaved, and reports medians.

Examples:
    python tools/deployment/export_onnx.py --widen-factor 1.0 --out work_dirs/rexnet_x1.0.onnx
    python tools/deployment/export_onnx.py --widen-factor 0.9 --out-indices 4 6 --dynamic \\
        --out work_dirs/rexnet_ssdlite.onnx
    python tools/deployment/export_onnx.py --widen-factor 1.0 --checkpoint checkpoints/rexnetv1_1.0.pth --dynamic
"""
import argparse
import copy
import os.path as osp
import sys

import torch

from rexnet_mmdet.deploy import onnx_backbone as ox
from rexnet_mmdet.deploy import optimize_for_inference
from rexnet_mmdet.deploy.backends import ONNX_OPSET
from rexnet_mmdet.models.channels import ARCHS
from rexnet_mmdet.models.width_names import width_tag
from rexnet_mmdet.utils.cli import add_shape_argument, shape_wh, tool_main
from rexnet_mmdet.utils.timing import (busy_warning, format_machine, machine_info, medians, time_interleaved,
                                       usable_cores)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a ReXNet backbone (BatchNorm fused) to ONNX, check ONNX Runtime\'s outputs '
                    'against PyTorch\'s and time ONNX Runtime against the PyTorch backbone.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Without --checkpoint the weights are random, with BatchNorm statistics set on random '
               'images (outputs of a trained network\'s scale). Taps: 0 block0, 1 C2, 2 C3, 3 C4, '
               '4 stride-16 expansion, 5 C5, 6 final conv; FPN detectors use 1 2 3 5, SSDLite 4 6.')
    parser.add_argument('--widen-factor', type=float, default=1.0, help='width multiplier (default 1.0)')
    parser.add_argument('--arch', choices=ARCHS, default='v1', help="family: v1 (default) or lite (ReXNet-lite)")
    parser.add_argument('--channel-divisor', type=int, default=None,
                        help='ReXNet-R: 8 (rexnetr_100 ... rexnetr_200) or 16 (rexnetr_300); default: ReXNet-v1')
    parser.add_argument('--out-indices', type=int, nargs='+', default=[1, 2, 3, 5],
                        help='taps to export, increasing (default: 1 2 3 5)')
    parser.add_argument('--checkpoint', help='backbone weights: official, timm or this project\'s format '
                                             '(a path or URL, as rexnet_mmdet.models.weights reads them)')
    parser.add_argument('--out', help='ONNX file to write (default: work_dirs/rexnet_x{w}_{taps}.onnx)')
    add_shape_argument(parser, default=[224], default_text='224: 224x224; the size of the export, the check '
                                                          'and the timing')
    parser.add_argument('--batch', type=int, default=1, help='batch for the export and the timing (default 1)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width (also checked at another batch and size)')
    parser.add_argument('--opset', type=int, default=ONNX_OPSET, help=f'ONNX opset (default {ONNX_OPSET})')
    parser.add_argument('--no-fuse', action='store_true', help='export without fusing BatchNorm into the convs')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest accepted absolute difference to PyTorch (default 1e-4)')
    parser.add_argument('--threads', type=int, default=None,
                        help='threads for PyTorch and ONNX Runtime (default: the usable CPU cores)')
    parser.add_argument('--ort-optimization', choices=['disable', 'basic', 'extended', 'all'], default='all',
                        help='ONNX Runtime graph optimisation level (default all)')
    parser.add_argument('--ort-parallel', action='store_true',
                        help='ONNX Runtime parallel execution mode (default: sequential)')
    parser.add_argument('--repeats', type=int, default=50,
                        help='timed calls of each runtime (default 50; 0 skips the timing)')
    parser.add_argument('--warmup', type=int, default=5, help='untimed calls of each first (default 5)')
    args = parser.parse_args(argv)
    if args.widen_factor <= 0:
        parser.error(f'--widen-factor must be positive, got {args.widen_factor}')
    try:
        args.width, args.height = shape_wh(args.shape)
    except ValueError as e:
        parser.error(str(e))
    if args.batch < 1:
        parser.error('--batch must be at least 1')
    if args.repeats < 0 or args.warmup < 0:
        parser.error('--repeats and --warmup must be 0 or more')
    if args.out is None:
        taps = ''.join(str(i) for i in args.out_indices)
        name = 'rexnet_lite' if args.arch == 'lite' else 'rexnetr' if (args.channel_divisor or 1) > 1 else 'rexnet'
        args.out = osp.join('work_dirs', f'{name}_{width_tag(args.widen_factor)}_taps{taps}.onnx')
    return args


def check_parity(eager, session, args, generator: torch.Generator) -> bool:
    """Print ONNX Runtime's largest difference to the eager backbone at the export size (and, with
    --dynamic, at another batch and size); whether it is within --tolerance or float32 rounding."""
    h, w = args.height, args.width
    shapes = [(args.batch, h, w)]
    if args.dynamic:
        shapes.append((args.batch + 1, h + 32, w - 32 if w > 64 else w + 64))
    worst, inputs = 0.0, []
    for n, hh, ww in shapes:
        x = torch.randn(n, 3, hh, ww, generator=generator)
        inputs.append(x)
        diffs = ox.parity(eager, session, x)
        with torch.no_grad():
            scale = max(float(o.abs().max()) for o in eager(x))
        worst = max(worst, max(diffs.values()))
        print(f'ONNX Runtime vs PyTorch (eager), input {n}x3x{hh}x{ww}: max |diff| '
              + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()) + f' (outputs up to {scale:.3g})')
    if worst <= args.tolerance:
        print(f'parity: OK, max |diff| {worst:.2e} <= {args.tolerance:g}')
        return True
    # Deep random networks amplify float32 rounding: compare with PyTorch's own float32 error.
    floor = max(ox.float32_error(eager, x) for x in inputs)
    ok = worst <= 2 * floor
    print(f'max |diff| {worst:.2e} is above {args.tolerance:g}; PyTorch\'s own float32 error on the same '
          f'inputs (float32 vs float64) is {floor:.2e}')
    print('parity: ' + ('OK within float32 rounding (no more than twice PyTorch\'s own error: the outputs '
                        'are large, the export is not wrong)' if ok else
                        'FAILED (more than twice PyTorch\'s own float32 error)'))
    return ok


def time_runtimes(eager, session, args, generator: torch.Generator, threads: int) -> None:
    """Time the eager backbone, the optimised one and the ONNX Runtime session, interleaved; print medians."""
    h, w = args.height, args.width
    fast = optimize_for_inference(copy.deepcopy(eager))
    x = torch.randn(args.batch, 3, h, w, generator=generator)
    feed = {session.get_inputs()[0].name: x.numpy()}
    cases = {'PyTorch eager': lambda: eager(x), 'PyTorch optimized': lambda: fast(x)}
    cases['ONNX Runtime'] = lambda: session.run(None, feed)
    print(f'timing batch {args.batch} at {h}x{w}, {threads} threads, ONNX Runtime '
          f'{args.ort_optimization} optimisation, {"parallel" if args.ort_parallel else "sequential"} '
          f'execution: {args.warmup} warm-up + {args.repeats} timed calls each, '
          f'in turns of {ox.RUNTIME_TIMING["block"]} calls')
    with torch.no_grad():
        median = medians(time_interleaved(cases, args.repeats, args.warmup, **ox.RUNTIME_TIMING))
    base = median['PyTorch eager']
    for name, t in median.items():
        print(f'  {name:18s} median {t * 1e3:8.2f} ms   {t / base:.3f}x eager')


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    print(format_machine(machine_info()))
    warning = busy_warning(threads) if args.repeats else None
    if warning:
        print(warning)
    eager = ox.build_backbone_for_export(args.widen_factor, args.out_indices, args.checkpoint, optimize=False,
                                         arch=args.arch, channel_divisor=args.channel_divisor)
    fused = copy.deepcopy(eager)
    if not args.no_fuse:
        optimize_for_inference(fused, channels_last=False)
    h, w = args.height, args.width
    ox.export_backbone(fused, args.out, (h, w), args.batch, dynamic=args.dynamic, opset=args.opset)
    names = ox.output_names(eager)
    print(f'wrote {args.out}: {eager.family} {width_tag(args.widen_factor)}, outputs {", ".join(names)}, opset {args.opset}, '
          f'{"dynamic batch/height/width" if args.dynamic else f"fixed input {args.batch}x3x{h}x{w}"}, '
          f'BatchNorm {"kept" if args.no_fuse else "fused"}, '
          f'{"weights from " + args.checkpoint if args.checkpoint else "random weights"}')

    session = ox.ort_session(args.out, threads, args.ort_optimization, sequential=not args.ort_parallel)
    generator = torch.Generator().manual_seed(1)
    ok = check_parity(eager, session, args, generator)
    if args.repeats:
        time_runtimes(eager, session, args, generator, threads)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
