"""Run a detector's backbone in ONNX Runtime or OpenVINO, the rest of the detector in PyTorch.

The backbone (BatchNorm fused) is exported to ONNX once with dynamic batch, height and width,
and loaded into the runtime; :class:`RuntimeBackbone` takes its place in the detector and returns
torch tensors, so the neck, heads and post-processing run as before. Inference only (no autograd).
"""
import os
import os.path as osp
import tempfile
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .backends import ONNX_OPSET, RUNTIMES, check_backend
from .runtimes import openvino_model, ort_session
from .torch_onnx import export_onnx


def export_any_backbone(backbone: nn.Module, path: str, example_hw: Tuple[int, int] = (256, 320),
                        opset: int = ONNX_OPSET, batch: int = 1, dynamic: bool = True,
                        names: Optional[Sequence[str]] = None) -> Tuple[str, List[str]]:
    """Export ``backbone`` (eval mode, returning a tuple of feature maps) to ONNX at ``path``: the one
    place this project traces a backbone to ONNX.

    Args:
        example_hw: ``(H, W)`` of the example input the graph is traced with (``batch`` images).
        dynamic: batch, height and width as dynamic axes (else the graph fixes them).
        names: the outputs' names (default ``out0``, ``out1`` ...).

    Returns the path and the output names.
    """
    if backbone.training:
        raise ValueError('export the backbone in eval mode (call .eval() first): BatchNorm must use its '
                         'running statistics')
    device = next(backbone.parameters()).device
    x = torch.randn(batch, 3, *example_hw, generator=torch.Generator().manual_seed(0)).to(device)
    if names is None:
        with torch.no_grad():
            names = [f'out{i}' for i in range(len(backbone(x)))]
    names = list(names)
    axes = None
    if dynamic:
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        axes.update({n: {0: 'batch', 2: f'{n}_height', 3: f'{n}_width'} for n in names})
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    # The input checks in forward() are traced as constants, as intended: no warning for them.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        export_onnx(backbone, (x,), path, opset_version=opset, input_names=['input'], output_names=names,
                    dynamic_axes=axes)
    return path, names


class RuntimeBackbone(nn.Module):
    """A backbone exported to ONNX and run by ONNX Runtime or OpenVINO (CPU).

    Args:
        onnx_path: the exported backbone (see :func:`export_any_backbone`).
        backend: ``'onnxruntime'`` or ``'openvino'`` (:data:`~rexnet_mmdet.deploy.backends.RUNTIMES`).
        threads: intra-op threads (default: ``torch.get_num_threads()``, so that both halves of
            the detector use the same number of cores).
        channels_last: return the feature maps channels-last (NHWC memory), as a channels-last
            PyTorch backbone does: the neck's convolutions run faster on them on a CPU. ``False``
            returns them as the runtime gives them (NCHW).
    """

    def __init__(self, onnx_path: str, backend: str = 'openvino', threads: Optional[int] = None,
                 channels_last: bool = True):
        super().__init__()
        self.channels_last = bool(channels_last)
        backend = check_backend(backend, RUNTIMES)
        self.backend = backend
        self.onnx_path = onnx_path
        threads = int(threads or torch.get_num_threads())
        if backend == 'onnxruntime':
            # Worker threads that spin after each call would steal the cores PyTorch's neck and heads need next.
            self._session = ort_session(onnx_path, threads, spinning=False)
            self._input = self._session.get_inputs()[0].name
        else:
            # float32 throughout: the outputs must match PyTorch's within float rounding.
            self._compiled = openvino_model(onnx_path, threads)
            self._request = self._compiled.create_infer_request()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        if self.backend == 'onnxruntime':
            outs = self._session.run(None, {self._input: array})
        else:
            result = self._request.infer({0: array})
            outs = [result[o] for o in self._compiled.outputs]
        # Always copies (OpenVINO reuses its output buffers on the next call), into the layout asked for.
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        feats = []
        for o in outs:
            t = torch.from_numpy(np.asarray(o))
            feats.append(torch.empty_like(t, memory_format=layout if t.dim() == 4 else torch.contiguous_format)
                         .copy_(t))
        return tuple(feats)

    def train(self, mode: bool = True) -> 'RuntimeBackbone':
        if mode:
            raise RuntimeError(f'this backbone runs in {self.backend} for inference only and cannot be trained; '
                               f'build a new model to train')
        return super().train(False)


def runtime_backbone(backbone: nn.Module, backend: str = 'openvino', onnx_path: Optional[str] = None,
                     threads: Optional[int] = None, channels_last: bool = True) -> RuntimeBackbone:
    """``backbone`` (eval mode, already prepared, e.g. BatchNorm fused) exported to ONNX and
    loaded into ``backend``: the module to put in its place (``threads`` and ``channels_last``:
    see :class:`RuntimeBackbone`).

    ``onnx_path``: where to keep the exported backbone (default: a temporary file, removed once
    the runtime has loaded it).
    """
    backbone.eval()
    keep = onnx_path is not None
    if onnx_path is None:
        handle, onnx_path = tempfile.mkstemp(suffix='.onnx')
        os.close(handle)
    try:
        export_any_backbone(backbone, onnx_path)
        return RuntimeBackbone(onnx_path, backend, threads, channels_last=channels_last)
    finally:
        if not keep and osp.exists(onnx_path):
            os.remove(onnx_path)


__all__ = ['export_any_backbone', 'RuntimeBackbone', 'runtime_backbone']
