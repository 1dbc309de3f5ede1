"""Half-precision runs of an MMDetection detector that mmcv's compiled ops can follow.

Under ``torch.autocast`` the convolutions and linear layers of backbone, neck and heads compute in
float16 or bfloat16, and so hand half-precision tensors to mmcv's compiled ops, which take fewer
dtypes: its NMS reads float32 only (on the CPU scores and boxes, on CUDA the boxes), and its RoI
Align takes float32 and, on CUDA, float16. :func:`fp32_post_processing` gives a detector what
MMDetection 2.x's ``force_fp32`` did: box post-processing (decoding, NMS) in float32, and RoI
feature extraction in float32 wherever mmcv's RoI Align lacks the dtype. Every tensor it casts is
small next to the networks' work, and in float32 runs nothing changes.
"""
from typing import Any, Callable, Iterator, Optional, Tuple

import torch
import torch.nn as nn

#: Half-precision dtypes mmcv's RoI Align takes, by device type.
ROI_ALIGN_HALF_DTYPES = {'cuda': (torch.float16,), 'cpu': ()}
#: The heads whose ``predict_by_feat`` decodes boxes and runs NMS.
POST_PROCESSING_HEADS = ('rpn_head', 'bbox_head', 'roi_head.bbox_head', 'roi_head.mask_head')


def autocast_state(device_type: str) -> Tuple[bool, Optional[torch.dtype]]:
    """(enabled, dtype) of ``torch.autocast`` on ``'cuda'`` or ``'cpu'``, on every supported torch (the
    device-type argument of ``torch.is_autocast_enabled`` and ``torch.get_autocast_dtype`` came with torch 2.4)."""
    if hasattr(torch, 'get_autocast_dtype'):
        enabled = torch.is_autocast_enabled(device_type)
        return enabled, torch.get_autocast_dtype(device_type) if enabled else None
    if device_type == 'cpu':
        enabled = torch.is_autocast_cpu_enabled()
        return enabled, torch.get_autocast_cpu_dtype() if enabled else None
    enabled = torch.is_autocast_enabled()
    return enabled, torch.get_autocast_gpu_dtype() if enabled else None


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)


def _as_float(x: Any) -> Any:
    """``x`` with every half-precision tensor inside (lists, tuples) made float32."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if isinstance(x, (list, tuple)) and not hasattr(x, '_fields'):
        return type(x)(_as_float(v) for v in x)
    return x


def in_float32(fn: Callable, keep: Callable[[torch.Tensor], bool] = lambda t: False) -> Callable:
    """``fn`` run in float32, autocast off, when a half-precision tensor reaches it that ``keep``
    does not accept; as it is otherwise."""
    def run(*args, **kwargs):
        half = [t for t in _tensors((args, kwargs)) if t.dtype in (torch.float16, torch.bfloat16) and not keep(t)]
        if not half:
            return fn(*args, **kwargs)
        with torch.autocast(half[0].device.type, enabled=False):
            return fn(*_as_float(args), **{k: _as_float(v) for k, v in kwargs.items()})
    run.__wrapped__ = fn
    return run


def _roi_align_takes(t: torch.Tensor) -> bool:
    return t.dtype in ROI_ALIGN_HALF_DTYPES.get(t.device.type, ())


def fp32_post_processing(detector: nn.Module) -> nn.Module:
    """Make ``detector`` (in place) run box post-processing in float32 and its RoI extractors in
    float32 where mmcv's RoI Align lacks the dtype (see the module's docstring). Apply it to the
    model that runs, after any deep copy: the wrappers are bound to this instance. Returns it."""
    for path in POST_PROCESSING_HEADS:
        head = detector
        for attr in path.split('.'):
            head = getattr(head, attr, None)
        if isinstance(head, nn.Module) and hasattr(head, 'predict_by_feat'):
            object.__setattr__(head, 'predict_by_feat', in_float32(head.predict_by_feat))
    for module in detector.modules():
        if hasattr(module, 'roi_layers') and hasattr(module, 'map_roi_levels'):  # mmdet's RoI extractors
            object.__setattr__(module, 'forward', in_float32(module.forward, keep=_roi_align_takes))
    return detector


__all__ = ['ROI_ALIGN_HALF_DTYPES', 'POST_PROCESSING_HEADS', 'autocast_state', 'in_float32', 'fp32_post_processing']
