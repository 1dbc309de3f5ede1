"""Launch-overhead levers for a GPU: a module's forward replayed from a CUDA graph, or compiled by
``torch.compile(mode='reduce-overhead')`` (which also replays CUDA graphs).

At batch 1 a detector's backbone and neck are hundreds of small kernels: on a fast GPU the time
goes to launching them from Python, not to the arithmetic. A CUDA graph records the launches once
and replays them in one call. It holds only for the input shape, dtype and autocast state it was
captured at: a detector's data preprocessor pads every image of a batch to a multiple of 32, so
the shape is fixed per batch size and input size, and :class:`GraphedModule` keeps one graph per
such key (up to ``max_graphs``), running the module as built for any other.

Both levers need CUDA; :func:`lever_unavailable` says why one cannot run elsewhere.
"""
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from .mixed_precision import autocast_state

#: Lever name -> what it does, as the tables describe it.
LEVERS: Dict[str, str] = {
    'cudagraph': 'CUDA graph per padded shape',
    'compile': "torch.compile(mode='reduce-overhead')",
}


def lever_unavailable(lever: str, device: torch.device) -> Optional[str]:
    """Why ``lever`` cannot run on ``device`` (``None`` when it can)."""
    if lever not in LEVERS:
        raise ValueError(f'unknown lever {lever!r}; choose from {", ".join(LEVERS)}')
    if device.type != 'cuda':
        return f'{lever} ({LEVERS[lever]}) replays CUDA graphs and needs a CUDA device; skipped on {device.type}'
    return None


def _flatten(out: Any) -> Tuple[torch.Tensor, ...]:
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


class GraphedModule(nn.Module):
    """``module``'s forward (one tensor in, a tensor or a tuple/list of tensors out), replayed from
    a CUDA graph captured at the first call with each new input key (shape, dtype, layout, autocast
    state), after ``warmup`` eager calls on a side stream (which also runs cuDNN's autotuning,
    when on, outside the graph).

    The outputs are the graph's static buffers: the next replay overwrites them, so a caller that
    keeps them across calls must clone them. Beyond ``max_graphs`` keys the module runs as built
    (with one warning), so changing shapes never capture without bound.
    """

    def __init__(self, module: nn.Module, max_graphs: int = 4, warmup: int = 3):
        super().__init__()
        self.module = module
        self.max_graphs = max_graphs
        self.warmup = warmup
        self._graphs: Dict[tuple, Tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self._warned = False

    @staticmethod
    def _key(x: torch.Tensor) -> tuple:
        return (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last), x.device,
                *autocast_state('cuda'), torch.is_grad_enabled())

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def _capture(self, x: torch.Tensor) -> Tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        static_in = x.clone()
        stream = torch.cuda.Stream(x.device)
        stream.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.module(static_in)
        torch.cuda.current_stream(x.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return graph, static_in, static_out

    def forward(self, x: torch.Tensor) -> Any:
        if x.device.type != 'cuda' or torch.is_grad_enabled():
            return self.module(x)
        key = self._key(x)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                if not self._warned:
                    warnings.warn(f'{type(self.module).__name__}: more than {self.max_graphs} input shapes; '
                                  f'shapes beyond them run without a CUDA graph')
                    self._warned = True
                return self.module(x)
            entry = self._graphs[key] = self._capture(x)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out


class _Features(nn.Module):
    """A detector's backbone and neck as one module (what ``extract_feat`` runs)."""

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module]):
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, x: torch.Tensor) -> Any:
        feats = self.backbone(x)
        return tuple(self.neck(feats)) if self.neck is not None else tuple(feats)


def _lever_module(module: nn.Module, lever: str) -> Callable[[torch.Tensor], Any]:
    if lever == 'cudagraph':
        return GraphedModule(module)
    if lever == 'compile':
        return torch.compile(module, mode='reduce-overhead', dynamic=False)
    raise ValueError(f'unknown lever {lever!r}; choose from {", ".join(LEVERS)}')


def graph_backbone(backbone: nn.Module, lever: str) -> nn.Module:
    """``backbone`` run through ``lever`` (a key of :data:`LEVERS`); checks that CUDA is there."""
    reason = lever_unavailable(lever, next(backbone.parameters()).device)
    if reason:
        raise ValueError(reason)
    wrapped = _lever_module(backbone, lever)
    return wrapped if isinstance(wrapped, nn.Module) else _Call(wrapped, backbone)


class _Call(nn.Module):
    """A compiled callable as a module (keeps the original's parameters reachable)."""

    def __init__(self, fn: Callable, module: nn.Module):
        super().__init__()
        self.fn = fn
        self.module = module

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)


def graph_features(detector: nn.Module, lever: str) -> nn.Module:
    """Run ``detector``'s backbone and neck (``extract_feat``) through ``lever``, in place.

    The detector's ``extract_feat`` becomes the lever's call of backbone + neck; ``detector.backbone``
    and ``detector.neck`` stay what they were (the eager path of the lever's fallback). The
    attribute ``features_lever`` names the lever, so that a stage timer knows backbone and neck
    now run as one.
    """
    reason = lever_unavailable(lever, next(detector.parameters()).device)
    if reason:
        raise ValueError(reason)
    run = _lever_module(_Features(detector.backbone, getattr(detector, 'neck', None)), lever)
    # In the instance's __dict__ (not as a submodule), so that it shadows the class's method.
    object.__setattr__(detector, 'extract_feat', run)
    detector.features_lever = lever
    return detector


__all__ = ['LEVERS', 'lever_unavailable', 'GraphedModule', 'graph_backbone', 'graph_features']
