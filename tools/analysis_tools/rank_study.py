"""Rank of random layers vs. their dimension ratio (the paper's §3, Figure 1).

Example:
    python tools/analysis_tools/rank_study.py
    python tools/analysis_tools/rank_study.py --trials 3 --out work_dirs/analysis/rank_quick.png
"""
import argparse
import os
import sys
import time

from rexnet_mmdet.analysis.rank_study import (DEFAULT_RATIOS, LAYER_TYPES, NONLINEARITIES, PAPER_NONLINEARITIES,
                                              rank_study, summarize_rank_study)
from rexnet_mmdet.analysis.report import plot_rank_study
from rexnet_mmdet.utils.cli import tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Rank study of random layers (paper §3, Figure 1): the rank ratio '
                    'rank(f(BN(WX)))/d_out against the dimension ratio d_in/d_out for a 1x1 conv, '
                    'a 3x3 conv and inverted bottlenecks with a 3x3 or depthwise 3x3 conv, for '
                    'each nonlinearity, averaged over random layer sizes. Writes a PNG and prints '
                    'a summary. See rexnet_mmdet/analysis/rank_study.py for the exact setup.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='work_dirs/analysis/rank_study.png', help='PNG to write')
    parser.add_argument('--trials', type=int, default=50,
                        help='random layer sizes per point (fewer is faster and noisier)')
    parser.add_argument('--layers', nargs='+', default=list(LAYER_TYPES), choices=LAYER_TYPES)
    parser.add_argument('--nonlinearities', nargs='+', default=list(PAPER_NONLINEARITIES),
                        choices=list(NONLINEARITIES), metavar='NAME',
                        help=f'any of: {", ".join(NONLINEARITIES)} (default: the ones the paper lists, '
                             f'plus linear)')
    parser.add_argument('--ratios', nargs='+', type=float, default=list(DEFAULT_RATIOS),
                        help='dimension ratios d_in/d_out, in (0, 1]')
    parser.add_argument('--d-out', nargs=2, type=int, default=(32, 96), metavar=('LOW', 'HIGH'),
                        help='range of the random output dimension')
    parser.add_argument('--samples', type=int, default=512, help='N, samples per feature matrix')
    parser.add_argument('--rtol', type=float, default=0.1,
                        help='count singular values above rtol * sigma_max; 0 or less means the '
                             'float32 machine tolerance (then nearly every nonlinear layer is full rank)')
    parser.add_argument('--no-center', action='store_true',
                        help='do not centre each output channel before taking the rank')
    parser.add_argument('--input-blur', type=float, default=1.0,
                        help='Gaussian blur (pixels) of the 3x3 layers\' random inputs; 0 = white noise')
    parser.add_argument('--expand-ratio', type=int, default=6,
                        help='expansion of the inverted bottlenecks\' first 1x1 conv')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads; the study is many small operations, for which one thread '
                             'is as fast as two and much faster on a busy machine')
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()

    def progress(done: int, total: int) -> None:
        print(f'[rank_study] trial {done}/{total} ({time.time() - start:.0f}s)', flush=True)

    result = rank_study(
        layer_types=args.layers, nonlinearities=args.nonlinearities, ratios=args.ratios,
        trials=args.trials, d_out_range=tuple(args.d_out), num_samples=args.samples,
        rtol=args.rtol if args.rtol > 0 else None, center=not args.no_center,
        input_blur=args.input_blur, expand_ratio=args.expand_ratio, seed=args.seed,
        num_threads=args.threads, progress=progress)
    print(summarize_rank_study(result))
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    plot_rank_study(result, args.out)
    print(f'wrote {args.out} ({time.time() - start:.0f}s)')


if __name__ == '__main__':
    sys.exit(main())
