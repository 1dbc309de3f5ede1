"""The deploy layer's names, each in one place: where a model runs (its backend) and the ONNX opset
every export writes. Pure Python, so that the runtimes need neither PyTorch nor MMDetection."""

#: Runtimes an exported ONNX graph runs in (CPU).
RUNTIMES = ('onnxruntime', 'openvino')
#: Where a detector's backbone runs on the inference path: PyTorch, or exported to one of RUNTIMES.
BACKENDS = ('torch',) + RUNTIMES
#: Earlier spellings still accepted, and what they stand for.
ALIASES = {'ort': 'onnxruntime'}
#: The ONNX opset of every export (the SSDLite graph's NMS needs 11 or more, the backbone export 13).
ONNX_OPSET = 17


def canonical_backend(name: str) -> str:
    """``name`` in the project's words (``'ort'`` -> ``'onnxruntime'``); other names unchanged.
    Usable as an argparse ``type``, so that ``choices`` shows only the canonical names."""
    return ALIASES.get(name, name)


def check_backend(name: str, allowed=BACKENDS) -> str:
    """The canonical name of ``name``, or a ``ValueError`` naming the allowed ones."""
    canonical = canonical_backend(name)
    if canonical not in allowed:
        raise ValueError(f'backend must be one of {", ".join(allowed)}, got {name!r}')
    return canonical


__all__ = ['RUNTIMES', 'BACKENDS', 'ALIASES', 'ONNX_OPSET', 'canonical_backend', 'check_backend']
