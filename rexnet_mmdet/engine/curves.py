"""Training curves (loss and COCO AP over iterations) read from mmengine's logs, as a PNG.

mmengine's ``LoggerHook`` writes one JSON record per logged training iteration and one per
validation into ``<work_dir>/<timestamp>/vis_data/<timestamp>.json``. A resumed run starts a
new timestamp folder; ``read_scalar_logs`` stitches the sessions together, letting a later
session replace the iterations it repeats.
"""
import glob
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.dist import master_only
from mmengine.registry import HOOKS


@dataclass
class TrainingLog:
    """Records of a run: ``train`` (one dict per logged iteration, with ``iter``) and
    ``val`` (one dict per validation, with ``iter``: the training iteration it followed)."""
    train: List[Dict[str, float]] = field(default_factory=list)
    val: List[Dict[str, float]] = field(default_factory=list)


def scalar_log_file(session: str) -> Optional[str]:
    """The scalar log of one session folder (``<work_dir>/<timestamp>``): ``vis_data/<timestamp>.json``,
    else ``vis_data/scalars.json``; None when it has neither."""
    stamp = osp.basename(osp.normpath(session))
    for name in (f'{stamp}.json', 'scalars.json'):
        path = osp.join(session, 'vis_data', name)
        if osp.isfile(path):
            return path
    return None


def _session_files(work_dir: str) -> List[str]:
    sessions = sorted(osp.dirname(v) for v in glob.glob(osp.join(work_dir, '*', 'vis_data')))
    return [path for path in map(scalar_log_file, sessions) if path]


def read_scalar_logs(paths: List[str]) -> TrainingLog:
    """Merge the JSON-lines scalar logs of one run's sessions, oldest first."""
    log = TrainingLog()
    for path in paths:
        train, val = [], []
        last_iter = 0
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed run
                if 'loss' in record:
                    last_iter = int(record.get('iter', record.get('step', last_iter)))
                    record['iter'] = last_iter
                    train.append(record)
                elif any(k.endswith('_mAP') or '/' in k for k in record):
                    record['iter'] = last_iter
                    val.append(record)
        if train:  # this session re-ran everything from its first iteration on
            start = train[0]['iter']
            log.train = [r for r in log.train if r['iter'] < start]
            log.val = [r for r in log.val if r['iter'] < start]
        log.train += train
        log.val += val
    return log


def plot_training_curves(work_dir: str, out_file: Optional[str] = None, title: str = '') -> Optional[str]:
    """Plot loss (left) and COCO AP (right) over training iterations; return the PNG's path.

    Returns None when the work dir holds no training log yet.
    """
    log = read_scalar_logs(_session_files(work_dir))
    if not log.train:
        return None
    # A Figure with no pyplot: it renders PNG with Agg and leaves the process's backend alone.
    from matplotlib.figure import Figure

    out_file = out_file or osp.join(work_dir, 'training_curves.png')
    fig = Figure(figsize=(12, 4.5))
    ax_loss, ax_ap = fig.subplots(1, 2)
    iters = [r['iter'] for r in log.train]
    loss_keys = ['loss'] + sorted({k for r in log.train for k in r if k.startswith('loss_') and 'acc' not in k})
    for key in loss_keys:
        points = [(r['iter'], r[key]) for r in log.train if key in r]
        ax_loss.plot(*zip(*points), label=key, linewidth=2.2 if key == 'loss' else 1.0)
    ax_loss.set_xlabel('iteration')
    ax_loss.set_ylabel('loss')
    ax_loss.set_title('training loss')
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    if 'lr' in log.train[0]:
        ax_lr = ax_loss.twinx()
        ax_lr.plot(iters, [r.get('lr', float('nan')) for r in log.train], color='grey', linestyle=':',
                   label='learning rate')
        ax_lr.set_ylabel('learning rate', color='grey')

    ap_keys = [k for k in ('coco/bbox_mAP_50', 'coco/bbox_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP')
               if any(k in r for r in log.val)]
    for key in ap_keys:
        points = [(r['iter'], r[key]) for r in log.val if key in r]
        ax_ap.plot(*zip(*points), marker='o', label=key.split('/')[-1])
        x, y = points[-1]
        ax_ap.annotate(f'{y:.3f}', (x, y), textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax_ap.set_xlim(ax_loss.get_xlim())
    ax_ap.set_ylim(0, 1)
    ax_ap.set_xlabel('iteration')
    ax_ap.set_ylabel('AP on the validation split')
    ax_ap.set_title('COCO AP' if ap_keys else 'COCO AP (no validation yet)')
    ax_ap.grid(alpha=0.3)
    if ap_keys:
        ax_ap.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    return out_file


@HOOKS.register_module()
class TrainingCurvesHook(Hook):
    """Redraw ``<work_dir>/training_curves.png`` after every validation and at the end of training.

    Args:
        out_file: where to write the picture, relative to the work dir.
    """
    priority = 'LOWEST'  # after LoggerHook has written the records of this step

    def __init__(self, out_file: str = 'training_curves.png') -> None:
        self.out_file = out_file

    @master_only
    def _draw(self, runner) -> None:
        path = plot_training_curves(runner.work_dir, osp.join(runner.work_dir, self.out_file),
                                    title=osp.basename(runner.work_dir.rstrip('/')))
        if path:
            runner.logger.info(f'training curves: {path}')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._draw(runner)

    def after_train(self, runner) -> None:
        self._draw(runner)
