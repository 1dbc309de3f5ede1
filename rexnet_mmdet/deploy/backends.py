"""The deploy layer's names, each in one place: where a model runs (its backend), the precisions it
computes in and the ONNX opset every export writes. Pure Python, so that the runtimes need neither
PyTorch nor MMDetection."""

#: Runtimes an exported ONNX graph runs in (CPU).
RUNTIMES = ('onnxruntime', 'openvino')
#: Where a detector's backbone runs on the inference path: PyTorch, or exported to one of RUNTIMES.
BACKENDS = ('torch',) + RUNTIMES
#: Compute precisions, as MMEngine and MMDeploy spell them: PyTorch runs all three (fp16 on CUDA only),
#: the runtimes fp32 and, in OpenVINO, bf16.
PRECISIONS = ('fp32', 'fp16', 'bf16')
#: The ONNX opset of every export (the SSDLite graph's NMS needs 11 or more, the backbone export 13).
ONNX_OPSET = 17


def check_backend(name: str, allowed=BACKENDS) -> str:
    """``name`` if it is one of ``allowed``, else a ``ValueError`` naming the allowed ones."""
    if name not in allowed:
        raise ValueError(f'backend must be one of {", ".join(allowed)}, got {name!r}')
    return name


__all__ = ['RUNTIMES', 'BACKENDS', 'PRECISIONS', 'ONNX_OPSET', 'check_backend']
