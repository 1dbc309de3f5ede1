"""Inference speed and training memory of ReXNet backbones and detectors beside their counterparts.

Speed: every model of a comparison is built in the same process and timed in the same run,
their runs interleaved (round ``r`` runs the models in an order rotated by ``r``), after warm-up
runs, so that load changes and CPU clock drift reach all of them alike. The figure reported is
the median over the timed runs, and ratios are taken between medians of one run.

- Backbones (the paper's Table 5 setting): ReXNet against MMDetection's MobileNetV2,
  EfficientNet-B0 and ResNet-50, each up to its final feature map (no pooling, no classifier),
  on random 224x224 images at batch 1 and 64.
- Detectors: Faster R-CNN + FPN on ReXNet against the ResNet-50 version of MMDetection
  (``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``), random weights, eval mode,
  ``model.predict`` under ``torch.no_grad()`` on one fixed random image, normalised and padded
  by each model's data preprocessor once, before timing.

Every model, ReXNet and baseline alike, gets the same treatments (``rexnet_mmdet.deploy.treatments``):
"eager" (as built) and "fused+cl" (BatchNorm folded into the convs, channels-last backbone: what
``optimize_for_inference`` does to ReXNet, ``mmcv.cnn.fuse_conv_bn`` to the others), each on a deep
copy with the same weights; optional levers (e.g. the backbone in OpenVINO) likewise go to all.

Memory: the peak memory of one training step (forward + backward) of a detector config, measured
in a fresh subprocess per variant (see :func:`train_step_memory`).
"""
import copy
import ctypes
import gc
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .complexity import count_parameters

#: The project's root (configs/ lives there).
PROJECT_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: MMDetection backbones to compare with, each up to its final feature map at stride 32:
#: MobileNetV2's and EfficientNet-B0's final 1x1 conv (1280 channels, like ReXNet's
#: ``int(1280 * w)`` final conv, tap 6) and ResNet-50's last stage (2048 channels).
BASELINE_BACKBONES: Dict[str, dict] = {
    'MobileNetV2': dict(type='MobileNetV2', widen_factor=1.0, out_indices=(7,)),
    'EfficientNet-B0': dict(type='EfficientNet', arch='b0', out_indices=(6,)),
    'ResNet-50': dict(type='ResNet', depth=50, out_indices=(3,)),
}
#: ReXNet's tap for the backbone comparison: the final 1x1 conv.
REXNET_FINAL_TAP = 6

#: MMDetection's Faster R-CNN + FPN on ResNet-50, the detectors' reference.
REFERENCE_DETECTOR = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
REFERENCE_NAME = 'ResNet-50'
#: Targets set for the project: ReXNet Faster R-CNN predict time / the fused, channels-last
#: ResNet-50 detector's (:data:`TARGET_REFERENCE`), at most.
DETECTOR_TARGETS: Dict[float, float] = {0.9: 0.70, 2.2: 0.85}
#: The treatments every model gets unless told otherwise (see ``rexnet_mmdet.deploy.treatments``).
DEFAULT_TREATMENTS = ('eager', 'fused+cl')
#: The row the targets are measured against.
TARGET_REFERENCE = f'{REFERENCE_NAME} (fused+cl)'

DEFAULT_BACKBONE_WIDTHS = (0.9, 1.0)
DEFAULT_DETECTOR_WIDTHS = (0.9, 2.2)


# ----------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (or what ``platform`` knows)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown'


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> Optional[Tuple[float, float, float]]:
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info(device: str = 'cpu') -> Dict[str, Any]:
    """What a timing depends on: CPU, cores, threads, library versions, load, GPU."""
    info: Dict[str, Any] = dict(
        cpu=cpu_model(), cores=usable_cores(), logical_cpus=os.cpu_count(),
        torch=torch.__version__, threads=torch.get_num_threads(),
        mkldnn=bool(torch.backends.mkldnn.is_available()), python=platform.python_version(),
        load_average=load_average(), device=device)
    try:
        import mmdet
        info['mmdet'] = mmdet.__version__
    except ImportError:
        pass
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info


def format_machine(info: Dict[str, Any]) -> str:
    text = (f"CPU: {info['cpu']} ({info['cores']} usable cores of {info['logical_cpus']}), "
            f"torch {info['torch']}, {info['threads']} threads")
    if 'mmdet' in info:
        text += f", mmdet {info['mmdet']}"
    if info.get('load_average'):
        text += ', load average %s' % ' '.join(f'{v:.2f}' for v in info['load_average'])
    if info.get('gpu'):
        text += f", GPU: {info['gpu']}"
    return text


def busy_cores(interval: float = 1.0) -> Optional[float]:
    """How many cores' worth of CPU time the whole machine used over ``interval`` seconds (from
    ``/proc/stat``; this process sleeps meanwhile, so it is the others' use). ``None`` off Linux."""
    def read() -> Optional[Tuple[int, int]]:
        try:
            with open('/proc/stat', encoding='utf-8') as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]) - idle, sum(values[:8])

    first = read()
    time.sleep(interval)
    second = read()
    if first is None or second is None or second[1] == first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def busy_warning(threads: int, cores: Optional[int] = None) -> Optional[str]:
    """A warning when other processes keep the cores busy: threads then wait on each other at
    every OpenMP barrier, and times grow many-fold (not in proportion), ratios included."""
    cores = cores or usable_cores()
    busy = busy_cores()
    if busy is None or busy + threads <= cores + 0.25:
        return None
    fewer = max(1, int(cores - busy))
    return (f'warning: other processes keep {busy:.1f} of the {cores} cores busy: they compete with the '
            f'{threads} thread(s) and the timings will be inflated and uneven; wait for an idle machine'
            + (f' or use --threads {fewer}' if fewer < threads else ''))


