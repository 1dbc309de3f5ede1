"""Which BatchNorm layers a one-image batch switches to running statistics, and that the modes come back."""
import pytest
import torch
import torch.nn as nn

from rexnet_mmdet.models.one_image_batch import batch_size_of, running_statistics, switchable_norms


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.SyncBatchNorm(4), nn.GroupNorm(2, 4),
                         nn.BatchNorm1d(4))


def test_training_batchnorm_is_switched_and_restored():
    model = _model().train()
    model[4].eval()  # frozen statistics (norm_eval) stay as they are
    with running_statistics(model, world_size=1) as switched:
        assert switched == [model[1], model[2]]
        assert not model[1].training and not model[2].training
        assert model[0].training and model[3].training
    assert [m.training for m in model] == [True, True, True, True, False]


def test_sync_batchnorm_is_left_alone_across_processes():
    model = _model().train()
    assert switchable_norms(model, world_size=2) == [model[1], model[4]]
    assert switchable_norms(model, world_size=1) == [model[1], model[2], model[4]]


def test_modes_come_back_when_the_step_fails():
    model = _model().train()
    with pytest.raises(RuntimeError):
        with running_statistics(model, world_size=1):
            raise RuntimeError('step failed')
    assert all(m.training for m in model)


def test_mmcv_sync_batchnorm_counts(monkeypatch):
    mmcv_ops = pytest.importorskip('mmcv.ops')
    import torch.distributed as dist
    # mmcv's SyncBatchNorm asks for the world size when built.
    monkeypatch.setattr(dist, 'get_world_size', lambda group=None: 1)
    norm = mmcv_ops.SyncBatchNorm(4)
    model = nn.Sequential(norm).train()
    assert switchable_norms(model, world_size=1) == [norm]
    assert switchable_norms(model, world_size=2) == []


def test_batch_size_of_lists_and_tensors():
    assert batch_size_of([torch.zeros(3, 8, 8)]) == 1
    assert batch_size_of(torch.zeros(2, 3, 8, 8)) == 2
    assert batch_size_of(None) is None
