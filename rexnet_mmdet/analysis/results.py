"""Finished training runs gathered into one table, beside the paper's numbers.

Everything comes from what ``tools/train.py`` and ``tools/test.py`` leave in a work dir; nothing is
evaluated again:

- ``<stamp>/vis_data/<stamp>.json`` (or ``scalars.json``): mmengine's scalar log of each training
  session, one JSON record per logged iteration and per validation (resumed runs are stitched
  together by :func:`rexnet_mmdet.engine.read_scalar_logs`);
- ``<stamp>/<stamp>.json``: the metrics of a ``tools/test.py --work-dir`` session, one JSON object;
- ``<stamp>/<stamp>.log``: the text log (number of processes, the checkpoint a test loaded);
- ``<config name>.py``: the config the runner dumped; the newest complete checkpoint's ``meta``
  (how far training got);
- any JSON written by ``tools/analysis_tools/benchmark.py --json`` beside the run (prediction latency).

APs are reported in percent, as the paper prints them (mmengine logs fractions). A run whose logs are
missing or damaged, or that stopped early, still gets a row: ``status`` and ``problems`` say what is
wrong.
"""
import glob
import json
import os
import os.path as osp
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..engine import find_resume_checkpoint, load_checkpoint_file, read_scalar_logs, scalar_log_file
from ..models.channels import family_name
from ..utils.build import load_config
from .paper import paper_detector

#: mmengine's timestamp folders (``20261207_031500``).
_STAMP = re.compile(r'^\d{8}_\d{6}$')
_CKPT = re.compile(r'^(?:iter|epoch)_\d+\.pth$')
#: COCO's six box numbers as CocoMetric logs them, and the names a table gives them.
BOX_KEYS = (('AP', 'mAP'), ('AP50', 'mAP_50'), ('AP75', 'mAP_75'), ('APs', 'mAP_s'), ('APm', 'mAP_m'),
            ('APl', 'mAP_l'))


@dataclass
class RunResult:
    """One run's row. APs in percent; ``None`` where the logs do not have it.

    Attributes:
        work_dir, config: the run's folder and its config's name.
        status: ``'finished'``, ``'unfinished'``, ``'no training log'`` or ``'no checkpoint'``.
        problems: what is missing or damaged, one sentence each.
        box, mask: COCO numbers (keys of :data:`BOX_KEYS`) of the last validation; ``val_at`` when it ran
            (``'iter 30'``, ``'epoch 12'``).
        best_box_ap, best_at: the best validation box AP and when it ran.
        test_box, test_mask, test_checkpoint: the newest ``tools/test.py`` session in the work dir.
        paper_box_ap, paper_mask_ap, paper_split: the paper's row for this config name.
        params, flops, flops_input: the project's counter at the config's test input.
        train_time_s: sum of the logged seconds per iteration over the training iterations (no validation).
        peak_memory_mib: the largest ``memory`` mmengine logged (CUDA runs only).
        latency_ms, latency_note: prediction latency from a benchmark JSON beside the run.
    """
    work_dir: str
    config: str = ''
    status: str = 'no training log'
    problems: List[str] = field(default_factory=list)
    detector: str = ''
    backbone: str = ''
    width: Optional[float] = None
    imagenet_start: str = ''
    schedule: str = ''
    images_per_batch: Optional[int] = None
    gpus: Optional[int] = None
    progress: str = ''
    checkpoint: str = ''
    box: Dict[str, float] = field(default_factory=dict)
    mask: Dict[str, float] = field(default_factory=dict)
    val_at: str = ''
    best_box_ap: Optional[float] = None
    best_at: str = ''
    test_box: Dict[str, float] = field(default_factory=dict)
    test_mask: Dict[str, float] = field(default_factory=dict)
    test_checkpoint: str = ''
    paper_box_ap: Optional[float] = None
    paper_mask_ap: Optional[float] = None
    paper_split: str = ''
    params: Optional[int] = None
    flops: Optional[int] = None
    flops_input: str = ''
    train_time_s: Optional[float] = None
    peak_memory_mib: Optional[float] = None
    latency_ms: Optional[float] = None
    latency_note: str = ''

    @property
    def box_ap(self) -> Optional[float]:
        """The run's box AP: the test session's if there is one, else the last validation's."""
        return (self.test_box or self.box).get('AP')

    @property
    def box_ap_difference(self) -> Optional[float]:
        if self.box_ap is None or self.paper_box_ap is None:
            return None
        return self.box_ap - self.paper_box_ap

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(box_ap=self.box_ap, box_ap_difference=self.box_ap_difference)
        return d


