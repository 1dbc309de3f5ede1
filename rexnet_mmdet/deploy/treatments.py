"""One inference treatment for every model, so that speed comparisons are like for like.

``optimize_for_inference`` gives a ReXNet backbone two standard CPU inference steps: BatchNorm
fused into the conv before it, and channels-last (NHWC) layout. Nothing in them is specific to
ReXNet, so a fair race gives any other backbone (ResNet-50, MobileNetV2, EfficientNet-B0) the
same: :func:`fused` does it with the same :func:`~rexnet_mmdet.deploy.fuse.fuse_batchnorm`.

``TREATMENTS`` names the columns the benchmarks print: ``'eager'`` (the model as built, eval
mode), ``'fused+cl'`` (BatchNorm fused, channels-last backbone) and the runtime levers
``'fused+onnxruntime'`` / ``'fused+openvino'`` (BatchNorm fused, the backbone exported to ONNX and
run by that runtime), each given to every model alike. In a detector (:func:`treat_detector`),
every treatment but ``'eager'`` also batches the RoI Align layers, as ``optimize_for_inference``
does: the part of the inference path that is not the backbone's is then the same for all.

The GPU levers ``'fused+cl+cudagraph'`` and ``'fused+cl+compile'`` (:mod:`.graphs`) add to
``'fused+cl'`` a CUDA graph replay, or ``torch.compile(mode='reduce-overhead')``, of the backbone
and, in a detector, of backbone and neck together; :func:`treatment_unavailable` says where they
cannot run (off CUDA).
"""
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn

from ..models.rexnet import ReXNet
from .fuse import contiguous_roi_features, fuse_batchnorm, optimize_for_inference
from .graphs import LEVERS, graph_backbone, graph_features, lever_unavailable
from .roi_align import fast_roi_align
from .runtime_backbone import runtime_backbone


def _to_channels_last(module: nn.Module, args):
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last),) + tuple(args[1:])
    return None


def fused(module: nn.Module, channels_last: bool = True) -> nn.Module:
    """The ``'fused+cl'`` treatment (``channels_last=False``: the first step of the runtime ones), in
    place: ``module`` (a backbone) in eval mode with its BatchNorms fused into its convs
    (:func:`~rexnet_mmdet.deploy.fuse.fuse_batchnorm`) and, with ``channels_last``, its weights
    stored channels-last and a forward pre-hook that makes its input channels-last. A ReXNet goes
    through ``optimize_for_inference``, whose inference mode makes its input channels-last itself.
    """
    if any(isinstance(m, ReXNet) for m in module.modules()):
        return optimize_for_inference(module, channels_last=channels_last)
    module.eval()
    fuse_batchnorm(module)
    if channels_last:
        module.to(memory_format=torch.channels_last)
        module.register_forward_pre_hook(_to_channels_last)
    return module


def in_runtime(backend: str) -> Callable[[nn.Module], nn.Module]:
    """A treatment: BatchNorm fused, then the backbone exported to ONNX and run by ``backend``
    (``'onnxruntime'`` or ``'openvino'``; see ``runtime_backbone.RuntimeBackbone``), its outputs
    handed on channels-last as a ``'fused+cl'`` backbone's are."""
    def treat(module: nn.Module) -> nn.Module:
        return runtime_backbone(fused(module, channels_last=False), backend, channels_last=True)
    return treat


def with_lever(lever: str) -> Callable[[nn.Module], nn.Module]:
    """A treatment: ``'fused+cl'``, then the backbone run through ``lever`` (see :mod:`.graphs`)."""
    def treat(module: nn.Module) -> nn.Module:
        return graph_backbone(fused(module), lever)
    return treat


def lever_of(treatment: str) -> Optional[str]:
    """The launch-overhead lever of ``treatment`` (``'cudagraph'``, ``'compile'``), or ``None``."""
    lever = treatment.rpartition('+')[2]
    return lever if lever in LEVERS else None


def treatment_unavailable(treatment: str, device: torch.device) -> Optional[str]:
    """Why ``treatment`` cannot run on ``device`` (``None`` when it can)."""
    if treatment not in TREATMENTS:
        raise ValueError(f'unknown treatment {treatment!r}; choose from {", ".join(TREATMENTS)}')
    lever = lever_of(treatment)
    return lever_unavailable(lever, device) if lever else None


def treat_backbone(backbone: nn.Module, treatment: str) -> nn.Module:
    """The backbone to run after ``treatment`` (a key of :data:`TREATMENTS`): ``backbone`` itself,
    changed in place, or a module that replaces it (a runtime-backed backbone)."""
    if treatment not in TREATMENTS:
        raise ValueError(f'unknown treatment {treatment!r}; choose from {", ".join(TREATMENTS)}')
    return TREATMENTS[treatment](backbone)


def batches_roi_align(treatment: str) -> bool:
    """Whether :func:`treat_detector` batches a detector's RoI Align layers under ``treatment``."""
    return treatment != 'eager'


def treat_detector(detector: nn.Module, treatment: str) -> nn.Module:
    """Apply ``treatment`` to ``detector``, in place, as ``optimize_for_inference`` treats a ReXNet
    detector: the backbone as :func:`treat_backbone` says and, for every treatment but ``'eager'``,
    the RoI Align layers batched (:func:`~rexnet_mmdet.deploy.roi_align.fast_roi_align`). The neck
    and heads are otherwise as built. Returns the detector in eval mode.
    """
    detector.eval()
    lever = lever_of(treatment)
    if lever:  # backbone and neck through the lever together: one graph, not two
        reason = treatment_unavailable(treatment, next(detector.parameters()).device)
        if reason:
            raise ValueError(reason)
        detector.backbone = fused(detector.backbone)
    else:
        detector.backbone = treat_backbone(detector.backbone, treatment)
    if batches_roi_align(treatment):
        fast_roi_align(detector)
    contiguous_roi_features(detector)  # channels-last maps would reach mmcv's RoI layers otherwise
    if lever:
        graph_features(detector, lever)
    return detector


def _eager(module: nn.Module) -> nn.Module:
    module.eval()
    return module


#: Name -> function (in place, returns the module) of the treatments the benchmarks compare.
TREATMENTS: Dict[str, Callable[[nn.Module], nn.Module]] = {
    'eager': _eager,
    'fused+cl': fused,
    'fused+onnxruntime': in_runtime('onnxruntime'),
    'fused+openvino': in_runtime('openvino'),
    'fused+cl+cudagraph': with_lever('cudagraph'),
    'fused+cl+compile': with_lever('compile'),
}

#: How the tables describe each treatment.
TREATMENT_LABELS: Dict[str, str] = {
    'eager': 'eager (as built)',
    'fused+cl': 'fused BN + channels-last',
    'fused+onnxruntime': 'fused BN, backbone in ONNX Runtime, channels-last outputs',
    'fused+openvino': 'fused BN, backbone in OpenVINO, channels-last outputs',
    'fused+cl+cudagraph': f'fused BN + channels-last, {LEVERS["cudagraph"]} (detectors: backbone + neck)',
    'fused+cl+compile': f'fused BN + channels-last, {LEVERS["compile"]} (detectors: backbone + neck)',
}
