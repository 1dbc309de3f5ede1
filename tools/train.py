"""Train a detector.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
                                 [--auto-scale-lr] [--cfg-options KEY=VALUE ...]
                                 [--launcher {none,pytorch,slurm,mpi}]

Several GPUs or nodes: tools/dist_train.sh; a Slurm cluster: tools/slurm_train.sh.
The datasets are checked before anything is built, the detector (ReXNetGuardHook, added when the config
lacks it) before its first step; checkpoints are loaded without running pickled code (see
rexnet_mmdet/engine/mmengine_loader.py).
"""
import argparse
import os.path as osp
import sys

import rexnet_mmdet.datasets  # noqa: F401  (registers ShapesDataset)
from rexnet_mmdet.engine import (RUN_ERRORS, DatasetCheckError, add_guard, check_backbone_start, check_run_data,
                                 check_training_checkpoint, find_resume_checkpoint, load_checkpoint,
                                 prepare_checkpoints)
from rexnet_mmdet.engine.backbone_start import random_backbone_advice
from rexnet_mmdet.engine.launch import (add_common_arguments, build_runner, flush_denormals_on_cpu, is_main_process,
                                        load_run_config, prepare_distributed, use_standard_coco_summary)
from rexnet_mmdet.utils.cli import fail, keep_tracebacks, tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector', formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config', help='config file, e.g. configs/faster_rcnn_rexnet_x1.0_fpn.py')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto', metavar='CHECKPOINT',
        help='continue training: with no value, from the newest complete checkpoint in the work dir;\n'
             'with a value, from that checkpoint (iteration, optimizer and scheduler state included)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the learning rate by (total batch size / the config's base_batch_size)")
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not check the datasets before building the model')
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    return args


def configure(args: argparse.Namespace):
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    use_standard_coco_summary(cfg)

    if args.amp:
        import torch
        if not torch.cuda.is_available():
            fail('--amp needs a CUDA GPU (mmengine runs mixed precision through torch.cuda.amp); '
                 'leave --amp out to train in full precision on this machine')
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('[train] the config already uses AmpOptimWrapper', flush=True)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            fail(f'--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in the config {args.config}: '
                 f'the total batch size its learning rate was tuned for')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        found = find_resume_checkpoint(cfg.work_dir)
        if found is None:
            print(f'[train] --resume: no complete checkpoint in {cfg.work_dir}; starting from the beginning',
                  flush=True)
            cfg.resume = False
        else:
            print(f'[train] --resume: continuing from {found}', flush=True)
            cfg.resume, cfg.load_from = True, found
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            fail(f'--resume {args.resume}: no such checkpoint (absolute path {osp.abspath(args.resume)}); '
                 f'give no value to continue from the newest checkpoint in the work dir')
        cfg.resume, cfg.load_from = True, args.resume
    if cfg.get('resume') and cfg.get('load_from'):
        adopt_checkpoint_seed(cfg)
    check_backbone_start(cfg, args.config)
    advice = random_backbone_advice(cfg)
    if advice and is_main_process():
        print(f'[train] warning: {advice}', flush=True)
    prepare_checkpoints(cfg, 'train')
    # The guard's data look is this tool's data check, run earlier (or skipped on request).
    add_guard(cfg, check_data=False)
    return cfg


def adopt_checkpoint_seed(cfg) -> None:
    """Resume with the seed of the interrupted run when the config sets none.

    mmengine builds the training data loader (whose sampler shuffles with the run's seed)
    before it reads the checkpoint, and only then switches to the checkpoint's seed: without
    a seed in the config, a resumed run would go through the data in another order.
    Also the place where a checkpoint that must not be loaded is refused, before any model is built.
    """
    checkpoint = load_checkpoint(cfg.load_from, map_location='cpu')
    check_training_checkpoint(checkpoint, cfg.load_from, resume=True)
    seed = checkpoint['meta'].get('seed')
    randomness = dict(cfg.get('randomness') or {})
    if randomness.get('seed') is None and seed is not None:
        print(f'[train] resuming with the interrupted run\'s seed {seed}', flush=True)
        randomness['seed'] = seed
        cfg.randomness = randomness


@tool_main(errors=(DatasetCheckError,))
def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = configure(args)
    if not args.skip_data_check:
        loaders = ['train_dataloader']
        if cfg.get('val_cfg') and cfg.get('val_dataloader') and cfg.get('val_evaluator'):
            loaders.append('val_dataloader')
        # Only one process needs to look; the others would read the same files.
        if is_main_process():
            check_run_data(cfg, loaders)
        else:
            from rexnet_mmdet.engine.data_checks import prepare_synthetic_datasets
            prepare_synthetic_datasets(cfg, loaders)
    prepare_distributed(cfg)
    flush_denormals_on_cpu()
    with keep_tracebacks(except_for=RUN_ERRORS):  # mmengine's and mmdet's own errors keep their traceback
        build_runner(cfg).train()


if __name__ == '__main__':
    sys.exit(main())
