"""What ``tools/train.py`` and ``tools/test.py`` share: config loading, work dirs,
distributed start-up without GPUs, and building the runner."""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..utils.build import load_config, missing_config_message
from ..utils.cli import fail

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_common_arguments(parser) -> None:
    """The flags both tools take, spelled as in MMDetection."""
    parser.add_argument('--work-dir', help='folder for logs, checkpoints and results '
                                           '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override config entries, key=value (e.g. train_dataloader.batch_size=4 '
             "'model.backbone.widen_factor=1.3'); lists as key=\"[a,b]\", no spaces inside")
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='how the processes were started (pytorch: torchrun, tools/dist_*.sh; '
                             'slurm: srun, tools/slurm_train.sh)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def dict_literal_option_message(key: str, value: str) -> Optional[str]:
    """The one-line error for a ``--cfg-options`` value written as a dict (``KEY=dict(...)`` or
    ``KEY={...}``), which mmengine's ``DictAction`` cannot parse (a RecursionError, or a list of string pieces
    that fails later with a bare AssertionError); None for any other value."""
    text = value.strip()
    if not text.startswith(('dict(', '{')):
        return None
    example = f'{key}.type=Pretrained {key}.checkpoint=PATH' if key.endswith('init_cfg') else f'{key}.FIELD=VALUE'
    return (f'--cfg-options {key}={text}: a value cannot be a dict here; set its fields one by one in the dotted '
            f'form, e.g. {example} (a field the config lacks is added)')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction``, refusing a value written as a dict with :func:`dict_literal_option_message`."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, _, value = item.partition('=')
            message = dict_literal_option_message(key, value)
            if message:
                fail(message)
        super().__call__(parser, namespace, values, option_string)


def load_run_config(config: str, cfg_options: Optional[dict], work_dir: Optional[str], launcher: str) -> Config:
    """Read ``config``, apply ``--cfg-options`` and settle the launcher and the work dir."""
    if not osp.isfile(config):
        fail(missing_config_message(config))
    cfg = load_config(config, cfg_options)
    cfg.launcher = launcher
    if launcher == 'pytorch' and 'RANK' not in os.environ:
        fail('--launcher pytorch needs the environment torchrun sets up (RANK, LOCAL_RANK, '
             'WORLD_SIZE); start it with tools/dist_train.sh or torchrun, not python directly')
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def _cpu_dist_env_from_slurm() -> None:
    # What mmengine's slurm start-up derives (it also pins a GPU, which a CPU run has not).
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        import subprocess
        nodes = os.environ.get('SLURM_NODELIST', '127.0.0.1')
        try:
            addr = subprocess.run(['scontrol', 'show', 'hostname', nodes], capture_output=True,
                                  text=True, check=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            addr = nodes.split(',')[0]
        os.environ['MASTER_ADDR'] = addr


def prepare_distributed(cfg: Config) -> None:
    """Make distributed runs work on machines without CUDA.

    mmengine's start-up pins ``torch.cuda`` to the local rank, which fails without a GPU,
    and its DDP wrapper is given ``device_ids=[local rank]``, which DDP rejects for CPU
    modules. Without CUDA the process group is started here with gloo (mmengine then uses
    it as is) and the wrapper gets no device ids. With CUDA nothing changes.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if cfg.launcher == 'slurm':
        _cpu_dist_env_from_slurm()
    elif cfg.launcher == 'mpi':
        os.environ.setdefault('RANK', os.environ.get('OMPI_COMM_WORLD_RANK', '0'))
        os.environ.setdefault('WORLD_SIZE', os.environ.get('OMPI_COMM_WORLD_SIZE', '1'))
        os.environ.setdefault('LOCAL_RANK', os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '0'))
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        print(f'[launch] no CUDA here: using the gloo backend instead of {backend}', file=sys.stderr)
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                                                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


#: COCOeval's ``maxDets``: what COCO's own summary (and every paper's table) uses.
COCO_MAX_DETS = (1, 10, 100)


def use_standard_coco_summary(cfg: Config, keys: Sequence[str] = ('val_evaluator', 'test_evaluator')) -> None:
    """Make ``CocoMetric`` print COCO's standard 12 numbers.

    mmdet's ``CocoMetric`` hands its ``proposal_nums`` (default 100, 300, 1000) to COCOeval as
    ``maxDets``: its summary then shows AR@100/300/1000 where COCO's shows AR@1/10/100, and
    its AP lines allow 1000 detections per image. With (1, 10, 100) the printed table is
    COCO's own, and AP counts each image's best 100 detections, as COCO's evaluation does. The AP
    metrics (``coco/bbox_mAP`` ...) are then those mmdet would report for detectors that keep at
    most 100 detections per image (``max_per_img``: the R-CNN and RetinaNet configs here); for
    detectors that keep more (the SSDLite configs keep up to 200, RTMDet up to 300) they count
    only the best 100. Left alone: evaluators that set ``proposal_nums`` or ``metric_items``
    themselves, and proposal (RPN) evaluation.
    """
    for key in keys:
        evaluators = cfg.get(key)
        for ev in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            if not isinstance(ev, dict) or ev.get('type') != 'CocoMetric':
                continue
            metrics = ev.get('metric', 'bbox')
            metrics = [metrics] if isinstance(metrics, str) else list(metrics)
            if 'proposal' in metrics or 'proposal_nums' in ev or ev.get('metric_items'):
                continue
            ev['proposal_nums'] = COCO_MAX_DETS


def build_runner(cfg: Config) -> Runner:
    """The runner the config asks for (``runner_type``), as mmdet's tools build it."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def is_main_process() -> bool:
    """Rank 0 (or not distributed), from the launcher's environment: usable before start-up."""
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return True


def flush_denormals_on_cpu() -> None:
    """Treat denormal floats as zero when running on the CPU.

    Values below ~1e-38 cost a CPU tens of times more per operation than normal ones; a
    network whose activations decay there (e.g. random weights under frozen BatchNorm) would
    train many times slower for no gain in accuracy. GPUs handle them at full speed.
    """
    if not torch.cuda.is_available():
        torch.set_flush_denormal(True)