# ----------------------------------------------------------------------------- finding runs
def is_run_dir(path: str) -> bool:
    """A work dir of tools/train.py or tools/test.py: it holds a timestamp folder, a checkpoint or
    mmengine's ``last_checkpoint`` pointer."""
    if not osp.isdir(path):
        return False
    names = os.listdir(path)
    return 'last_checkpoint' in names or any(_CKPT.match(n) for n in names) or \
        any(_STAMP.match(n) and osp.isdir(osp.join(path, n)) for n in names)


def find_runs(paths: Sequence[str], max_depth: int = 4) -> List[str]:
    """Work dirs from paths, globs (``'work_dirs/*x1.0*'``) or parent folders searched for runs."""
    runs: List[str] = []
    for pattern in paths:
        matches = sorted(glob.glob(osp.expanduser(pattern))) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise FileNotFoundError(f'{pattern} matches nothing; give work dirs of tools/train.py, a glob or a '
                                    f'folder that holds them')
        found = []
        for path in matches:
            if not osp.exists(path):
                raise FileNotFoundError(f'{path} does not exist; give work dirs of tools/train.py, a glob or a '
                                        f'folder that holds them')
            found += _search(path, max_depth)
        if not found:
            raise FileNotFoundError(f'no run found in {pattern} (a run\'s work dir holds timestamp folders with '
                                    f'logs, or checkpoints); give the work dir tools/train.py wrote')
        runs += [r for r in found if r not in runs]
    return runs


def _search(path: str, depth: int) -> List[str]:
    if is_run_dir(path):
        return [osp.normpath(path)]
    if depth == 0 or not osp.isdir(path):
        return []
    out = []
    for name in sorted(os.listdir(path)):
        out += _search(osp.join(path, name), depth - 1)
    return out


# ----------------------------------------------------------------------------- reading one run
def _sessions(work_dir: str) -> List[str]:
    return sorted(osp.join(work_dir, n) for n in os.listdir(work_dir)
                  if _STAMP.match(n) and osp.isdir(osp.join(work_dir, n)))


def _unreadable_lines(path: str) -> int:
    bad = 0
    with open(path, errors='replace') as f:
        for line in f:
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    bad += 1
    return bad


def _coco_numbers(record: Dict[str, Any], kind: str) -> Dict[str, float]:
    out = {}
    for name, key in BOX_KEYS:
        value = record.get(f'coco/{kind}_{key}')
        if isinstance(value, (int, float)) and value >= 0:  # COCOeval gives -1 where a size has no object
            out[name] = 100.0 * value
    return out


def _read_text(path: str) -> str:
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def _when(val_record: Dict[str, Any], by_epoch: bool) -> str:
    # mmengine logs a validation with step = the epoch by default (LoggerHook's log_metric_by_epoch), also
    # in iteration-based loops; there the training iteration before it says when it ran.
    if by_epoch and 'step' in val_record:
        return f'epoch {val_record["step"]}'
    return f'iter {val_record["iter"]}'


