"""Width transfer, calibrated: BatchNorm re-estimation on images and feature drift from the source."""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np
import torch

from ..channels import tap_specs
from ..images import IMAGE_EXTENSIONS, imagenet_input, load_image_folder
from ..norms import calibrate_batchnorm
from .width_apply import WidthTransfer
from .width_plan import TransferPlan, WidthTransferError

#: Feature points compared by :func:`feature_drift`: C2, C3, C4, C5 and the final conv.
DRIFT_TAPS = (1, 2, 3, 5, 6)


def preprocess_image(image_bgr: np.ndarray, size: int = 224) -> torch.Tensor:
    """A uint8 BGR image to a ``(3, size, size)`` ImageNet-normalised RGB tensor, cropped as the
    ImageNet evaluation protocol does (:func:`~rexnet_mmdet.models.images.imagenet_input`), under
    which the source's BatchNorm statistics were estimated."""
    return imagenet_input(image_bgr, size, crop=True)


def load_images(folder: str, num_images: int = 64, size: int = 224) -> torch.Tensor:
    """The first ``num_images`` readable images of ``folder`` (sorted by name), as an ``(N, 3, size, size)``
    batch, cropped as :func:`preprocess_image` does."""
    if not osp.isdir(folder):
        raise WidthTransferError(f'calibration image folder not found: {folder!r}; give a folder of images '
                                 f'(e.g. data/coco/train2017)')
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    images = load_image_folder(folder, size, limit=num_images, crop=True, skip_unreadable=True)
    if not len(images):
        raise WidthTransferError(f'no readable image ({", ".join(IMAGE_EXTENSIONS)}) in {folder!r}')
    return images


def _batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    return images.split(batch_size)


@torch.no_grad()
def feature_drift(source: torch.nn.Module, target: torch.nn.Module, plan: TransferPlan, images: torch.Tensor,
                  taps: Sequence[int], batch_size: int = 16) -> Dict[str, float]:
    """Relative L2 distance, per feature point, between ``target``'s features and the source's,
    each target channel compared with its source channel: ``||t - s[:, g]|| / ||s[:, g]||``.

    ``source`` and ``target`` are backbones returning ``taps`` (their ``out_indices``), in eval mode.
    """
    source.eval()
    target.eval()
    names = [spec.name for spec in tap_specs(plan.dst_width)]
    num = torch.zeros(len(taps), dtype=torch.float64)
    den = torch.zeros(len(taps), dtype=torch.float64)
    for batch in _batches(images, batch_size):
        for k, (s, t, tap) in enumerate(zip(source(batch), target(batch), taps)):
            s = s.index_select(1, plan.tap_index(tap))
            num[k] += float((t.double() - s.double()).pow(2).sum())
            den[k] += float(s.double().pow(2).sum())
    return {names[tap]: float((n / d.clamp_min(1e-30)).sqrt()) for tap, n, d in zip(taps, num, den)}


def _build_backbone(widen_factor: float, out_indices: Sequence[int]) -> torch.nn.Module:
    # Through the registry: rexnet.py imports this module, so it is not imported here.
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='ReXNet', widen_factor=widen_factor, out_indices=tuple(out_indices),
                              init_cfg=None))
    return model.eval()


def _available_taps(state_dict: Dict[str, torch.Tensor]) -> Tuple[int, ...]:
    if 'final_conv.conv.weight' in state_dict:
        return DRIFT_TAPS
    last = max((int(k.split('.')[1]) for k in state_dict if k.startswith('blocks.') and '.conv_pwl.' in k),
               default=-1)
    return tuple(t for t in DRIFT_TAPS if t != 6 and tap_specs(1.0)[t].block <= last)


@dataclass
class Calibration:
    """Feature drift of a narrowed model before and after BatchNorm re-estimation."""
    num_images: int
    norms: int
    before: Dict[str, float]
    after: Dict[str, float]


def calibrate_transfer(result: WidthTransfer, images: torch.Tensor, source_state: Dict[str, torch.Tensor],
                       batch_size: int = 16) -> Calibration:
    """Re-estimate, on ``images``, the BatchNorm statistics the transfer changed (in ``result``,
    in place) and measure the feature drift from the source before and after."""
    taps = _available_taps(source_state)
    if not taps:
        raise WidthTransferError('the source weights stop before C2: nothing to compare')
    source = _build_backbone(result.plan.src_width, taps)
    source.load_state_dict(source_state, strict=False)
    target = _build_backbone(result.plan.dst_width, taps)
    target.load_state_dict(result.state_dict, strict=False)
    before = feature_drift(source, target, result.plan, images, taps, batch_size)
    norms = result.plan.changed_norms()
    count = calibrate_batchnorm(target, images, norms, batch_size)
    after = feature_drift(source, target, result.plan, images, taps, batch_size)
    fitted = target.state_dict()
    for key in result.state_dict:
        if key in fitted and key.rpartition('.')[0] in norms:
            result.state_dict[key] = fitted[key].clone()
    return Calibration(int(images.shape[0]), count, before, after)


__all__ = ['Calibration', 'preprocess_image', 'load_images', 'calibrate_batchnorm', 'feature_drift',
           'calibrate_transfer']
