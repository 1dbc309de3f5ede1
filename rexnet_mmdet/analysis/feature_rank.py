"""The rank of a backbone's features over a set of images (paper §6, Figure 5): singular values and
nuclear norm of the globally pooled final features, for trained checkpoints or architectures.

Backbones are named on the command line as ``[LABEL=]rexnet:WIDTH[:CHECKPOINT]``,
``[LABEL=]rexnet-stagewise:WIDTH[:CHECKPOINT]`` or ``[LABEL=]CONFIG.py[:CHECKPOINT]``
(:func:`parse_backbone_spec`, :func:`parse_config_spec`).
"""
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..models.images import IMAGE_EXTENSIONS, imagenet_batch, load_image_folder
from ..models.width_names import width_tag
from ..utils.build import build_backbone, load_config
from .channel_configs import stagewise_block_channels


@dataclass
class FeatureRank:
    """Rank statistics of a feature matrix ``[num_images, channels]``.

    Attributes:
        singular_values: descending singular values.
        nuclear_norm: sum of the singular values (the paper's rank measure).
        normalized_nuclear_norm: ``nuclear_norm / sigma_max``, independent of the
            features' scale: between 1 (rank 1) and ``min(num_images, channels)``.
        rank: numerical rank (``torch.linalg.matrix_rank`` rule).
        shape: shape of the feature matrix.
    """
    singular_values: Tensor
    nuclear_norm: float
    normalized_nuclear_norm: float
    rank: int
    shape: Tuple[int, int]


def feature_rank(features: Tensor, center: bool = True) -> FeatureRank:
    """Singular values, nuclear norm and numerical rank of ``[num_images, channels]`` features.

    ``center`` subtracts the mean feature over the images first: the mean is one shared
    direction that would otherwise dominate the largest singular value (features after
    SiLU are mostly positive) and says nothing about how the images differ.
    """
    if features.dim() != 2 or min(features.shape) < 1:
        raise ValueError(f'features must be a non-empty [num_images, channels] matrix, '
                         f'got shape {tuple(features.shape)}')
    f = features.detach().double()
    if center:
        f = f - f.mean(0, keepdim=True)
    sv = torch.linalg.svdvals(f)
    smax = float(sv[0]) if sv.numel() else 0.0
    tol = max(f.shape) * torch.finfo(torch.float32).eps * smax
    return FeatureRank(
        singular_values=sv, nuclear_norm=float(sv.sum()),
        normalized_nuclear_norm=float(sv.sum()) / smax if smax > 0 else 0.0,
        rank=int((sv > tol).sum()), shape=(f.shape[0], f.shape[1]))


def singular_value_cdf(singular_values: Tensor, grid: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor]:
    """Cumulative distribution of the singular values normalised to ``[0, 1]`` (paper Fig. 5, right).

    The singular values are divided by the largest one; the curve gives, for
    each ``x`` in ``grid``, the fraction of singular values ``<= x``. A curve that
    stays lower (rises later) means more large singular values: a higher rank.
    """
    sv = singular_values.double()
    if grid is None:
        grid = torch.linspace(0, 1, 201, dtype=torch.float64)
    if sv.numel() == 0 or float(sv.max()) <= 0:
        return grid, torch.ones_like(grid)
    norm = sv / sv.max()
    cdf = (norm[None, :] <= grid[:, None]).double().mean(1)
    return grid, cdf


def folder_images(folder: str, size: int = 224, limit: Optional[int] = None) -> Tensor:
    """Images of ``folder`` (sorted by name, at most ``limit``), resized to ``size`` and normalised
    (:func:`~rexnet_mmdet.models.images.load_image_folder`, the whole picture: no crop)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'image folder {folder} does not exist; pass a folder of '
                                f'{"/".join(IMAGE_EXTENSIONS)} images, or --synthetic / no images '
                                f'for random inputs')
    images = load_image_folder(folder, size, limit=limit, crop=False)
    if len(images) < 2:
        raise ValueError(f'{folder} has {len(images)} images ({", ".join(IMAGE_EXTENSIONS)}); the '
                         f'singular values need at least 2, better 100 or more')
    return images


def synthetic_images(num: int, size: int = 224, seed: int = 0) -> Tensor:
    """``num`` images of the project's synthetic shapes dataset, drawn in memory."""
    import numpy as np

    from ..datasets.synthetic import ShapesSettings, draw_image
    rng = np.random.default_rng(seed)
    settings = ShapesSettings(image_size=size)
    return imagenet_batch([draw_image(rng, settings)[0] for _ in range(num)], size, crop=False)


