"""How a ReXNet backbone starts training: a local ImageNet file must exist before anything is built; from
random weights, frozen BatchNorm or frozen stages are refused and gradient clipping is advised."""
import os.path as osp
from typing import Optional

RANDOM_BACKBONE_OPTIONS = ('model.backbone.init_cfg=None model.backbone.norm_eval=False '
                           'model.backbone.norm_cfg.requires_grad=True model.backbone.frozen_stages=-1')


#: What the advice asks for: the clipping mmdet's configs use where training is unstable.
CLIP_GRAD_OPTIONS = 'optim_wrapper.clip_grad.max_norm=35 optim_wrapper.clip_grad.norm_type=2'


def _random_rexnet(cfg) -> bool:
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    if backbone.get('type') != 'ReXNet' or cfg.get('load_from') or cfg.get('resume'):
        return False
    init_cfg = backbone.get('init_cfg')
    return not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained')


def random_backbone_advice(cfg) -> Optional[str]:
    """A warning for training a ReXNet from random weights without gradient clipping, else None.

    A random ReXNet's features (and so a Mask R-CNN's initial mask logits and loss) are larger than a
    random ResNet's; at an R-CNN learning rate without warm-up the first large gradients can throw the
    weights off and the losses reach NaN within a few dozen steps, in fp32 as in mixed precision.
    """
    if not _random_rexnet(cfg) or (cfg.get('optim_wrapper') or {}).get('clip_grad'):
        return None
    return ('the backbone starts from random weights and the optimizer has no gradient clipping: early steps '
            'can diverge to loss nan (more so at a high learning rate or without warm-up). Add '
            f'--cfg-options {CLIP_GRAD_OPTIONS} and keep the config\'s learning-rate warm-up')


def _check_local_weights(cfg, config_name: str) -> None:
    # A missing local ImageNet file would otherwise stop the run only after the datasets are built.
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    init_cfg = backbone.get('init_cfg')
    if backbone.get('type') != 'ReXNet' or not isinstance(init_cfg, dict) or init_cfg.get('type') != 'Pretrained':
        return
    path = str(init_cfg.get('checkpoint') or '')
    if not path or '://' in path or osp.exists(path):
        return
    where = ('the official ReXNet-lite weights are Google Drive files with no direct URL: download this width\'s '
             'file from the pretrained-models table of https://github.com/clovaai/rexnet and put it there (see '
             'docs/weights.md)' if 'lite' in osp.basename(path) else 'put the file there')
    raise ValueError(f'{config_name}: the backbone\'s ImageNet weights {path} do not exist (absolute path '
                     f'{osp.abspath(path)}): {where}, or give another file with --cfg-options '
                     f'model.backbone.init_cfg.checkpoint=PATH_OR_URL')


def check_backbone_start(cfg, config_name: str = 'the config') -> None:
    """Refuse to start a ReXNet whose local ImageNet file is missing, and one from random weights with
    frozen BatchNorm or frozen stages.

    Frozen BatchNorm keeps its initial statistics (mean 0, variance 1) and so normalises
    nothing: on random weights the activations shrink layer by layer to denormal floats (slow on a
    CPU) and the backbone cannot learn; frozen random stages never learn.
    The R-CNN configs freeze BN for ImageNet weights; with ``init_cfg=None`` and no
    ``load_from`` / resume, that is refused with the options that train a random backbone.
    """
    _check_local_weights(cfg, config_name)
    if not _random_rexnet(cfg):
        return
    backbone = cfg['model']['backbone']
    norm_cfg = backbone.get('norm_cfg') or {}
    frozen = []
    if backbone.get('norm_eval'):
        frozen.append('norm_eval=True')
    if norm_cfg.get('requires_grad') is False:
        frozen.append('norm_cfg.requires_grad=False')
    if (backbone.get('frozen_stages') if backbone.get('frozen_stages') is not None else -1) >= 0:
        frozen.append(f'frozen_stages={backbone.get("frozen_stages")}')
    if frozen:
        raise ValueError(
            f'{config_name}: the backbone would start from random weights (no ImageNet init_cfg, no load_from) '
            f'with {", ".join(frozen)}: frozen BatchNorm keeps mean 0 / variance 1, so activations shrink to '
            f'denormal floats (slow on a CPU) and frozen random layers never learn. To train a random '
            f'backbone add --cfg-options {RANDOM_BACKBONE_OPTIONS}; or give ImageNet weights with '
            f'model.backbone.init_cfg.checkpoint=PATH_OR_URL')


__all__ = ['RANDOM_BACKBONE_OPTIONS', 'CLIP_GRAD_OPTIONS', 'check_backbone_start', 'random_backbone_advice']
