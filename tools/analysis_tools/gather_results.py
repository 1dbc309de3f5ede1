"""Gather finished training runs into one table (Markdown, CSV, JSON), beside the paper's numbers.

Reads what tools/train.py and tools/test.py left in each work dir (scalar logs, the dumped config, the
newest complete checkpoint's meta, a benchmark JSON if one sits beside the run); evaluates nothing again.
A run that stopped early or whose logs are missing or damaged gets a row that says so.

Examples:
    python tools/analysis_tools/gather_results.py work_dirs/faster_rcnn_rexnet_x1.0_fpn work_dirs/mask_rcnn_rexnet_x1.0_fpn
    python tools/analysis_tools/gather_results.py 'work_dirs/*_fpn' --out work_dirs/results --plot
    python tools/analysis_tools/gather_results.py work_dirs/paper --out work_dirs/paper/results --plot
"""
import argparse

from rexnet_mmdet.analysis.results import gather_results
from rexnet_mmdet.analysis.results_report import results_table, write_results
from rexnet_mmdet.utils.cli import tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='One table row per training run: box AP (last, best, tools/test.py\'s), mask AP, the '
                    'paper\'s AP and the difference, parameters and FLOPs, training time, peak GPU memory, '
                    'latency. Nothing is evaluated again.')
    parser.add_argument('work_dirs', nargs='+',
                        help='work dirs of tools/train.py, globs (quoted), or folders searched for them')
    parser.add_argument('--out', metavar='PREFIX', default='work_dirs/results',
                        help='write PREFIX.md, PREFIX.csv and PREFIX.json (default: work_dirs/results)')
    parser.add_argument('--plot', nargs='?', const='', metavar='PNG',
                        help='also draw box AP against parameters, FLOPs and latency (default file: PREFIX.png)')
    parser.add_argument('--no-complexity', action='store_true',
                        help='do not count parameters and FLOPs (building each detector takes a few seconds)')
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    runs = gather_results(args.work_dirs, complexity=not args.no_complexity)
    print(results_table(runs))
    for path in write_results(runs, args.out):
        print(f'wrote {path}')
    if args.plot is not None:
        from rexnet_mmdet.analysis.results_report import plot_results
        print(f'wrote {plot_results(runs, args.plot or args.out + ".png")}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
