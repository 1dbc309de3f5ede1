"""Numeric settings of a timing: the precision a model runs in, TF32 and cuDNN's benchmark mode, and
how far a model's outputs may lie from a high-precision reference in each.

- Precisions (:data:`PRECISIONS`): ``'fp32'``, ``'fp16'`` and ``'bf16'``. Half precisions run the
  model under ``torch.autocast``, as MMEngine's ``fp16=True`` test loop and ``--amp`` training do;
  the inputs stay float32. fp16 on the CPU is refused (:func:`check_precision`).
- :func:`apply_numeric_settings` sets TF32 and ``cudnn.benchmark`` explicitly (PyTorch's defaults
  differ between its matmul and cuDNN switches) and returns what was set, for the output.
- :func:`reference_outputs` computes a model's outputs in the most exact setting at hand: float32
  with TF32 off on a GPU, float64 on the CPU.
- :func:`relative_difference` and :func:`tolerance`: ``||out - ref|| / ||ref||`` per output map, and
  the bound that rounding explains, set by the same model as built run in the same precision. A
  real error (a wrong fold, a stale buffer, an unwritten output) lands far above it.
"""
import contextlib
import copy
import math
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import torch
import torch.nn as nn

from ..deploy.backends import PRECISIONS

#: Precision (:data:`PRECISIONS`) -> the dtype the model computes in.
DTYPES: Dict[str, torch.dtype] = dict(zip(PRECISIONS, (torch.float32, torch.float16, torch.bfloat16)))

#: Rounding through a deep random network is far larger than per-operation rounding, and differs
#: between networks by orders of magnitude (random weights amplify any perturbation stage by stage;
#: what was measured is in docs/benchmarks_gpu.md), so no fixed bound per precision both passes
#: rounding and catches an error. The bound (:func:`tolerance`) is therefore set by the same model as
#: built, run in the same precision and settings: a treatment may differ from the exact reference by at
#: most :data:`AS_BUILT_FACTOR` times what the model as built differs by, and never by less than the
#: precision's floor below. Where rounding alone reaches ~1, a precision cannot show an error: the
#: benchmarks therefore also check every treatment in fp32 with TF32 off (:func:`tf32_off`), where an
#: error stands out by orders of magnitude.
ROUNDING_FLOORS: Dict[str, float] = {'fp32': 1e-4, 'tf32': 1e-3, 'fp16': 1e-3, 'bf16': 1e-2}
AS_BUILT_FACTOR = 3.0


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of ``precision``; a clear error for an unknown name or for fp16 on the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; choose from {", ".join(PRECISIONS)}')
    if precision == 'fp16' and device.type == 'cpu':
        raise ValueError('fp16 runs on a CUDA device only: the CPU has no fast float16 convolutions; '
                         'use bf16 (or fp32) on the CPU, or --device cuda')
    return DTYPES[precision]


def usable_precisions(precisions: Sequence[str], device: torch.device) -> Dict[str, Optional[str]]:
    """``{precision: None}`` for those that run on ``device``, ``{precision: why not}`` for the rest."""
    out: Dict[str, Optional[str]] = {}
    for p in precisions:
        try:
            check_precision(p, device)
            out[p] = None
        except ValueError as e:
            if p not in PRECISIONS:
                raise
            out[p] = str(e)
    return out


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a model runs in at ``precision``: nothing for fp32, else ``torch.autocast``.

    The autocast weight cache is off: a CUDA graph captured inside must not hold casts made
    outside it, and within one forward pass every weight is cast once anyway.
    """
    dtype = check_precision(precision, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


def apply_numeric_settings(device: torch.device, tf32: bool = False, cudnn_benchmark: bool = False
                           ) -> Dict[str, Any]:
    """Set TF32 (matmul and cuDNN alike) and cuDNN's benchmark mode explicitly; return them.

    With benchmark mode on, cuDNN times candidate kernels at every new input shape: callers warm
    every shape before timing, so that none of that search falls inside a timed call.
    """
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
    return dict(tf32=bool(tf32), cudnn_benchmark=bool(cudnn_benchmark), device=str(device),
                applies=device.type == 'cuda')


def describe_numeric_settings(settings: Dict[str, Any]) -> str:
    """One line for the output: what the fp32 columns mean and whether autotuning ran."""
    if not settings.get('applies'):
        return 'numeric settings: CPU (TF32 and cuDNN benchmark mode do not apply)'
    return (f"numeric settings: TF32 {'on' if settings['tf32'] else 'off'} for fp32 convolutions and "
            f"matmuls; cudnn.benchmark {'on (every shape warmed before timing)' if settings['cudnn_benchmark'] else 'off'}")


def precision_label(precision: str, settings: Optional[Dict[str, Any]] = None) -> str:
    """``'fp16'``, ``'fp32'`` or ``'fp32 (TF32)'``: a column's precision as the tables name it."""
    if precision == 'fp32' and settings and settings.get('applies') and settings.get('tf32'):
        return 'fp32 (TF32)'
    return precision


def tolerance(precision: str, settings: Optional[Dict[str, Any]] = None, as_built: float = 0.0) -> float:
    """The largest relative difference to the exact reference that rounding explains, for a model
    run in ``precision`` under ``settings`` (TF32 counts for fp32) whose version as built, run the
    same way, differs from the reference by ``as_built``: ``AS_BUILT_FACTOR * as_built``, at least
    the precision's floor (:data:`ROUNDING_FLOORS`). A non-finite difference is never within it."""
    tf32 = precision == 'fp32' and bool(settings and settings.get('applies') and settings.get('tf32'))
    return max(ROUNDING_FLOORS['tf32' if tf32 else precision], AS_BUILT_FACTOR * as_built)


def within(difference: float, bound: float) -> bool:
    """Whether ``difference`` is finite and at most ``bound``."""
    return math.isfinite(difference) and difference <= bound


@contextlib.contextmanager
def tf32_off() -> Iterator[None]:
    """TF32 off for matmuls and convolutions inside (true fp32 on a GPU); restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _to_float(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().float().clone()
    return type(x)(_to_float(v) for v in x)


def reference_outputs(model: nn.Module, run: Callable[[nn.Module], Any], device: torch.device) -> Any:
    """``run(model)`` in the most exact setting at hand, as float32 tensors: float32 with TF32 off on
    a GPU; on the CPU in float64, on a float64 copy of ``model`` (``run`` must cast its input to the
    model's dtype, e.g. ``x.to(next(m.parameters()).dtype)``)."""
    with torch.no_grad():
        if device.type == 'cuda':
            with tf32_off():
                return _to_float(run(model))
        return _to_float(run(copy.deepcopy(model).double()))


def relative_difference(out: Any, ref: Any) -> float:
    """The largest ``||out - ref|| / ||ref||`` over the output maps (``inf`` for a non-finite output)."""
    if isinstance(out, torch.Tensor):
        o, r = out.detach().double(), ref.detach().double()
        if not torch.isfinite(o).all():
            return float('inf')
        norm = float(r.norm())
        return float((o - r).norm()) / norm if norm > 0 else float((o - r).norm())
    return max((relative_difference(a, b) for a, b in zip(out, ref)), default=0.0)


__all__ = ['PRECISIONS', 'DTYPES', 'ROUNDING_FLOORS', 'AS_BUILT_FACTOR', 'within', 'tf32_off', 'check_precision', 'usable_precisions', 'autocast',
           'apply_numeric_settings', 'describe_numeric_settings', 'precision_label', 'tolerance',
           'reference_outputs', 'relative_difference']
