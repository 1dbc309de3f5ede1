"""Models from configs: seeded random weights, BatchNorm calibration, fake batches, configs."""
import pytest
import torch

from rexnet_mmdet.analysis.speed import REFERENCE_DETECTOR
from rexnet_mmdet.utils.build import CONFIG_DIR, build_backbone, dataset_classes, fake_batch, load_config

pytestmark = pytest.mark.usefixtures('one_thread')


def test_batchnorm_calibration_gives_real_scale_activations():
    cfg = dict(type='ReXNet', widen_factor=1.0, out_indices=(5,))
    x = torch.randn(1, 3, 64, 64)
    raw = build_backbone(cfg, calibration_size=None)
    calibrated = build_backbone(cfg, calibration_size=64)
    with torch.no_grad():
        # Default statistics: Kaiming fan_out init shrinks activations through the depthwise convs.
        assert float(raw(x)[0].abs().max()) < 1e-3
        assert float(calibrated(x)[0].std()) > 0.1
    norms = [m for m in calibrated.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.training and m.momentum == 0.1 for m in norms)


def test_build_backbone_is_seeded_and_keeps_non_pretrained_inits():
    cfg = dict(type='ReXNet', widen_factor=0.9, out_indices=(5,),
               init_cfg=dict(type='Pretrained', checkpoint='never/read.pth'))
    a = build_backbone(cfg, seed=3, calibration_size=None)
    b = build_backbone(cfg, seed=3, calibration_size=None)
    assert torch.equal(a.stem.conv.weight, b.stem.conv.weight)
    assert not a.training


def test_fake_batch_is_a_data_loader_batch():
    batch = fake_batch(2, (96, 64), num_boxes=5, num_classes=3, with_mask=True)
    assert [tuple(i.shape) for i in batch['inputs']] == [(3, 64, 96)] * 2
    for sample in batch['data_samples']:
        boxes = sample.gt_instances.bboxes
        assert boxes.shape == (5, 4)
        assert bool(((boxes[:, 2:] >= boxes[:, :2]) & (boxes[:, 2:] <= torch.tensor([96.0, 64.0]))).all())
        assert bool((boxes >= 0).all()) and int(sample.gt_instances.labels.max()) < 3
        assert sample.gt_instances.masks.masks.shape == (5, 64, 96)
    # The same batch every time: MMDetection's demo_mm_inputs draws from a fixed seed.
    again = fake_batch(2, (96, 64), num_boxes=5, num_classes=3, with_mask=True)
    assert all(torch.equal(a, b) for a, b in zip(batch['inputs'], again['inputs']))


def test_load_config_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_config(str(tmp_path / 'missing.py'))
    cfg = load_config(REFERENCE_DETECTOR, {'model.backbone.depth': 101})
    assert cfg.model.backbone.depth == 101


def test_a_config_typo_gets_did_you_mean(tmp_path, monkeypatch):
    monkeypatch.chdir(CONFIG_DIR + '/..')
    with pytest.raises(FileNotFoundError, match=r'^config file configs/ssdlit_rexnet_x1.3.py does not exist; did you '
                                                r'mean configs/ssdlite_rexnet_x1.3.py or '):
        load_config('configs/ssdlit_rexnet_x1.3.py')
    with pytest.raises(FileNotFoundError, match=r'did you mean configs/demo/faster_rcnn_rexnet_x1.0_fpn_shapes.py'):
        load_config('configs/demo/faster_rcnn_rexnet_x1.0_fpn_shape.py')
    # A folder with no config near the name: where to look instead.
    with pytest.raises(FileNotFoundError, match='pass the path of a config, e.g. configs/'):
        load_config(str(tmp_path / 'nothing_like_it.py'))


def test_dataset_classes_of_a_config_without_reading_it():
    assert dataset_classes(load_config(f'{CONFIG_DIR}/demo/ssdlite_rexnet_x0.9_shapes.py')) == \
        ('circle', 'triangle', 'square', 'star')
    coco = dataset_classes(load_config(f'{CONFIG_DIR}/ssdlite_rexnet_x1.0.py'))
    assert len(coco) == 80 and coco[0] == 'person'
