"""Run the paper's COCO tables on a cluster: train and test every config, then gather the table.

Each config trains into ROOT/<config name> with MMDetection's launchers as the repository ships them
(torchrun: tools/dist_train.sh, tools/dist_test.sh; Slurm: tools/slurm_train.sh, tools/slurm_test.sh), is
tested on val2017 (and, with --test-dev, written as a test-dev submission), and
tools/analysis_tools/gather_results.py makes ROOT/results.{md,csv,json,png}. Run it again to continue:
training always resumes from the newest complete checkpoint.

Examples:
    python tools/analysis_tools/paper_runs.py --table 7 9 --launcher slurm --partition gpu --root work_dirs/paper --dry-run
    python tools/analysis_tools/paper_runs.py --table 6 --launcher pytorch --gpus 8 --root work_dirs/paper \
        --test-dev data/coco/annotations/image_info_test-dev2017.json --test-dev-images data/coco/test2017/
"""
import argparse

from rexnet_mmdet.analysis.paper_runs import LAUNCHERS, plan, run, table_configs
from rexnet_mmdet.utils.cli import tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train, test and gather the paper\'s COCO tables on a cluster')
    parser.add_argument('--table', nargs='+', default=[], choices=('6', '7', '9'),
                        help='the paper\'s tables: 6 SSDLite (test-dev), 7 Faster R-CNN, 9 Mask R-CNN '
                             '(x0.9, x1.0, x2.2 each)')
    parser.add_argument('--configs', nargs='+', default=[], help='config files to run as well (or instead)')
    parser.add_argument('--launcher', choices=LAUNCHERS, required=True,
                        help='slurm (srun through tools/slurm_*.sh) or pytorch (torchrun through tools/dist_*.sh)')
    parser.add_argument('--root', required=True, help='folder for the work dirs (ROOT/<config name>) and the table')
    parser.add_argument('--gpus', type=int, default=8,
                        help='GPUs per run (default 8; the configs\' learning rates are for 8 GPUs x 2 images)')
    parser.add_argument('--gpus-per-node', type=int, help='slurm: GPUs per node (default: min(GPUS, 8))')
    parser.add_argument('--partition', help='slurm: the partition')
    parser.add_argument('--test-dev', metavar='IMAGE_INFO',
                        help='also write a COCO test-dev submission of every config (image_info_test-dev2017.json)')
    parser.add_argument('--test-dev-images', metavar='DIR', help='the test-dev images (data/coco/test2017/)')
    parser.add_argument('--dry-run', action='store_true', help='print every command, run nothing')
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    steps = plan(table_configs(args.table, args.configs), args.launcher, args.root, args.gpus, args.gpus_per_node,
                 args.partition, args.test_dev, args.test_dev_images)
    if args.dry_run:
        for step in steps:
            print(f'# {step.what}\n{step.shell()}')
        return 0
    failed = run(steps)
    if failed:
        print(f'{len(failed)} step(s) failed: {", ".join(failed)}; the table has a row for every run')
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())