def check_device(device: str) -> torch.device:
    """``'cpu'`` or ``'cuda[:i]'``, failing clearly when CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f'unknown device {device!r}: use cpu or cuda (cuda:0 ...)') from e
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} asked for, but this torch ({torch.__version__}) sees no CUDA '
                         f'GPU; use --device cpu')
    if dev.type not in ('cpu', 'cuda'):
        raise ValueError(f'device {device!r} is not supported: use cpu or cuda')
    return dev


def optimizer_for_inference() -> Optional[Callable[[nn.Module], nn.Module]]:
    """``rexnet_mmdet.deploy.optimize_for_inference`` if the project provides it, else ``None``."""
    try:
        from rexnet_mmdet.deploy import optimize_for_inference
    except ImportError:
        return None
    return optimize_for_inference


def treatment_function(name: str) -> Callable[[nn.Module], nn.Module]:
    """The function of ``rexnet_mmdet.deploy.treatments`` that gives a backbone treatment ``name``."""
    from rexnet_mmdet.deploy.treatments import TREATMENTS, treat_backbone
    if name not in TREATMENTS:
        raise ValueError(f'unknown treatment {name!r}; choose from {", ".join(TREATMENTS)}')
    return lambda backbone: treat_backbone(backbone, name)


def width_name(widen_factor: float) -> str:
    """``0.9 -> 'x0.9'``, ``1 -> 'x1.0'``: the width as the config names write it."""
    text = f'{widen_factor:g}'
    return f'x{text}' if '.' in text or 'e' in text else f'x{text}.0'


# ----------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(cases: Dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                     device: torch.device = torch.device('cpu'),
                     log: Optional[Callable[[str], None]] = None, block: int = 1,
                     pause: float = 0.0) -> Dict[str, List[float]]:
    """Seconds of each of ``repeats`` calls of every case, the cases' calls interleaved.

    ``warmup`` rounds run first and are not timed. Each round calls every case ``block`` times
    in a row (timing each call), in the cases' order rotated by the round number, so that no
    case always follows the same one. ``pause`` seconds of sleep before each block let thread
    pools that spin after work (ONNX Runtime's, OpenMP's) go quiet, so that one runtime's
    spinning threads do not slow the next one down.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be at least 1, got {repeats}')
    if warmup < 0:
        raise ValueError(f'warmup must be 0 or more, got {warmup}')
    if block < 1:
        raise ValueError(f'block must be at least 1, got {block}')
    names = list(cases)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(warmup):
        for name in names:
            cases[name]()
        _sync(device)
        if log:
            log(f'  warm-up {r + 1}/{warmup} done')
    rounds = -(-repeats // block)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if pause:
                time.sleep(pause)
            for _ in range(min(block, repeats - len(times[name]))):
                _sync(device)
                start = time.perf_counter()
                cases[name]()
                _sync(device)
                times[name].append(time.perf_counter() - start)
        if log:
            log(f'  round {r + 1}/{rounds}: ' + ', '.join(f'{n} {times[n][-1] * 1e3:.1f} ms' for n in names))
    return times


@dataclass
class Timing:
    """One timed model.

    Attributes:
        part: ``'backbones'`` or ``'detectors'``.
        name: the model (``'ReXNet x0.9'``, ``'ResNet-50'`` ...).
        mode: ``'eager'`` (as built), ``'optimized'`` (after ``optimize_for_inference``) or
            ``'stock'`` (an MMDetection model as built).
        batch: images per call.
        input: ``(W, H)`` of the images given to the model (after padding, for detectors).
        times: seconds of each timed call.
        params: number of parameters.
        ratios: this model's median over each reference's median (by reference name).
        notes: facts needed to read the row (RoIs, padding, max difference to eager ...).
    """
    part: str
    name: str
    mode: str
    batch: int
    input: Tuple[int, int]
    times: List[float]
    params: int = 0
    width: Optional[float] = None
    ratios: Dict[str, float] = field(default_factory=dict)
    notes: Dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name if self.mode == 'stock' else f'{self.name} ({self.mode})'

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def minimum(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """Interquartile range over the median: the run-to-run noise (0 for a single run)."""
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4, method='inclusive')
        return (q[2] - q[0]) / self.median

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(label=self.label, median_ms=self.median * 1e3, min_ms=self.minimum * 1e3,
                 iqr_over_median=self.spread, times_ms=[t * 1e3 for t in self.times])
        del d['times']
        return d


def _add_ratios(rows: List[Timing], references: Sequence[str]) -> None:
    by_name = {r.label: r for r in rows}
    for row in rows:
        for ref in references:
            if ref in by_name and ref != row.label:
                row.ratios[ref] = row.median / by_name[ref].median


def _quiet_mmengine_logs():
    """Silence mmengine's 'current' logger while building (random-weight banners)."""
    from mmengine.logging import MMLogger

    class _Quiet:
        def __enter__(self):
            self.logger = MMLogger.get_current_instance()
            self.level = self.logger.level
            self.logger.setLevel('ERROR')

        def __exit__(self, *exc):
            self.logger.setLevel(self.level)

    return _Quiet()


def calibrate_batchnorm(model: nn.Module, run: Callable[[], Any], steps: int = 1) -> int:
    """Set every BatchNorm's running statistics to those of the activations ``run()`` produces.

    Randomly initialised networks with default BatchNorm statistics (mean 0, variance 1) do not
    normalise anything: ReXNet's depthwise convs under Kaiming ``fan_out`` init shrink activations
    ~300-fold each, down to the subnormal floats that CPUs compute slowly, and a parity check on
    such outputs could not fail. Statistics taken from the data, as training would set them, give
    activations of a trained network's scale. Returns the number of BatchNorm layers set.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration steps
        m.train()
    try:
        with torch.no_grad():
            for _ in range(steps):
                run()
    finally:
        for m, (training, momentum) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum
    return len(norms)


def _max_abs_diff(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
    return max((_max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)


# ----------------------------------------------------------------------------- backbones
def build_backbone(cfg: dict, seed: int = 0, calibration_size: Optional[int] = 224) -> nn.Module:
    """An MMDetection backbone from its config, initialised by its own ``init_weights``, its
    BatchNorm statistics set on random images of ``calibration_size`` (see
    :func:`calibrate_batchnorm`; ``None``: left at their defaults), in eval mode."""
    from mmengine.registry import init_default_scope

    import rexnet_mmdet  # noqa: F401  (registers ReXNet)
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    with _quiet_mmengine_logs():
        model = MODELS.build(copy.deepcopy(cfg))
        model.init_weights()
    if calibration_size:
        x = torch.randn(4, 3, calibration_size, calibration_size, generator=torch.Generator().manual_seed(seed))
        calibrate_batchnorm(model, lambda: model(x))
    model.eval()  # not chained: MobileNetV2.train() returns None
    return model


def benchmark_backbones(widths: Sequence[float] = DEFAULT_BACKBONE_WIDTHS, batches: Sequence[int] = (1, 64),
                        size: int = 224, repeats: Optional[Dict[int, int]] = None,
                        warmup: Optional[Dict[int, int]] = None, device: str = 'cpu',
                        baselines: Sequence[str] = tuple(BASELINE_BACKBONES), optimize: bool = True,
                        block: Optional[Dict[int, int]] = None,
                        log: Optional[Callable[[str], None]] = print,
                        treatments: Optional[Sequence[str]] = None) -> List[Timing]:
    """Time ReXNet backbones against MMDetection's backbones at each batch size.

    Args:
        widths: ReXNet widths.
        batches: batch sizes; each is one interleaved comparison of every model.
        size: side of the square random images.
        repeats / warmup: timed and untimed calls of each model per batch size (``{batch: n}``;
            default 30/3 for batches up to 8, else 3/1).
        block: consecutive calls of one model in each round (``{batch: n}``; default 5 for
            batches up to 8, else 1). Calls in a row keep the model's weights in the CPU caches,
            as a served model's are; one call per turn would time every model from cold caches,
            which penalises small models most.
        device: ``'cpu'`` or ``'cuda'``.
        baselines: names from :data:`BASELINE_BACKBONES`.
        treatments: what every model (ReXNet and baselines alike) is timed with (default
            :data:`DEFAULT_TREATMENTS`; ``optimize=False``: eager only); a row's mode names it.
    """
    dev = check_device(device)
    unknown = [b for b in baselines if b not in BASELINE_BACKBONES]
    if unknown:
        raise ValueError(f'unknown baseline backbones {unknown}; choose from {", ".join(BASELINE_BACKBONES)}')
    treatments = tuple(treatments or (DEFAULT_TREATMENTS if optimize else ('eager',)))
    specs = [(f'ReXNet {width_name(w)}', w, dict(type='ReXNet', widen_factor=w, out_indices=(REXNET_FINAL_TAP,)))
             for w in widths] + [(name, None, BASELINE_BACKBONES[name]) for name in baselines]
    models: Dict[str, Tuple[nn.Module, Timing]] = {}
    for name, w, cfg in specs:
        built = build_backbone(cfg, calibration_size=min(size, 224)).to(dev)
        for treatment in treatments:
            model = treatment_function(treatment)(copy.deepcopy(built))
            row = Timing('backbones', name, treatment, 0, (size, size), [], count_parameters(built), width=w)
            models[row.label] = (model, row)

    rows: List[Timing] = []
    for batch in batches:
        n_rep = (repeats or {}).get(batch, 30 if batch <= 8 else 3)
        n_warm = (warmup or {}).get(batch, 3 if batch <= 8 else 1)
        n_block = (block or {}).get(batch, 5 if batch <= 8 else 1)
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch)).to(dev)
        if log:
            log(f'backbones, batch {batch} at {size}x{size}: {len(models)} models, {n_warm} warm-up + '
                f'{n_rep} timed calls each, {n_block} in a row per turn')
        with torch.no_grad():
            cases = {label: (lambda m=model: m(x)) for label, (model, _) in models.items()}
            # Check once that each treated model computes what its eager model does.
            outs = {label: model(x) for label, (model, _) in models.items()}
            times = time_interleaved(cases, n_rep, n_warm, dev, log, block=n_block)
        group = []
        for label, (model, template) in models.items():
            row = copy.deepcopy(template)
            row.batch, row.times = batch, times[label]
            eager = f'{row.name} (eager)'
            if row.mode != 'eager' and eager in outs:
                row.notes['max_abs_diff_vs_eager'] = _max_abs_diff(outs[eager], outs[label])
                row.notes['output_max_abs'] = max(float(o.abs().max()) for o in outs[eager])
            group.append(row)
        # Ratios to each baseline under the same treatment (labels 'MobileNetV2 (fused+cl)' ...).
        for row in group:
            for ref in baselines:
                ref_row = next((r for r in group if r.name == ref and r.mode == row.mode), None)
                if ref_row is not None and ref_row is not row:
                    row.ratios[ref] = row.median / ref_row.median
        rows += group
    return rows


# ----------------------------------------------------------------------------- detectors
def load_config(config: str, cfg_options: Optional[dict] = None):
    """A config from a file or from an installed package (``'mmdet::faster_rcnn/...py'``)."""
    from mmengine.config import Config

    if '::' in config:
        from mmengine.hub import get_config
        cfg = get_config(config)
    elif not osp.isfile(config):
        raise FileNotFoundError(f'config file {config} does not exist; pass the path of a config, e.g. '
                                f'configs/faster_rcnn_rexnet_x1.0_fpn.py, or a package config such as '
                                f'{REFERENCE_DETECTOR}')
    else:
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def rexnet_detector_config(widen_factor: float, config_dir: str = osp.join(PROJECT_ROOT, 'configs')):
    """The Faster R-CNN + FPN config of ReXNet ``x{widen_factor}``.

    The project's config file when there is one (x0.9, x1.0, x2.2); any other width is the x1.0
    config with that width and the FPN's input channels from the channel rule.
    """
    from rexnet_mmdet.models.channels import out_channels

    path = osp.join(config_dir, f'faster_rcnn_rexnet_{width_name(widen_factor)}_fpn.py')
    if osp.isfile(path):
        return load_config(path)
    base = osp.join(config_dir, 'faster_rcnn_rexnet_x1.0_fpn.py')
    cfg = load_config(base)
    indices = tuple(cfg.model.backbone.out_indices)
    cfg.model.backbone.widen_factor = float(widen_factor)
    cfg.model.neck.in_channels = list(out_channels(widen_factor, indices))
    return cfg


def build_detector(cfg, seed: int = 0, calibration_size: Optional[Tuple[int, int]] = (640, 416)) -> nn.Module:
    """The detector of ``cfg`` with random weights (its own ``init_weights``, no checkpoint read)
    and BatchNorm statistics set on a random image of ``calibration_size = (W, H)`` (see
    :func:`calibrate_batchnorm`; ``None``: left at their defaults)."""
    from mmengine.registry import init_default_scope

    import rexnet_mmdet  # noqa: F401
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    # Random weights: no ImageNet download, no local checkpoint needed for a timing.
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    with _quiet_mmengine_logs():
        model = MODELS.build(cfg.model)
        model.init_weights()
    if calibration_size:
        # Two images: the SE blocks' BatchNorm sees one value per channel and image.
        data = model.data_preprocessor(synthetic_batch(2, calibration_size, seed=seed + 1), False)
        calibrate_batchnorm(model, lambda: model.extract_feat(data['inputs']))
    return model


def calibration_image_size(image_size: Tuple[int, int], longest: int = 640) -> Tuple[int, int]:
    """``image_size = (W, H)`` scaled down to at most ``longest`` pixels on its long side: enough
    for BatchNorm statistics, cheaper than the full size."""
    scale = min(1.0, longest / max(image_size))
    return max(32, int(image_size[0] * scale)), max(32, int(image_size[1] * scale))


#: The heads' last layers, whose outputs decide which boxes the later stages work on.
PREDICTION_LAYERS = ('rpn_head.rpn_cls', 'rpn_head.rpn_reg', 'roi_head.bbox_head.fc_cls',
                     'roi_head.bbox_head.fc_reg')


def equalize_heads(model: nn.Module) -> List[str]:
    """Zero the heads' last layers (:data:`PREDICTION_LAYERS`), so that the work after the neck
    no longer depends on what random weights make of the features.

    With random weights, where the RPN puts its proposals (their sizes set the RoI Align cost)
    and how many boxes pass the score threshold (the NMS cost) depend on the scale of each
    backbone's random features: between ReXNet and ResNet-50 this alone moved the RoI head's
    time by tens of percent. Zeroed, every detector scores all anchors alike, sends the same
    anchors as proposals to its RoI head (the same count and sizes for every backbone, at a given
    input size) and keeps no detection (uniform class scores stay below the threshold). The
    layers still run: the computation is that of the real detector. Returns the layers zeroed.
    """
    zeroed = []
    for path in PREDICTION_LAYERS:
        layer = model
        for attr in path.split('.'):
            layer = getattr(layer, attr, None)
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                layer.weight.zero_()
                if layer.bias is not None:
                    layer.bias.zero_()
            zeroed.append(path)
    return zeroed


def _num_classes(model: nn.Module, default: int = 80) -> int:
    for path in ('roi_head.bbox_head', 'bbox_head'):
        obj = model
        for attr in path.split('.'):
            obj = getattr(obj, attr, None)
        if obj is not None and isinstance(getattr(obj, 'num_classes', None), int):
            return obj.num_classes
    return default


def synthetic_batch(batch_size: int, size_wh: Tuple[int, int], seed: int = 0, num_boxes: int = 8,
                    num_classes: int = 80, with_mask: bool = False) -> Dict[str, list]:
    """Random uint8 images of ``size_wh = (W, H)`` with random boxes, as a data loader yields them."""
    import numpy as np
    from mmengine.structures import InstanceData

    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    w, h = size_wh
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0),
                                             flip=False, img_id=len(samples)))
        xy = torch.rand(num_boxes, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
        wh = (torch.rand(num_boxes, 2, generator=g) * 0.5 + 0.1) * torch.tensor([w * 0.4, h * 0.4])
        boxes = torch.cat([xy, (xy + wh).minimum(torch.tensor([w - 1.0, h - 1.0]))], dim=1)
        gt = InstanceData(bboxes=boxes, labels=torch.randint(0, num_classes, (num_boxes,), generator=g))
        if with_mask:
            masks = np.zeros((num_boxes, h, w), dtype=np.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
                masks[i, y1:y2 + 1, x1:x2 + 1] = 1
            gt.masks = BitmapMasks(masks, h, w)
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


class StageTimer:
    """Seconds spent in each stage of a detector's ``predict``: backbone, neck, RPN (head and
    proposals), RoI heads (incl. post-processing), or a one-stage detector's head.

    Wraps the stages' methods on the model instance; on CUDA each stage boundary synchronises.
    Call :meth:`begin` before and :meth:`end` after each ``predict``; :attr:`calls` holds one
    ``{stage: seconds}`` per call.
    """

    STAGES = (('backbone', 'backbone', 'forward'), ('neck', 'neck', 'forward'),
              ('rpn', 'rpn_head', 'predict'), ('roi_head', 'roi_head', 'predict'),
              ('head', 'bbox_head', 'predict'))

    def __init__(self, model: nn.Module, device: torch.device = torch.device('cpu')):
        self.device = device
        self.calls: List[Dict[str, float]] = []
        self._current: Dict[str, float] = {}
        for stage, attr, method in self.STAGES:
            module = getattr(model, attr, None)
            if isinstance(module, nn.Module) and hasattr(module, method):
                setattr(module, method, self._wrap(getattr(module, method), stage))

    def _wrap(self, fn: Callable, stage: str) -> Callable:
        def timed(*args, **kwargs):
            _sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            _sync(self.device)
            self._current[stage] = self._current.get(stage, 0.0) + time.perf_counter() - start
            return out
        return timed

    def begin(self) -> None:
        self._current = {}

    def end(self, total: float) -> None:
        stages = dict(self._current)
        stages['other'] = max(0.0, total - sum(stages.values()))
        self.calls.append(stages)

    def medians(self, last: int) -> Dict[str, float]:
        """Median seconds per stage over the last ``last`` calls."""
        calls = self.calls[-last:]
        return {k: statistics.median(c.get(k, 0.0) for c in calls) for k in calls[0]} if calls else {}


def _timed_predict(model: nn.Module, inputs: torch.Tensor, samples: list, timer: StageTimer,
                   device: torch.device) -> Callable[[], None]:
    def run() -> None:
        timer.begin()
        start = time.perf_counter()
        model.predict(inputs, samples)
        _sync(device)
        timer.end(time.perf_counter() - start)
    return run


def _roi_counter(model: nn.Module) -> Tuple[Dict[str, int], list]:
    """Counts the RoIs the box head runs on (its cost scales with them)."""
    counts: Dict[str, int] = {}
    hooks = []
    extractor = getattr(getattr(model, 'roi_head', None), 'bbox_roi_extractor', None)
    if extractor is not None:
        hooks.append(extractor.register_forward_hook(
            lambda m, args, out: counts.__setitem__('rois', int(args[1].shape[0]))))
    return counts, hooks


def benchmark_detectors(widths: Sequence[float] = DEFAULT_DETECTOR_WIDTHS,
                        image_size: Tuple[int, int] = (1200, 800), repeats: int = 5, warmup: int = 1,
                        device: str = 'cpu', reference: Optional[str] = REFERENCE_DETECTOR,
                        config_dir: str = osp.join(PROJECT_ROOT, 'configs'), optimize: bool = True,
                        uniform_heads: bool = True,
                        log: Optional[Callable[[str], None]] = print,
                        treatments: Optional[Sequence[str]] = None) -> List[Timing]:
    """Time ``model.predict`` of ReXNet Faster R-CNN + FPN detectors against the ResNet-50 one.

    Args:
        widths: ReXNet widths (see :func:`rexnet_detector_config`).
        image_size: ``(W, H)`` of the random image before the data preprocessor pads it
            (to a multiple of 32: 1200x800 becomes 1216x800).
        repeats / warmup: timed and untimed rounds.
        reference: the config to compare with (``None``: none).
        treatments: given to every detector's backbone, the reference's included (default
            :data:`DEFAULT_TREATMENTS`; ``optimize=False``: eager only); a row's mode names it.
        uniform_heads: zero the heads' last layers (:func:`equalize_heads`) so that every
            detector's RoI head and post-processing do the same work.
    """
    dev = check_device(device)
    treatments = tuple(treatments or (DEFAULT_TREATMENTS if optimize else ('eager',)))
    entries: List[Tuple[nn.Module, Timing, torch.Tensor, list]] = []
    specs = [(f'ReXNet {width_name(w)}', w, rexnet_detector_config(w, config_dir)) for w in widths]
    if reference:
        specs.append((REFERENCE_NAME if reference == REFERENCE_DETECTOR else osp.basename(reference), None,
                      load_config(reference)))
    batch = synthetic_batch(1, image_size)
    for name, w, cfg in specs:
        if log:
            log(f'building {name} Faster R-CNN + FPN')
        model = build_detector(cfg, calibration_size=calibration_image_size(image_size)).to(dev).eval()
        if uniform_heads:
            equalize_heads(model)
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(batch), False)
            eager_feats = model.backbone(data['inputs'])
        inputs, samples = data['inputs'], data['data_samples']
        padded = (int(inputs.shape[-1]), int(inputs.shape[-2]))
        template = Timing('detectors', name, 'eager', 1, padded, [], count_parameters(model), width=w,
                          notes=dict(image=f'{image_size[0]}x{image_size[1]}', padded=f'{padded[0]}x{padded[1]}'))
        for treatment in treatments:
            from rexnet_mmdet.deploy.treatments import treat_detector_backbone
            treated = treat_detector_backbone(copy.deepcopy(model), treatment)
            row = copy.deepcopy(template)
            row.mode = treatment
            if treatment != 'eager':
                with torch.no_grad():
                    row.notes['max_abs_diff_vs_eager'] = _max_abs_diff(eager_feats, treated.backbone(inputs))
                row.notes['output_max_abs'] = max(float(f.abs().max()) for f in eager_feats)
            entries.append((treated, row, inputs, samples))
        del model

    cases, timers = {}, {}
    for model, row, inputs, samples in entries:
        counts, hooks = _roi_counter(model)
        with torch.no_grad():
            results = model.predict(inputs, samples)
        for hk in hooks:
            hk.remove()
        if 'rois' in counts:
            row.notes['rois'] = counts['rois']
        row.notes['detections'] = len(results[0].pred_instances)
        row.notes['uniform_heads'] = uniform_heads
        timers[row.label] = StageTimer(model, dev)
        cases[row.label] = _timed_predict(model, inputs, samples, timers[row.label], dev)
    if log:
        log(f'detectors, batch 1 at {image_size[0]}x{image_size[1]} (padded {entries[0][1].input[0]}x'
            f'{entries[0][1].input[1]}): {len(cases)} models, {warmup} warm-up + {repeats} timed rounds')
    with torch.no_grad():
        times = time_interleaved(cases, repeats, warmup, dev, log)
    rows = []
    for _, row, _, _ in entries:
        row.times = times[row.label]
        row.notes['stages_ms'] = {k: v * 1e3 for k, v in timers[row.label].medians(repeats).items()}
        rows.append(row)
    _add_ratios(rows, [r.label for r in rows if r.width is None])
    return rows


def target_verdicts(rows: Sequence[Timing]) -> List[str]:
    """Lines stating, for each ReXNet detector with a target, its ratio to the fused, channels-last
    ResNet-50 detector's time (:data:`TARGET_REFERENCE`) against the target."""
    lines = []
    for row in rows:
        target = DETECTOR_TARGETS.get(row.width) if row.width is not None else None
        ratio = row.ratios.get(TARGET_REFERENCE)
        if target is None or ratio is None or row.mode == 'eager':
            continue
        verdict = 'meets' if ratio <= target else 'misses'
        lines.append(f'{row.label}: {ratio:.3f}x the {TARGET_REFERENCE} time; target <= {target:g}x: {verdict} it')
    return lines


