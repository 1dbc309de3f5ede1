"""Training throughput: images per second and peak memory of a detector's training step (forward,
backward, optimizer step) on a fixed synthetic batch, in fp32 and with automatic mixed precision,
with and without the backbone's gradient checkpointing (``with_cp``).

The detectors are the paper's (:data:`TRAIN_DETECTORS`: Faster R-CNN x0.9 and x2.2, Mask R-CNN
x2.2, SSDLite x1.0 at 320x320) and MMDetection's ResNet-50 and MobileNetV2 counterparts, each built
from its config (random weights, nothing downloaded) at the config's own batch size unless told
otherwise. The first steps of a run are start-up (kernel loading, allocator growth, cuDNN's
autotuning): ``warmup`` steps run untimed before the timed ones.
"""
import gc
import os.path as osp
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..deploy.mixed_precision import fp32_post_processing
from ..utils.build import CONFIG_DIR, build_detector, calibration_image_size, fake_batch, load_config
from ..utils.timing import check_device, sync
from .memory import PeakMemory, _num_classes

#: name -> (config, training image (W, H) before padding). R-CNN images at MMDetection's COCO
#: scale (1333x800 resized keeping the ratio: 1200x800 for a 3:2 photo, padded to 1216x800).
TRAIN_DETECTORS: Dict[str, Tuple[str, Tuple[int, int]]] = {
    'Faster R-CNN ReXNet x0.9': (osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x0.9_fpn.py'), (1200, 800)),
    'Faster R-CNN ReXNet x2.2': (osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x2.2_fpn.py'), (1200, 800)),
    'Faster R-CNN ResNet-50': ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', (1200, 800)),
    'Mask R-CNN ReXNet x2.2': (osp.join(CONFIG_DIR, 'mask_rcnn_rexnet_x2.2_fpn.py'), (1200, 800)),
    'Mask R-CNN ResNet-50': ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', (1200, 800)),
    'SSDLite ReXNet x1.0': (osp.join(CONFIG_DIR, 'ssdlite_rexnet_x1.0.py'), (320, 320)),
    'SSDLite MobileNetV2': ('mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', (320, 320)),
}
#: Precision name -> autocast dtype per device type (None: fp32, no autocast).
AMP_DTYPES = {'cuda': torch.float16, 'cpu': torch.bfloat16}


def _grad_scaler(device_type: str):
    """fp16 training's loss scaler: ``torch.amp.GradScaler`` (torch 2.3+), else the CUDA one of older torch."""
    if hasattr(torch.amp, 'GradScaler'):
        return torch.amp.GradScaler(device_type)
    return torch.cuda.amp.GradScaler()


def _training_step(model, inputs, data_samples, optimizer, dev: torch.device,
                   dtype: Optional[torch.dtype]) -> Tuple[Callable[[], None], List[bool]]:
    """One training step on the fixed batch (autocast to ``dtype`` unless None; float16 with a gradient
    scaler), and the list it appends whether each step's loss was finite to."""
    scaler = _grad_scaler(dev.type) if dtype == torch.float16 else None
    finite: List[bool] = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss, _ = model.parse_losses(model.loss(inputs, data_samples))
        finite.append(bool(torch.isfinite(loss)))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    return step, finite


def _time_steps(step: Callable[[], None], warmup: int, steps: int, dev: torch.device) -> Tuple[List[float], Any]:
    """``warmup`` untimed calls of ``step``, then the seconds of ``steps`` timed ones and their peak memory."""
    for _ in range(warmup):
        step()
    times = []
    with PeakMemory(dev) as mem:
        for _ in range(steps):
            sync(dev)
            start = time.perf_counter()
            step()
            sync(dev)
            times.append(time.perf_counter() - start)
    return times, mem


def train_step_throughput(config: str, amp: bool, with_cp: bool, batch_size: Optional[int] = None,
                          image_size: Tuple[int, int] = (1200, 800), device: str = 'cpu', warmup: int = 15,
                          steps: int = 10, lr: float = 1e-4, seed: int = 0) -> Dict[str, Any]:
    """Time ``steps`` training steps of ``config`` after ``warmup`` untimed ones.

    Args:
        config: detector config (file or ``'mmdet::...'``).
        amp: autocast (float16 with a gradient scaler on CUDA, as MMEngine's ``AmpOptimWrapper``;
            bfloat16 on the CPU) or fp32.
        with_cp: the backbone's gradient checkpointing.
        batch_size: images per step (default: the config's ``train_dataloader.batch_size``).
        image_size: ``(W, H)`` of the synthetic images before padding.
        warmup / steps: untimed and timed steps.
        lr: SGD's learning rate (momentum 0.9, weight decay 1e-4); small, so that random weights
            stay finite and every step does the same work.

    Returns a dict: ``images_per_s`` (batch over the median step), ``step_ms`` (median), ``peak_mib``
    (the most memory in use during the timed steps: CUDA tensors, or the process's resident memory
    on the CPU, model and optimizer state included), ``losses_finite`` and the settings.
    """
    dev = check_device(device)
    if steps < 1 or warmup < 0:
        raise ValueError(f'steps must be at least 1 and warmup 0 or more, got steps={steps}, warmup={warmup}')
    cfg = load_config(config)
    cfg.model.backbone.with_cp = bool(with_cp)
    batch = int(batch_size or cfg.train_dataloader.batch_size)
    model = build_detector(cfg, seed, calibration_size=calibration_image_size(image_size)).to(dev)
    model.train()
    fp32_post_processing(model)  # proposals' NMS in float32 under autocast: mmcv's reads float32 only
    samples = fake_batch(batch, image_size, num_classes=_num_classes(model),
                         with_mask=getattr(getattr(model, 'roi_head', None), 'with_mask', False))
    data = model.data_preprocessor(samples, True)
    inputs, data_samples = data['inputs'], data['data_samples']
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    dtype = AMP_DTYPES[dev.type] if amp else None
    step, finite = _training_step(model, inputs, data_samples, optimizer, dev, dtype)
    times, mem = _time_steps(step, warmup, steps, dev)
    median = statistics.median(times)
    result = dict(config=config, amp=bool(amp), precision=str(dtype).replace('torch.', '') if dtype else 'float32',
                  with_cp=bool(with_cp), batch=batch, image=f'{image_size[0]}x{image_size[1]}',
                  padded=f'{inputs.shape[-1]}x{inputs.shape[-2]}', device=str(dev), warmup=warmup, steps=steps,
                  step_ms=median * 1e3, images_per_s=batch / median, times_ms=[t * 1e3 for t in times],
                  peak_mib=(mem.peak_bytes + mem.baseline_bytes) / 2 ** 20, memory_method=mem.method,
                  losses_finite=all(finite[warmup:]))
    del model, optimizer, inputs, data_samples, step  # step holds them too
    gc.collect()
    if dev.type == 'cuda':
        torch.cuda.empty_cache()
    return result


#: The runs of ``--train-plan short``, in order of value: every detector with AMP first; then, for the
#: x2.2 detectors and their ResNet-50 counterparts, fp32 and AMP with the backbone's with_cp. Each run is
#: (detector, amp, with_cp); a table cut short keeps the AMP comparison whole.
SHORT_EXTRA = ('Faster R-CNN ReXNet x2.2', 'Faster R-CNN ResNet-50', 'Mask R-CNN ReXNet x2.2', 'Mask R-CNN ResNet-50')


def training_runs(names: Sequence[str], plan: str = 'all') -> List[Tuple[str, bool, bool]]:
    """The (detector, amp, with_cp) runs of ``plan`` for the detectors ``names``: ``'all'`` every
    detector in fp32 and AMP, with_cp off and on; ``'short'`` see :data:`SHORT_EXTRA`."""
    unknown = [n for n in names if n not in TRAIN_DETECTORS]
    if unknown:
        raise ValueError(f'unknown detectors {unknown}; choose from {", ".join(TRAIN_DETECTORS)}')
    if plan == 'all':
        return [(n, amp, cp) for n in names for amp in (False, True) for cp in (False, True)]
    if plan == 'short':
        extra = [n for n in names if n in SHORT_EXTRA]
        return [(n, True, False) for n in names] + [(n, False, False) for n in extra] + \
            [(n, True, True) for n in extra]
    raise ValueError(f'unknown training plan {plan!r}; choose from all, short')


def benchmark_training(names: Sequence[str] = tuple(TRAIN_DETECTORS), device: str = 'cpu',
                       amp: Sequence[bool] = (False, True), with_cp: Sequence[bool] = (False, True),
                       batch_size: Optional[int] = None, image_size: Optional[Tuple[int, int]] = None,
                       warmup: int = 15, steps: int = 10,
                       log: Optional[Callable[[str], None]] = print,
                       runs: Optional[Sequence[Tuple[str, bool, bool]]] = None,
                       on_result: Optional[Callable[[List[Dict[str, Any]]], None]] = None) -> List[Dict[str, Any]]:
    """:func:`train_step_throughput` of each detector of :data:`TRAIN_DETECTORS` in ``names``, in
    every combination of ``amp`` and ``with_cp`` (or the (detector, amp, with_cp) ``runs`` given,
    in their order, e.g. from :func:`training_runs`); ``image_size`` replaces every detector's own
    (a dry run at tiny sizes). Each result also has ``name`` and, for the ReXNet detectors, the
    ratio of its images/s to its baseline's in the same setting (``vs_baseline``).
    ``on_result(results)`` is called after every run with the results so far."""
    if runs is None:
        unknown = [n for n in names if n not in TRAIN_DETECTORS]
        if unknown:
            raise ValueError(f'unknown detectors {unknown}; choose from {", ".join(TRAIN_DETECTORS)}')
        runs = [(n, a, cp) for n in names for a in amp for cp in with_cp]
    results: List[Dict[str, Any]] = []
    for name, use_amp, cp in runs:
        config, size = TRAIN_DETECTORS[name]
        if log:
            log(f'training: {name}, {"AMP" if use_amp else "fp32"}, with_cp={cp}: '
                f'{warmup} warm-up + {steps} timed steps')
        r = train_step_throughput(config, use_amp, cp, batch_size, image_size or size, device, warmup, steps)
        r['name'] = name
        if log:
            log(f'  {r["images_per_s"]:.1f} images/s, {r["step_ms"]:.0f} ms/step, peak {r["peak_mib"]:.0f} MiB')
        results.append(r)
        add_baseline_ratios(results)
        if on_result:
            on_result(results)
    return results


def add_baseline_ratios(results: List[Dict[str, Any]]) -> None:
    """Give each result with a baseline among ``results`` (same AMP and with_cp) its ``vs_baseline``."""
    for r in results:
        base = next((b for b in results if b['name'] == baseline_of(r['name']) and b['amp'] == r['amp']
                     and b['with_cp'] == r['with_cp']), None)
        if base is not None and base is not r:
            r['vs_baseline'] = r['images_per_s'] / base['images_per_s']


def baseline_of(name: str) -> str:
    """The baseline a detector of :data:`TRAIN_DETECTORS` is compared with (same detector family)."""
    family = name.split(' ReXNet')[0].split(' ResNet')[0].split(' MobileNet')[0]
    return next(n for n in TRAIN_DETECTORS if n.startswith(family) and 'ReXNet' not in n)


__all__ = ['TRAIN_DETECTORS', 'AMP_DTYPES', 'SHORT_EXTRA', 'train_step_throughput', 'training_runs',
           'benchmark_training', 'add_baseline_ratios', 'baseline_of']
