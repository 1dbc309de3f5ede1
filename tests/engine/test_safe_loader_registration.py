"""Every way mmengine and mmdet load a checkpoint goes through the safe loader once rexnet_mmdet is imported."""
import os

import pytest
import torch
from mmengine.runner import checkpoint as mc
from mmengine.runner.checkpoint import CheckpointLoader

import rexnet_mmdet  # noqa: F401  (registers the loader)
from rexnet_mmdet.engine.mmengine_loader import load_from_safe_loader
from rexnet_mmdet.models.weights.safe_load import UnsafeCheckpointError


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'weight': torch.ones(2, 2)}, 'meta': _RunsCommand(f'touch {marker}')}, path)
    yield path
    assert not marker.exists()


@pytest.mark.parametrize('source', ['/a/local.pth', 'http://host/x.pth', 'https://host/x.pth',
                                    'torchvision://resnet50', 'modelzoo://resnet50', 'open-mmlab://x',
                                    'openmmlab://x', 'mmcls://x', 'pavi://x', 's3://bucket/x.pth',
                                    'cluster:s3://bucket/x.pth', 'petrel://x'])
def test_every_mmengine_scheme_uses_the_safe_loader(source):
    assert CheckpointLoader._get_checkpoint_loader(source) is load_from_safe_loader
    assert all(loader is load_from_safe_loader for loader in CheckpointLoader._schemes.values())


def test_mmengine_loader_functions_called_by_name_are_replaced():
    for name in ('load_from_local', 'load_from_http', 'load_from_torchvision', 'load_from_openmmlab',
                 'load_from_mmcls', 'load_from_pavi', 'load_from_ceph'):
        assert getattr(mc, name) is load_from_safe_loader, name
    assert mc.load_url.__module__ == 'rexnet_mmdet.engine.mmengine_loader'


def test_mmengine_load_checkpoint_and_pretrained_init_refuse_code(evil):
    from mmengine.model.weight_init import PretrainedInit
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UnsafeCheckpointError):
        mc.load_checkpoint(model, evil)
    with pytest.raises(UnsafeCheckpointError):
        mc._load_checkpoint(evil)
    with pytest.raises(UnsafeCheckpointError):
        PretrainedInit(checkpoint=evil)(model)
    with pytest.raises(UnsafeCheckpointError):
        PretrainedInit(checkpoint=evil, prefix='backbone.')(model)


def test_mmdet_init_detector_refuses_code(evil):
    from mmdet.apis import init_detector
    config = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'demo',
                          'faster_rcnn_rexnet_x1.0_fpn_shapes.py')
    with pytest.raises(UnsafeCheckpointError):
        init_detector(config, evil, device='cpu')
