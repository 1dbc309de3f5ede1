"""The SSDLite demo config (configs/demo/ssdlite_rexnet_x0.9_shapes.py) trains, saves a checkpoint and
evaluates through mmengine's Runner on a tiny copy of the built-in dataset (the Faster / Mask R-CNN
demo configs are run by the tools' tests, tests/helpers/tiny_runs.py)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SSDLITE_DEMO = osp.join(ROOT, 'configs', 'demo', 'ssdlite_rexnet_x0.9_shapes.py')


@pytest.mark.slow
def test_ssdlite_demo_config_trains_validates_and_saves(tmp_path):
    cfg = Config.fromfile(SSDLITE_DEMO)
    # The config's own model, pipelines, schedule shape and hooks; a tiny dataset and two steps.
    assert cfg.model.backbone.widen_factor == 0.9 and cfg.model.backbone.init_cfg is None
    assert cfg.model.bbox_head.num_classes == 4 and cfg.train_cfg.max_iters == 600
    data_root = str(tmp_path / 'shapes') + '/'
    synthetic = dict(cfg.train_dataloader.dataset.synthetic, image_size=64, splits=dict(train=4, val=2))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = data_root
        loader.dataset.synthetic = synthetic
        loader.batch_size = 2
    cfg.val_evaluator.ann_file = data_root + 'annotations/instances_val.json'
    cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
    cfg.train_cfg.max_iters, cfg.train_cfg.val_interval = 2, 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.work_dir = str(tmp_path / 'work')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.val_loop.run()
    finally:
        torch.set_num_threads(threads)
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_2.pth'))
    assert runner.val_loop.evaluator.metrics[0].dataset_meta['classes'] == ('circle', 'triangle', 'square', 'star')
    assert 0.0 <= metrics['coco/bbox_mAP_50'] <= 1.0