# ----------------------------------------------------------------------------- tables
def _ms(seconds: float) -> str:
    return f'{seconds * 1e3:.1f}' if seconds < 10 else f'{seconds * 1e3:.0f}'


def timing_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """One table for the rows of one part (backbones or detectors)."""
    from .complexity import format_count, markdown_table, text_table

    if not rows:
        return ''
    part = rows[0].part
    # Ratio columns: every reference some row was compared with, in a stable order.
    references = [n for n in BASELINE_BACKBONES if any(n in r.ratios for r in rows)]
    references += sorted({ref for r in rows for ref in r.ratios} - set(references))
    header = ['model', 'batch', 'input', 'params', 'median ms', 'ms/image', 'IQR/median']
    if part == 'detectors':
        header = ['detector', 'backbone', 'input (padded)', 'params', 'RoIs', 'dets', 'median ms', 'min ms',
                  'IQR/median']
    header += [f'/ {ref}' for ref in references]
    body = []
    for r in rows:
        ratios = [f'{r.ratios[ref]:.2f}x' if ref in r.ratios else '-' for ref in references]
        if part == 'detectors':
            body.append(['Faster R-CNN + FPN', r.label, f'{r.input[0]}x{r.input[1]}', format_count(r.params),
                         r.notes.get('rois', '-'), r.notes.get('detections', '-'), _ms(r.median), _ms(r.minimum),
                         f'{r.spread:.2f}'] + ratios)
        else:
            body.append([r.label, r.batch, f'{r.input[0]}x{r.input[1]}', format_count(r.params), _ms(r.median),
                         _ms(r.median / r.batch), f'{r.spread:.2f}'] + ratios)
    return markdown_table(header, body) if markdown else text_table(header, body)


