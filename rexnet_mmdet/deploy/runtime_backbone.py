"""Run a detector's backbone in ONNX Runtime or OpenVINO, the rest of the detector in PyTorch.

The backbone (BatchNorm folded) is exported to ONNX once with dynamic batch, height and width,
and loaded into the runtime; :class:`RuntimeBackbone` takes its place in the detector and returns
torch tensors, so the neck, heads and post-processing run as before. Inference only (no autograd).
"""
import os
import os.path as osp
import tempfile
import warnings
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

BACKENDS = ('onnxruntime', 'openvino')


def export_any_backbone(backbone: nn.Module, path: str, example_hw: Tuple[int, int] = (256, 320),
                        opset: int = 17) -> Tuple[str, List[str]]:
    """Export ``backbone`` (eval mode, returning a tuple of feature maps) to ONNX at ``path`` with
    dynamic batch, height and width. Returns the path and the output names (``out0``, ``out1`` ...)."""
    if backbone.training:
        raise ValueError('export the backbone in eval mode (call .eval() first)')
    device = next(backbone.parameters()).device
    x = torch.randn(1, 3, *example_hw, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        outs = backbone(x)
    names = [f'out{i}' for i in range(len(outs))]
    axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
    axes.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} for n in names})
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    # The input checks in forward() are traced as constants, as intended: no warning for them.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(backbone, (x,), path, input_names=['input'], output_names=names, dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    return path, names


class RuntimeBackbone(nn.Module):
    """A backbone exported to ONNX and run by ONNX Runtime or OpenVINO (CPU).

    Args:
        onnx_path: the exported backbone (see :func:`export_any_backbone`).
        backend: ``'onnxruntime'`` or ``'openvino'``.
        threads: intra-op threads (default: ``torch.get_num_threads()``, so that both halves of
            the detector use the same number of cores).
    """

    def __init__(self, onnx_path: str, backend: str = 'openvino', threads: Optional[int] = None):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
        self.backend = backend
        self.onnx_path = onnx_path
        threads = int(threads or torch.get_num_threads())
        if backend == 'onnxruntime':
            try:
                import onnxruntime as ort
            except ImportError as e:
                raise ImportError('backend="onnxruntime" needs onnxruntime: pip install onnxruntime') from e
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Worker threads that spin after each call would steal the cores PyTorch's neck and heads need next.
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
            self._session = ort.InferenceSession(onnx_path, options, providers=['CPUExecutionProvider'])
            self._input = self._session.get_inputs()[0].name
        else:
            try:
                import openvino as ov
            except ImportError as e:
                raise ImportError('backend="openvino" needs openvino: pip install openvino') from e
            core = ov.Core()
            config = {'INFERENCE_NUM_THREADS': threads, 'PERFORMANCE_HINT': 'LATENCY',
                      # float32 throughout: the outputs must match PyTorch's within float rounding.
                      'INFERENCE_PRECISION_HINT': 'f32'}
            self._compiled = core.compile_model(core.read_model(onnx_path), 'CPU', config)
            self._request = self._compiled.create_infer_request()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        if self.backend == 'onnxruntime':
            outs = self._session.run(None, {self._input: array})
        else:
            result = self._request.infer({0: array})
            outs = [result[o] for o in self._compiled.outputs]
        # Copies: OpenVINO reuses its output buffers on the next call.
        return tuple(torch.from_numpy(np.array(o, copy=True)) for o in outs)

    def train(self, mode: bool = True) -> 'RuntimeBackbone':
        if mode:
            raise RuntimeError(f'this backbone runs in {self.backend} for inference only and cannot be trained; '
                               f'build a new model to train')
        return super().train(False)


def runtime_backbone(backbone: nn.Module, backend: str = 'openvino', onnx_path: Optional[str] = None,
                     threads: Optional[int] = None) -> RuntimeBackbone:
    """``backbone`` (eval mode, already prepared, e.g. BatchNorm folded) exported to ONNX and
    loaded into ``backend``: the module to put in its place.

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
        return RuntimeBackbone(onnx_path, backend, threads)
    finally:
        if not keep and osp.exists(onnx_path):
            os.remove(onnx_path)


__all__ = ['BACKENDS', 'export_any_backbone', 'RuntimeBackbone', 'runtime_backbone']
