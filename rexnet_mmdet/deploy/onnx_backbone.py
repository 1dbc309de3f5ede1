"""ONNX export of the ReXNet backbone, with an ONNX Runtime parity check and timing.

The backbone is exported in eval mode after :func:`~rexnet_mmdet.deploy.optimize_for_inference`
(BatchNorm fused into the convolutions), by the TorchScript-based exporter of
``torch.onnx.export`` (:mod:`.torch_onnx`: the dynamo exporter needs ``onnxscript``). During export
the blocks' partial residual is written out of place (``torch.cat``), which ONNX can express.

Outputs are named after the taps (``C2``, ``C3``, ``C4``, ``C5``, ``exp16``, ``final_conv``,
``block0``); the input is ``input``, ``(N, 3, H, W)``, normalised as for training.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..utils.build import build_backbone
from .backends import ONNX_OPSET
from .fuse import optimize_for_inference
from .runtime_backbone import export_any_backbone
from .runtimes import ort_session  # noqa: F401  (part of this module's API: the tool times with it)


def _check_onnx_stack() -> None:
    missing = []
    for name in ('onnx', 'onnxruntime'):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f'ONNX export needs {" and ".join(missing)}: pip install {" ".join(missing)} '
                          f'(scripts/setup.sh installs them)')


def build_backbone_for_export(widen_factor: float = 1.0, out_indices: Sequence[int] = (1, 2, 3, 5),
                              checkpoint: Optional[str] = None,
                              block_channels: Optional[Sequence[int]] = None,
                              optimize: bool = True, seed: int = 0, calibration_size: int = 224,
                              arch: str = 'v1', channel_divisor: Optional[int] = None) -> nn.Module:
    """A ReXNet backbone (any family: ``arch``, ``channel_divisor`` as in ``ReXNet``) in eval mode, with
    BatchNorm fused into the convs when ``optimize``.

    Weights: ``checkpoint`` (any format :func:`rexnet_mmdet.models.weights.load_backbone_weights`
    reads), else random ones with BatchNorm statistics set on random images of
    ``calibration_size`` (so that outputs have a trained network's scale and a parity check
    means something). Channels-last is left
    off: ONNX has no memory layout, ONNX Runtime picks its own.
    """
    cfg = dict(type='ReXNet', widen_factor=widen_factor, arch=arch, channel_divisor=channel_divisor,
               out_indices=tuple(out_indices),
               block_channels=None if block_channels is None else list(block_channels), init_cfg=None)
    model = build_backbone(cfg, seed=seed, checkpoint=checkpoint, calibration_size=calibration_size)
    if optimize:
        optimize_for_inference(model, channels_last=False)
    return model


def output_names(model: nn.Module) -> List[str]:
    """The taps' names of a ReXNet (``['C2', 'C3', 'C4', 'C5']`` for out_indices 1, 2, 3, 5)."""
    return [spec.name for spec in model.output_shape()]


def export_backbone(model: nn.Module, path: str, input_size: Tuple[int, int] = (224, 224), batch: int = 1,
                    dynamic: bool = True, opset: int = ONNX_OPSET) -> str:
    """Write ``model`` (a ReXNet in eval mode) to ``path`` as ONNX.

    Args:
        input_size: ``(H, W)`` of the example input the graph is traced with.
        dynamic: batch, height and width as dynamic axes (else the graph fixes them).
        opset: ONNX opset (default :data:`~rexnet_mmdet.deploy.backends.ONNX_OPSET`; 13 or more is needed).
    """
    _check_onnx_stack()
    if opset < 13:
        raise ValueError(f'opset {opset} is too old: use 13 or more (default {ONNX_OPSET})')
    export_any_backbone(model, path, input_size, opset, batch, dynamic, names=output_names(model))
    import onnx
    onnx.checker.check_model(onnx.load(path))
    return path


def run_session(session, x: torch.Tensor) -> List[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: x.detach().cpu().numpy()})


def parity(model: nn.Module, session, x: torch.Tensor) -> Dict[str, float]:
    """Max absolute difference between PyTorch's and ONNX Runtime's output, per output name."""
    with torch.no_grad():
        expected = model(x)
    got = run_session(session, x)
    names = [o.name for o in session.get_outputs()]
    if len(got) != len(expected):
        raise AssertionError(f'ONNX model returns {len(got)} outputs, PyTorch {len(expected)}')
    diffs = {}
    for name, e, g in zip(names, expected, got):
        if tuple(e.shape) != tuple(g.shape):
            raise AssertionError(f'output {name}: ONNX shape {tuple(g.shape)} != PyTorch {tuple(e.shape)}')
        diffs[name] = float(np.abs(e.float().cpu().numpy() - g).max())
    return diffs


def float32_error(model: nn.Module, x: torch.Tensor) -> float:
    """Max absolute difference between ``model``'s float32 outputs and its float64 ones: the
    rounding error PyTorch itself makes, against which an exported model's difference is judged."""
    with torch.no_grad():
        single = model(x)
        double = copy.deepcopy(model).double()(x.double())
    return max(float((a.double() - b).abs().max()) for a, b in zip(single, double))


#: How :func:`rexnet_mmdet.utils.timing.time_interleaved` compares runtimes: turns of ``block``
#: consecutive calls, with a ``pause`` before each so that one runtime's spinning worker threads
#: (ONNX Runtime's and PyTorch's OpenMP pools both spin after work) do not slow the next.
RUNTIME_TIMING = dict(block=10, pause=0.3)


__all__ = ['build_backbone_for_export', 'output_names', 'export_backbone', 'ort_session',
           'run_session', 'parity', 'float32_error', 'RUNTIME_TIMING']
