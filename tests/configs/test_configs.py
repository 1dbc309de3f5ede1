"""The nine detector configs: they build, match the paper's parameter counts, train a step and predict."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.structures import InstanceData

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet.analysis.paper import CONFIG_NAMES, PAPER_DETECTORS
from rexnet_mmdet.models.channels import out_channels
from rexnet_mmdet.utils.build import CONFIG_DIR
import config_models  # tests/helpers/, registered by conftest.py

register_all_modules()


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))


def build_random(name: str):
    return config_models.build_random(osp.join(CONFIG_DIR, f'{name}.py'))


def fake_batch(size: int, with_mask: bool, n: int = 2):
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                        pad_shape=(size, size), batch_input_shape=(size, size)))
        boxes = torch.tensor([[8., 10., 60., 70.], [size / 2, size / 3, size - 4., size - 8.]])
        gt = InstanceData(bboxes=boxes, labels=torch.tensor([1, 5 + i]))
        if with_mask:
            masks = torch.zeros(2, size, size, dtype=torch.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                masks[k, y1:y2, x1:x2] = 1
            gt.masks = BitmapMasks(masks.numpy(), size, size)
        s.gt_instances = gt
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_config_builds_with_paper_params_and_checked_channels(name):
    cfg = load(name)
    paper = PAPER_DETECTORS[name]
    bb = cfg.model.backbone
    assert bb.type == 'ReXNet' and bb.widen_factor == paper.widen_factor
    assert cfg.custom_imports.imports == ['rexnet_mmdet']
    model = build_random(name)
    # The neck takes exactly what the backbone says it returns, and that is the channel rule's answer.
    assert list(cfg.model.neck.in_channels) == list(model.backbone.out_channels) \
        == out_channels(bb.widen_factor, bb.out_indices)
    if 'ssdlite' in name:
        assert bb.out_indices == (4, 6)
        assert list(cfg.model.neck.out_channels[:2]) == list(model.backbone.out_channels)
        assert list(cfg.model.bbox_head.in_channels) == list(cfg.model.neck.out_channels)
        assert model.bbox_head.prior_generator.num_base_priors[0] == 3  # lowest level: 3 anchors
    else:
        assert bb.out_indices == (1, 2, 3, 5) and bb.norm_eval and not bb.norm_cfg.requires_grad
        assert [r.scale for r in cfg.train_pipeline if r.type == 'Resize'] == [(1200, 800)]
        assert all(not m.weight.requires_grad for m in model.backbone.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(params - paper.params_m) / paper.params_m <= 0.01, f'{params:.2f}M vs paper {paper.params_m}M'


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_config_trains_a_step_and_predicts(name):
    model = build_random(name)
    with_mask = 'mask_rcnn' in name
    batch = fake_batch(128, with_mask)
    log_vars = config_models.train_step(model, batch, model.bbox_head if 'ssdlite' in name else model.roi_head)
    pred = config_models.predict(model, batch)
    if with_mask:
        assert 'loss_mask' in log_vars and len(pred.masks) == len(pred.bboxes)
