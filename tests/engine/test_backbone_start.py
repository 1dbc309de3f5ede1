"""Training a ReXNet from random weights: gradient clipping is advised where the optimizer has none."""
import os.path as osp

from mmengine.config import Config

from rexnet_mmdet.engine.backbone_start import CLIP_GRAD_OPTIONS, random_backbone_advice
from rexnet_mmdet.utils.build import PROJECT_ROOT


def _cfg(init_cfg, clip_grad=None, **extra) -> Config:
    optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
    if clip_grad is not None:
        optim_wrapper['clip_grad'] = clip_grad
    return Config(dict(model=dict(backbone=dict(type='ReXNet', init_cfg=init_cfg)), optim_wrapper=optim_wrapper,
                       **extra))


def test_random_backbone_without_clipping_gets_the_options_that_add_it():
    advice = random_backbone_advice(_cfg(None))
    assert advice is not None and CLIP_GRAD_OPTIONS in advice and 'nan' in advice
    # The options it names add clipping, and then there is nothing to say.
    cfg = _cfg(None)
    cfg.merge_from_dict({k: float(v) if k.endswith('max_norm') else int(v)
                         for k, v in (o.split('=') for o in CLIP_GRAD_OPTIONS.split())})
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35.0, norm_type=2)
    assert random_backbone_advice(cfg) is None


def test_pretrained_or_loaded_backbones_get_no_advice():
    assert random_backbone_advice(_cfg(dict(type='Pretrained', checkpoint='x.pth'))) is None
    assert random_backbone_advice(_cfg(None, load_from='run/iter_10.pth')) is None
    assert random_backbone_advice(Config(dict(model=dict(backbone=dict(type='ResNet', init_cfg=None)),
                                              optim_wrapper=dict(optimizer=dict(type='SGD'))))) is None


def test_demo_configs_clip_already():
    cfg = Config.fromfile(osp.join(PROJECT_ROOT, 'configs', 'demo', 'mask_rcnn_rexnet_x1.0_fpn_shapes.py'))
    assert random_backbone_advice(cfg) is None