def treatment_table(rows: Sequence[Timing], markdown: bool = False, reference: str = 'ResNet-50') -> str:
    """One line per model (and batch), one column pair per treatment: median ms and the ratio to
    ``reference`` under the same treatment; detectors also get their ratio to :data:`TARGET_REFERENCE`."""
    from rexnet_mmdet.deploy.treatments import TREATMENT_LABELS

    from .complexity import markdown_table, text_table

    if not rows:
        return ''
    treatments = list(dict.fromkeys(r.mode for r in rows))
    keys = list(dict.fromkeys((r.name, r.batch) for r in rows))
    by_key = {(r.name, r.batch, r.mode): r for r in rows}
    detectors = rows[0].part == 'detectors'
    header = ['model', 'batch']
    for t in treatments:
        header += [f'{TREATMENT_LABELS.get(t, t)}: ms', f'/ {reference} ({t})']
    if detectors:
        header += [f'{t}: / {TARGET_REFERENCE}' for t in treatments]
    body = []
    for name, batch in keys:
        line = [name, batch]
        for t in treatments:
            r = by_key.get((name, batch, t))
            ref = by_key.get((reference, batch, t))
            line += [_ms(r.median) if r else '-',
                     f'{r.median / ref.median:.2f}x' if r and ref and ref is not r else '-']
        if detectors:
            target = next((x for x in rows if x.label == TARGET_REFERENCE), None)
            for t in treatments:
                r = by_key.get((name, batch, t))
                line.append(f'{r.median / target.median:.2f}x' if r and target and target is not r else '-')
        body.append(line)
    return markdown_table(header, body) if markdown else text_table(header, body)