def _read_logs(run: RunResult, sessions: List[str], by_epoch: bool) -> None:
    train_files, tests = [], []
    for session in sessions:
        scalars = scalar_log_file(session)
        metrics = osp.join(session, f'{osp.basename(session)}.json')
        if scalars:
            bad = _unreadable_lines(scalars)
            if bad:
                run.problems.append(f'{bad} unreadable line(s) in {osp.relpath(scalars, run.work_dir)}')
            if _is_training_session(session):
                train_files.append(scalars)
        if osp.isfile(metrics):
            try:
                with open(metrics) as f:
                    record = json.load(f)
                if _coco_numbers(record, 'bbox'):  # a --test-dev session writes no metrics
                    tests.append((session, record))
            except (ValueError, AttributeError):
                run.problems.append(f'unreadable test metrics {osp.relpath(metrics, run.work_dir)}')
    log = read_scalar_logs(train_files)
    if log.train:
        run.status = 'unfinished'  # until the checkpoint says otherwise
        times = [r for r in log.train if isinstance(r.get('time'), (int, float))]
        previous = 0
        total = 0.0
        for r in times:  # step: the global iteration (iter is the epoch's own in epoch-based loops)
            step = int(r.get('step', r['iter']))
            total += r['time'] * max(step - previous, 1)
            previous = step
        run.train_time_s = total if times else None
        memory = [r['memory'] for r in log.train if isinstance(r.get('memory'), (int, float))]
        run.peak_memory_mib = max(memory) if memory else None
    elif sessions:
        run.problems.append('no training records in the scalar logs')
    val = [r for r in log.val if _coco_numbers(r, 'bbox')]
    if val:
        run.box, run.mask = _coco_numbers(val[-1], 'bbox'), _coco_numbers(val[-1], 'segm')
        best = max(val, key=lambda r: r['coco/bbox_mAP'])
        run.val_at, run.best_at = _when(val[-1], by_epoch), _when(best, by_epoch)
        run.best_box_ap = 100.0 * best['coco/bbox_mAP']
    if tests:
        session, metrics = tests[-1]
        run.test_box, run.test_mask = _coco_numbers(metrics, 'bbox'), _coco_numbers(metrics, 'segm')
        loaded = re.findall(r'Load checkpoint from (\S+)', _read_text(osp.join(session, osp.basename(session) + '.log')))
        run.test_checkpoint = osp.basename(loaded[-1]) if loaded else ''
    for session in reversed([osp.dirname(osp.dirname(f)) for f in train_files]):
        gpus = re.search(r'GPU number: (\d+)', _read_text(osp.join(session, osp.basename(session) + '.log')))
        if gpus:
            run.gpus = int(gpus.group(1))
            break


def _is_training_session(session: str) -> bool:
    scalars = scalar_log_file(session)
    return scalars is not None and bool(read_scalar_logs([scalars]).train)


def _dumped_config(work_dir: str, sessions: List[str]) -> Tuple[Optional[str], str]:
    """(the config training ran with, its name). The newest training session's copy comes first: a later
    ``tools/test.py --work-dir`` in the same folder overwrites ``<work_dir>/<name>.py`` with its own config."""
    top = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    name = osp.splitext(osp.basename(top[-1]))[0] if top else osp.basename(osp.normpath(work_dir))
    for session in reversed([s for s in sessions if _is_training_session(s)]):
        path = osp.join(session, 'vis_data', 'config.py')
        if osp.isfile(path):
            return path, name
    return (top[-1] if top else None), name


def _describe_model(run: RunResult, cfg) -> None:
    model = cfg.get('model', {})
    run.detector = str(model.get('type', ''))
    backbone = model.get('backbone', {}) or {}
    kind = str(backbone.get('type', ''))
    if kind == 'ReXNet':
        try:
            run.backbone = family_name(backbone.get('arch', 'v1'), backbone.get('channel_divisor'))
        except ValueError:
            run.backbone = 'ReXNet'
        run.width = float(backbone.get('widen_factor', 1.0))
    else:
        run.backbone = kind + (str(backbone['depth']) if 'depth' in backbone else '')
    init = backbone.get('init_cfg') or {}
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        run.imagenet_start = osp.basename(str(init.get('checkpoint', '')))
    else:
        run.imagenet_start = 'random init'
    loop = cfg.get('train_cfg', {}) or {}
    if 'max_epochs' in loop:
        run.schedule = f'{loop["max_epochs"]} epochs'
    elif 'max_iters' in loop:
        run.schedule = f'{loop["max_iters"]} iters'
    run.images_per_batch = cfg.get('train_dataloader', {}).get('batch_size')


