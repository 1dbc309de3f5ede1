"""The one call of ``torch.onnx.export`` for every export here, the same on every supported torch.

Every graph is exported by the TorchScript-based exporter. torch 2.5 added ``dynamo=`` to
``torch.onnx.export`` (and later releases move its default towards the dynamo exporter, which needs
``onnxscript``), so ``dynamo=False`` is passed where the installed torch takes it; torch 2.1 to 2.4 have
no such argument and export with the TorchScript exporter anyway.
"""
import inspect

import torch

from .backends import ONNX_OPSET

_TAKES_DYNAMO = 'dynamo' in inspect.signature(torch.onnx.export).parameters


def export_onnx(model: torch.nn.Module, args: tuple, path: str, opset_version: int = ONNX_OPSET, **kwargs) -> None:
    """``torch.onnx.export(model, args, path, ...)`` with the TorchScript exporter and constant folding."""
    if _TAKES_DYNAMO:
        kwargs['dynamo'] = False
    kwargs.setdefault('do_constant_folding', True)
    torch.onnx.export(model, args, path, opset_version=opset_version, **kwargs)


__all__ = ['export_onnx']