def stage_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """Median milliseconds per stage of each detector (see :class:`StageTimer`)."""
    from .complexity import markdown_table, text_table

    stages = [st for st, _, _ in StageTimer.STAGES if any(st in r.notes.get('stages_ms', {}) for r in rows)]
    stages.append('other')
    header = ['backbone'] + [f'{st} ms' for st in stages] + ['total ms']
    body = [[r.label] + [_ms(r.notes['stages_ms'].get(st, 0.0) / 1e3) for st in stages] + [_ms(r.median)]
            for r in rows if r.notes.get('stages_ms')]
    return markdown_table(header, body) if markdown else text_table(header, body)


def plot_timings(backbones: Sequence[Timing], detectors: Sequence[Timing], path: str,
                 title: str = '') -> str:
    """A PNG: backbone milliseconds per image at each batch size, and the detectors' predict time
    split into stages. Either list may be empty."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [p for p in (backbones, detectors) if p]
    if not panels:
        raise ValueError('nothing to plot: no backbone and no detector timings')
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    axes = list(axes[0])
    if backbones:
        ax = axes.pop(0)
        labels = list(dict.fromkeys(r.label for r in backbones))
        batches = list(dict.fromkeys(r.batch for r in backbones))
        width = 0.8 / len(batches)
        for j, batch in enumerate(batches):
            values = [next((r.median / r.batch * 1e3 for r in backbones if r.label == lab and r.batch == batch), 0)
                      for lab in labels]
            ax.barh([i + j * width for i in range(len(labels))], values, height=width, label=f'batch {batch}')
        ax.set_yticks([i + width * (len(batches) - 1) / 2 for i in range(len(labels))], labels)
        ax.invert_yaxis()
        ax.set_xlabel('median ms per image')
        ax.set_title(f'Backbones, {backbones[0].input[0]}x{backbones[0].input[1]}')
        ax.legend()
    if detectors:
        ax = axes.pop(0)
        stages = [st for st, _, _ in StageTimer.STAGES
                  if any(st in r.notes.get('stages_ms', {}) for r in detectors)] + ['other']
        left = [0.0] * len(detectors)
        for st in stages:
            values = [r.notes.get('stages_ms', {}).get(st, 0.0) for r in detectors]
            ax.barh(range(len(detectors)), values, left=left, label=st)
            left = [a + b for a, b in zip(left, values)]
        for i, r in enumerate(detectors):
            ratio = r.ratios.get(REFERENCE_NAME)
            if ratio is not None:
                ax.text(left[i], i, f' {ratio:.2f}x', va='center')
        ax.set_yticks(range(len(detectors)), [r.label for r in detectors])
        ax.invert_yaxis()
        ax.set_xlabel('median ms per image (stages: medians)')
        ax.set_title(f'Faster R-CNN + FPN predict, {detectors[0].input[0]}x{detectors[0].input[1]}')
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- memory
def _proc_status_kib(field_name: str) -> Optional[int]:
    try:
        with open('/proc/self/status', encoding='utf-8') as f:
            for line in f:
                if line.startswith(field_name + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _release_free_memory() -> None:
    """Return freed heap memory to the system, so later allocations show up as new resident memory."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of the code run inside ``with`` above what was in use on entry.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensors only). CPU: the process's resident
    memory high-water mark (``VmHWM``), reset on entry; freed heap memory is handed back to the
    system first so that reused memory counts. Where the mark cannot be reset it falls back to
    ``ru_maxrss``, which is then only right if the block sets a new peak for the process.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self.baseline_bytes = 0
        self.method = ''

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            self.method = 'torch.cuda.max_memory_allocated'
            return self
        _release_free_memory()
        if _reset_peak_rss() and _proc_status_kib('VmHWM') is not None:
            self.method = 'VmHWM (peak resident memory, reset before the step)'
            self.baseline_bytes = _proc_status_kib('VmRSS') * 1024
        else:
            import resource
            self.method = 'ru_maxrss (process peak; VmHWM could not be reset)'
            self.baseline_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.method.startswith('VmHWM'):
            peak = _proc_status_kib('VmHWM') * 1024
        else:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak_bytes = max(0, peak - self.baseline_bytes)