def _read_checkpoint(run: RunResult, cfg) -> None:
    path = find_resume_checkpoint(run.work_dir)
    if path is None:
        if run.status == 'unfinished' or any(_CKPT.match(n) for n in os.listdir(run.work_dir)):
            run.status = 'no checkpoint'
            run.problems.append('no complete checkpoint')
        return
    run.checkpoint = osp.basename(path)
    try:
        meta = load_checkpoint_file(path, map_location='cpu').get('meta', {}) or {}
    except Exception as e:  # noqa: BLE001  (a damaged file gets a row, not a crash)
        run.problems.append(f'{run.checkpoint} unreadable: {e}')
        return
    loop = cfg.get('train_cfg', {}) if cfg is not None else {}
    if 'max_epochs' in loop:
        done, total, unit = meta.get('epoch'), loop['max_epochs'], 'epochs'
    else:
        done, total, unit = meta.get('iter'), loop.get('max_iters'), 'iters'
    if done is None or total is None:
        run.progress = ''
        return
    run.progress = f'{done}/{total} {unit}'
    if run.status != 'no training log':
        run.status = 'finished' if int(done) >= int(total) else 'unfinished'


def _read_complexity(run: RunResult, cfg) -> None:
    from .complexity import config_test_scale, detector_complexity

    # The test dataloader's own Resize: what the detector saw (a config's top-level test_pipeline may be stale).
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    scale = config_test_scale(dict(test_pipeline=dataset.get('pipeline'))) if dataset.get('pipeline') else None
    try:
        result = detector_complexity(cfg, input_size=scale)
    except Exception as e:  # noqa: BLE001
        run.problems.append(f'parameters and FLOPs not counted: {str(e).splitlines()[0] if str(e) else type(e).__name__}')
        return
    run.params, run.flops = result.params, result.flops
    run.flops_input = f'{result.input_shape[3]}x{result.input_shape[2]}'


def _read_latency(run: RunResult) -> None:
    """The fastest batch-1 Faster R-CNN timing of this run's width in a benchmark JSON beside the run
    (``benchmark.py --part detectors --json``; its detectors are Faster R-CNN + FPN)."""
    if run.detector != 'FasterRCNN' or run.width is None:
        return
    for path in sorted(glob.glob(osp.join(run.work_dir, '*.json'))):
        try:
            with open(path) as f:
                record = json.load(f)
            rows = record['results']['detectors']
        except (ValueError, KeyError, TypeError, OSError):
            continue
        rows = [r for r in rows if r.get('batch') == 1 and r.get('width') is not None
                and abs(float(r['width']) - run.width) < 1e-6 and 'median_ms' in r]
        if rows:
            best = min(rows, key=lambda r: r['median_ms'])
            device = record.get('settings', {}).get('device', '?')
            size = 'x'.join(map(str, best.get('input', ())))
            run.latency_ms = float(best['median_ms'])
            run.latency_note = f'{osp.basename(path)}: {best.get("label", "")}, {size}, {device}, random weights'
            return


def read_run(work_dir: str, complexity: bool = True) -> RunResult:
    """One run's row from its work dir; problems go into the row, never raise."""
    run = RunResult(work_dir=osp.normpath(work_dir))
    if not osp.isdir(work_dir):
        run.problems.append('not a folder')
        return run
    cfg = None
    sessions = _sessions(work_dir)
    config, run.config = _dumped_config(work_dir, sessions)
    if config is None:
        run.problems.append('no dumped config')
    else:
        try:
            cfg = load_config(config)
        except Exception as e:  # noqa: BLE001
            run.problems.append(f'config {osp.basename(config)} unreadable: {str(e).splitlines()[0] if str(e) else e!r}')
    if cfg is not None:
        _describe_model(run, cfg)
    _read_logs(run, sessions, by_epoch='max_epochs' in (cfg.get('train_cfg', {}) if cfg else {}))
    _read_checkpoint(run, cfg)
    paper = paper_detector(run.config) if run.config else None
    if paper is not None:
        run.paper_box_ap, run.paper_mask_ap, run.paper_split = paper.box_ap, paper.mask_ap, paper.ap_split
    if cfg is not None and complexity:
        _read_complexity(run, cfg)
    _read_latency(run)
    return run


def gather_results(paths: Sequence[str], complexity: bool = True) -> List[RunResult]:
    """:func:`read_run` for every run :func:`find_runs` finds."""
    return [read_run(path, complexity) for path in find_runs(paths)]


__all__ = ['BOX_KEYS', 'RunResult', 'is_run_dir', 'find_runs', 'read_run', 'gather_results']