def random_images(num: int, size: int = 224, seed: int = 0) -> Tensor:
    """``num`` standard-normal inputs (already "normalised" images)."""
    return torch.randn(num, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def pooled_features(backbone: torch.nn.Module, images: Tensor, batch_size: int = 16,
                    output: int = -1) -> Tensor:
    """Globally average-pooled ``backbone`` output number ``output``: ``[num_images, channels]``."""
    backbone.eval()
    feats = []
    for start in range(0, images.shape[0], batch_size):
        outs = backbone(images[start:start + batch_size])
        out = outs[output] if isinstance(outs, (tuple, list)) else outs
        feats.append(out.mean(dim=(2, 3)).double())
    return torch.cat(feats)


@dataclass
class BackboneSpec:
    """A backbone to analyse: ``[LABEL=]rexnet:WIDTH[:CHECKPOINT]``,
    ``[LABEL=]rexnet-stagewise:WIDTH[:CHECKPOINT]`` or a detector config (``config=...``)."""
    label: str
    kind: str  # 'rexnet', 'rexnet-stagewise' or 'config'
    widen_factor: Optional[float] = None
    checkpoint: Optional[str] = None
    config: Optional[str] = None
BACKBONE_KINDS = ('rexnet', 'rexnet-stagewise')


def parse_backbone_spec(text: str) -> BackboneSpec:
    """``'rexnet:1.0'``, ``'trained=rexnet:1.0:work_dirs/x/epoch_12.pth'`` -> :class:`BackboneSpec`."""
    label = None
    body = text
    if '=' in text.split(':', 1)[0]:
        label, body = text.split('=', 1)
    parts = body.split(':', 2)
    usage = ('expected [LABEL=]KIND:WIDTH[:CHECKPOINT] with KIND one of '
             f'{", ".join(BACKBONE_KINDS)}, e.g. rexnet:1.0 or trained=rexnet:1.0:epoch_12.pth')
    if len(parts) < 2 or parts[0] not in BACKBONE_KINDS:
        raise ValueError(f'cannot read backbone {text!r}: {usage}')
    try:
        width = float(parts[1])
    except ValueError:
        raise ValueError(f'cannot read backbone {text!r}: width {parts[1]!r} is not a number; {usage}')
    ckpt = parts[2] if len(parts) == 3 and parts[2] else None
    if label is None:
        label = f'{parts[0]} {width_tag(width)}' + (
            f' ({os.path.basename(ckpt)})' if ckpt else ' (random init)')
    return BackboneSpec(label=label, kind=parts[0], widen_factor=width, checkpoint=ckpt)


def parse_config_spec(text: str) -> BackboneSpec:
    """``'[LABEL=]configs/x.py[:CHECKPOINT]'`` -> :class:`BackboneSpec` (the detector's backbone)."""
    label = None
    body = text
    if '=' in text.split('.py', 1)[0]:
        label, body = text.split('=', 1)
    if '.py' not in body:
        raise ValueError(f'cannot read config {text!r}: expected [LABEL=]CONFIG.py[:CHECKPOINT]')
    cfg, _, ckpt = body.partition('.py')
    cfg += '.py'
    ckpt = ckpt[1:] if ckpt.startswith(':') else None
    if label is None:
        label = os.path.splitext(os.path.basename(cfg))[0] + (
            f' ({os.path.basename(ckpt)})' if ckpt else ' (random init)')
    return BackboneSpec(label=label, kind='config', checkpoint=ckpt or None, config=cfg)


def backbone_from_spec(spec: BackboneSpec, tap: Optional[int] = None, seed: int = 0) -> torch.nn.Module:
    """Build the backbone of ``spec`` (no download) and load its checkpoint, if any.

    ``tap`` (an ``out_indices`` entry) selects the returned feature; by default the final 1x1
    conv (6) of a ``rexnet`` spec and the last output a config's backbone is set up with.
    A checkpoint may be an ImageNet checkpoint (official, timm, own format) or a detector
    checkpoint (its ``backbone.*`` keys are used); it is read with ``weights_only`` loading.
    Random weights keep their default BatchNorm statistics:
    :func:`rexnet_mmdet.models.norms.calibrate_batchnorm` sets them from the images analysed;
    ``seed`` seeds the random initialisation.
    """
    if spec.kind == 'config':
        bcfg = load_config(spec.config).model.backbone.copy()
        if tap is not None:
            bcfg['out_indices'] = (tap,)
    else:
        channels = stagewise_block_channels(spec.widen_factor) if spec.kind == 'rexnet-stagewise' else None
        bcfg = dict(type='ReXNet', widen_factor=spec.widen_factor,
                    out_indices=(6 if tap is None else tap,), block_channels=channels)
    if spec.checkpoint and not os.path.isfile(spec.checkpoint):
        raise FileNotFoundError(f'checkpoint {spec.checkpoint} of {spec.label!r} does not exist')
    return build_backbone(bcfg, seed=seed, checkpoint=spec.checkpoint, calibration_size=None)


__all__ = ['FeatureRank', 'feature_rank', 'singular_value_cdf', 'folder_images',
           'synthetic_images', 'random_images', 'pooled_features', 'BackboneSpec', 'BACKBONE_KINDS',
           'parse_backbone_spec', 'parse_config_spec', 'backbone_from_spec']