def _backbone_loss(outs) -> torch.Tensor:
    return sum(o.float().mean() for o in outs)


def train_step_memory(config: str, with_cp: bool, batch_size: int = 2, image_size: Tuple[int, int] = (1200, 800),
                      device: str = 'cpu', warmup: int = 1, scope: str = 'detector', seed: int = 0,
                      cfg_options: Optional[dict] = None) -> Dict[str, Any]:
    """Peak memory of one training step (forward + backward) of a detector config, in this process.

    Run each variant in a fresh process (:func:`train_step_memory_isolated`): the allocator's
    state from one variant would otherwise blur the next.

    Args:
        config: detector config (file or ``'mmdet::...'``).
        with_cp: the backbone's gradient checkpointing.
        batch_size / image_size: the batch, images of ``(W, H)`` before padding.
        warmup: untimed, unmeasured steps before the measured one (one-off allocations such as
            the gradients' buffers and kernel caches then do not count).
        scope: ``'detector'`` (the whole model's losses) or ``'backbone'`` (the backbone alone,
            loss = sum of the means of its outputs), to see where the peak comes from.

    Returns a dict: ``peak_mib`` (above the memory in use before the step, which holds the model
    and the batch), ``baseline_mib``, ``step_s`` and the settings.
    """
    if scope not in ('detector', 'backbone'):
        raise ValueError(f"scope must be 'detector' or 'backbone', got {scope!r}")
    dev = check_device(device)
    cfg = load_config(config, cfg_options)
    cfg.model.backbone.with_cp = bool(with_cp)
    model = build_detector(cfg, seed, calibration_image_size(image_size)).to(dev)
    model.train()
    batch = synthetic_batch(batch_size, image_size, seed=seed, num_classes=_num_classes(model),
                            with_mask=getattr(getattr(model, 'roi_head', None), 'with_mask', False))
    data = model.data_preprocessor(batch, True)
    inputs, samples = data['inputs'], data['data_samples']
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        if scope == 'detector':
            losses = model.loss(inputs, samples)
            loss, _ = model.parse_losses(losses)
        else:
            loss = _backbone_loss(model.backbone(inputs))
        loss.backward()

    for _ in range(warmup):
        step()
        for p in params:
            p.grad = None
    # The gradients are allocated again in the measured step, as in a training step after
    # ``optimizer.zero_grad()`` (set_to_none, PyTorch's default).
    start = time.perf_counter()
    with PeakMemory(dev) as mem:
        step()
    elapsed = time.perf_counter() - start
    mib = 1024 ** 2
    return dict(config=config, with_cp=bool(with_cp), scope=scope, batch=batch_size,
                image=f'{image_size[0]}x{image_size[1]}', padded=f'{inputs.shape[-1]}x{inputs.shape[-2]}',
                device=str(dev), peak_mib=mem.peak_bytes / mib, baseline_mib=mem.baseline_bytes / mib,
                grad_mib=sum(p.numel() * p.element_size() for p in params) / mib,
                step_s=elapsed, method=mem.method, threads=torch.get_num_threads(),
                backbone_trainable=sum(p.numel() for p in model.backbone.parameters() if p.requires_grad))


