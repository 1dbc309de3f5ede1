"""Peak memory of one training step (forward + backward) of a detector config, each variant in a
fresh process (:func:`train_step_memory_isolated`), to see what gradient checkpointing (``with_cp``) saves."""
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..utils.build import PROJECT_ROOT, build_detector, calibration_image_size, fake_batch, load_config
from ..utils.timing import check_device


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


def _num_classes(model: nn.Module, default: int = 80) -> int:
    for path in ('roi_head.bbox_head', 'bbox_head'):
        obj = model
        for attr in path.split('.'):
            obj = getattr(obj, attr, None)
        if obj is not None and isinstance(getattr(obj, 'num_classes', None), int):
            return obj.num_classes
    return default


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
    batch = fake_batch(batch_size, image_size, num_classes=_num_classes(model),
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
    code = 'import sys; from rexnet_mmdet.analysis.memory import _memory_worker; _memory_worker(sys.argv[1])'
    env = dict(os.environ)
    env['PYTHONPATH'] = PROJECT_ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    proc = subprocess.run([sys.executable, '-c', code, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(_WORKER_MARK):
            return json.loads(line[len(_WORKER_MARK):])
    raise RuntimeError(f'the training-step memory measurement of {config} (with_cp={with_cp}) failed '
                       f'(exit code {proc.returncode}):\n{proc.stderr[-3000:]}')


__all__ = ['PeakMemory', 'train_step_memory', 'train_step_memory_isolated']
