"""The whole loop on any machine, in minutes: make a dataset, train a ReXNet detector, evaluate it.

    python tools/misc/demo.py [--work-dir work_dirs/demo] [--config configs/demo/...py] [--no-optimize]

1. Makes the built-in synthetic shapes dataset under data/shapes/ (first run only).
2. Trains Faster R-CNN + FPN on ReXNet x1.0 (or the detector of --config) from random weights
   on the CPU (tools/train.py; COCO AP on the held-out split is measured during training).
3. Evaluates the final checkpoint (tools/test.py, on the inference path unless --no-optimize):
   the COCO table, and pictures of the detections on the held-out images.
4. Leaves in the work dir: training_curves.png (loss and AP over training), detections.png
   (a grid of pictures), detections/ (one picture per image), the checkpoints and logs.

Each step is an ordinary command, printed before it runs, so it can be repeated by hand.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

from rexnet_mmdet.engine.data_checks import DatasetCheckError, check_run_data
from rexnet_mmdet.utils.build import PROJECT_ROOT
from rexnet_mmdet.utils.cli import fail, tool_main

DEFAULT_CONFIG = 'configs/demo/faster_rcnn_rexnet_x1.0_fpn_shapes.py'
#: What the demo promises: box AP50 on the held-out split.
TARGET_AP50 = 0.6


def step(message: str) -> None:
    print(f'\n[demo {time.strftime("%H:%M:%S")}] {message}', flush=True)


def run(cmd: list) -> None:
    print('$ python ' + ' '.join(cmd), flush=True)
    # Idle OpenMP threads sleep instead of spinning: on a machine with few cores and anything else
    # running, spinning threads slow every training step down.
    env = dict(os.environ)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    result = subprocess.run([sys.executable] + cmd, cwd=PROJECT_ROOT, env=env)
    if result.returncode != 0:
        fail(f'this step failed (exit code {result.returncode}); see the messages above')


def latest_metrics(work_dir: str) -> dict:
    """Metrics that ``runner.test()`` wrote to ``<work_dir>/<timestamp>/<timestamp>.json``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    for path in reversed(files):
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        for record in reversed(lines):
            if 'coco/bbox_mAP_50' in record:
                return record
    return {}


def picture_grid(picture_dir: str, out_file: str, count: int = 8, columns: int = 4) -> str:
    """Put the first ``count`` pictures of ``picture_dir`` in one PNG."""
    import cv2
    import numpy as np
    paths = sorted(glob.glob(osp.join(picture_dir, '*.png')))[:count]
    tiles = [cv2.imread(p) for p in paths]
    tiles = [t for t in tiles if t is not None]
    if not tiles:
        return ''
    # Twice the size: the images are small and the labels should be readable.
    h, w = (2 * s for s in tiles[0].shape[:2])
    tiles = [cv2.resize(t, (w, h), interpolation=cv2.INTER_NEAREST) for t in tiles]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(out_file, np.vstack(rows))
    return out_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='demo config (default: %(default)s)')
    parser.add_argument('--work-dir', help='where results go (default: work_dirs/demo for the default config, '
                                           'else work_dirs/<config name>); a previous demo run there is replaced')
    parser.add_argument('--no-optimize', action='store_true',
                        help='evaluate the model as built (tools/test.py --no-optimize), not on the inference path')
    return parser.parse_args(argv)


def clear_previous_run(work_dir: str) -> None:
    """Remove what a previous demo run left in ``work_dir``; refuse a folder that holds anything else."""
    if osp.isdir(work_dir) and os.listdir(work_dir):
        # Only ever delete what a previous run left: an mmengine work dir has these.
        if not (osp.isfile(osp.join(work_dir, 'last_checkpoint')) or glob.glob(osp.join(work_dir, '*', 'vis_data'))):
            fail(f'{work_dir} exists and does not look like a previous demo run; '
                 f'choose another --work-dir')
        print(f'starting afresh: removing the previous demo results in {work_dir}', flush=True)
        shutil.rmtree(work_dir)


@tool_main(errors=(DatasetCheckError,))
def main(argv=None) -> None:
    args = parse_args(argv)
    os.chdir(PROJECT_ROOT)  # the configs name data/shapes/ relative to the clone
    start = time.monotonic()
    work_dir = args.work_dir or ('work_dirs/demo' if args.config == DEFAULT_CONFIG else
                                 osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0]))

    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    max_iters = cfg.train_cfg.max_iters
    step(f'ReXNet demo: {osp.basename(args.config)}: {max_iters} training iterations on the CPU, '
         f'then evaluation')

    step('1/3 dataset: the built-in synthetic shapes dataset (made on first use)')
    check_run_data(cfg, ['train_dataloader', 'val_dataloader'])
    dataset_done = time.monotonic()

    clear_previous_run(work_dir)
    step(f'2/3 training from random weights (progress every {cfg.default_hooks.logger.interval} iterations; '
         f'COCO AP on the held-out images every {cfg.train_cfg.val_interval})')
    run(['tools/train.py', args.config, '--work-dir', work_dir])
    train_done = time.monotonic()

    step('3/3 evaluation of the final checkpoint on the held-out split, with pictures')
    checkpoint = osp.join(work_dir, f'iter_{max_iters}.pth')
    picture_dir = osp.join(work_dir, 'detections')
    test_dir = osp.join(work_dir, 'test')
    # tools/test.py evaluates on the inference path (optimize_for_inference) unless told otherwise.
    run(['tools/test.py', args.config, checkpoint, '--work-dir', test_dir, '--show-dir', picture_dir]
        + (['--no-optimize'] if args.no_optimize else []))
    metrics = latest_metrics(test_dir)
    grid = picture_grid(picture_dir, osp.join(work_dir, 'detections.png'))
    from rexnet_mmdet.engine.curves import plot_training_curves
    curves = plot_training_curves(work_dir, title=f'{osp.basename(args.config)} (held-out AP)')
    end = time.monotonic()

    ap50 = metrics.get('coco/bbox_mAP_50', float('nan'))
    step('done')
    print(f'  box AP50 on the held-out split: {ap50:.3f} (box AP {metrics.get("coco/bbox_mAP", float("nan")):.3f})'
          + ('' if ap50 >= TARGET_AP50 else f'  -- below the {TARGET_AP50} this demo usually reaches'))
    if 'coco/segm_mAP_50' in metrics:
        print(f'  mask AP50: {metrics["coco/segm_mAP_50"]:.3f} (mask AP {metrics["coco/segm_mAP"]:.3f})')
    print(f'  time: {end - start:.0f}s in all (dataset {dataset_done - start:.0f}s, training '
          f'{train_done - dataset_done:.0f}s, evaluation {end - train_done:.0f}s)')
    print(f'  training curves:   {osp.abspath(curves) if curves else "(none)"}')
    print(f'  detections:        {osp.abspath(grid) if grid else "(none)"} (ground truth left, detections right)')
    print(f'  every picture:     {osp.abspath(picture_dir)}')
    print(f'  checkpoint:        {osp.abspath(checkpoint)}')
    print(f'  evaluate it again: python tools/test.py {args.config} {checkpoint}')


if __name__ == '__main__':
    sys.exit(main())