_WORKER_MARK = 'TRAIN_STEP_MEMORY_JSON='


def _memory_worker(arg: str) -> None:
    """Entry point of the subprocess: ``arg`` is the JSON of :func:`train_step_memory`'s arguments."""
    kwargs = json.loads(arg)
    threads = kwargs.pop('threads', None)
    if threads:
        torch.set_num_threads(int(threads))
    kwargs['image_size'] = tuple(kwargs['image_size'])
    result = train_step_memory(**kwargs)
    print(_WORKER_MARK + json.dumps(result), flush=True)


def train_step_memory_isolated(config: str, with_cp: bool, threads: Optional[int] = None,
                               timeout: Optional[float] = None, **kwargs) -> Dict[str, Any]:
    """:func:`train_step_memory` in a fresh Python process (arguments as there)."""
    args = dict(config=config, with_cp=with_cp, threads=threads, **kwargs)
    if 'image_size' in args:
        args['image_size'] = list(args['image_size'])
    code = 'import sys; from rexnet_mmdet.analysis.benchmark import _memory_worker; _memory_worker(sys.argv[1])'
    env = dict(os.environ)
    env['PYTHONPATH'] = PROJECT_ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    proc = subprocess.run([sys.executable, '-c', code, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(_WORKER_MARK):
            return json.loads(line[len(_WORKER_MARK):])
    raise RuntimeError(f'the training-step memory measurement of {config} (with_cp={with_cp}) failed '
                       f'(exit code {proc.returncode}):\n{proc.stderr[-3000:]}')


def memory_table(results: Sequence[Dict[str, Any]], markdown: bool = False) -> str:
    """Peak memory with and without ``with_cp``, and the saving, per config and scope."""
    from .complexity import markdown_table, text_table

    header = ['config', 'scope', 'batch', 'input (padded)', 'with_cp', 'peak MiB', 'saving', 'step s']
    body = []
    plain = {(r['config'], r['scope']): r for r in results if not r['with_cp']}
    for r in results:
        base = plain.get((r['config'], r['scope']))
        saving = '-'
        if r['with_cp'] and base and base['peak_mib'] > 0:
            saving = f"{(1 - r['peak_mib'] / base['peak_mib']) * 100:.0f}%"
        body.append([osp.basename(r['config']), r['scope'], r['batch'], r['padded'],
                     'yes' if r['with_cp'] else 'no', f"{r['peak_mib']:.0f}", saving, f"{r['step_s']:.1f}"])
    return markdown_table(header, body) if markdown else text_table(header, body)


__all__ = ['busy_warning', 'busy_cores', 'BASELINE_BACKBONES', 'REFERENCE_DETECTOR', 'DETECTOR_TARGETS', 'Timing', 'StageTimer', 'PeakMemory',
           'machine_info', 'format_machine', 'check_device', 'optimizer_for_inference', 'width_name',
           'treatment_function', 'treatment_table', 'DEFAULT_TREATMENTS', 'TARGET_REFERENCE',
           'time_interleaved', 'calibrate_batchnorm', 'calibration_image_size', 'build_backbone',
           'benchmark_backbones', 'load_config', 'rexnet_detector_config', 'build_detector', 'synthetic_batch',
           'benchmark_detectors', 'equalize_heads', 'PREDICTION_LAYERS', 'target_verdicts', 'timing_table', 'stage_table', 'plot_timings', 'train_step_memory',
           'train_step_memory_isolated', 'memory_table']
