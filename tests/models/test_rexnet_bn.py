"""BatchNorm in ReXNet: statistics updated once per step under with_cp, norm_eval on every BN kind,
a clear error for a one-image batch."""
import copy

import pytest
import torch

from rexnet_mmdet.models import ReXNet


def _step(model: ReXNet, x: torch.Tensor) -> None:
    model.train()
    sum(o.float().pow(2).mean() for o in model(x)).backward()


@pytest.mark.parametrize('out_indices', [(1, 2, 3, 5), (4, 6)])
def test_with_cp_updates_batchnorm_statistics_once(out_indices):
    torch.manual_seed(0)
    plain = ReXNet(widen_factor=0.5, out_indices=out_indices)
    plain.init_weights()
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    x = torch.randn(2, 3, 32, 32)
    _step(plain, x)
    _step(checkpointed, x)
    for (name, a), (_, b) in zip(plain.named_buffers(), checkpointed.named_buffers()):
        assert torch.equal(a, b), name
        if name.endswith('num_batches_tracked'):
            assert int(b) == 1, name
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


@pytest.fixture
def process_group():
    """A one-process gloo group: mmcv's SyncBatchNorm asks for the world size when built."""
    import socket
    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_norm_eval_covers_mmcv_sync_batchnorm(process_group):
    pytest.importorskip('mmcv.ops')
    from mmcv.ops import SyncBatchNorm
    from torch.nn.modules.batchnorm import _BatchNorm
    model = ReXNet(widen_factor=0.5, out_indices=(1,), norm_cfg=dict(type='MMSyncBN'), norm_eval=True)
    norms = [m for m in model.modules() if isinstance(m, SyncBatchNorm)]
    assert norms and not any(isinstance(m, _BatchNorm) for m in norms)  # what a _BatchNorm check misses
    model.train()
    assert not any(m.training for m in norms)
    model = ReXNet(widen_factor=0.5, out_indices=(1,), norm_cfg=dict(type='MMSyncBN'), norm_eval=False).train()
    assert all(m.training for m in model.modules() if isinstance(m, SyncBatchNorm))


def test_one_image_batch_with_trainable_batchnorm_says_what_to_change():
    model = ReXNet(widen_factor=0.5).train()
    with pytest.raises(ValueError) as err:
        model(torch.randn(1, 3, 64, 64))
    message = str(err.value)
    assert 'batch of 1 image' in message and 'train_dataloader.batch_size=2' in message
    assert 'model.backbone.norm_eval=True' in message
    # Frozen statistics, or evaluation, take one image.
    assert ReXNet(widen_factor=0.5, norm_eval=True).train()(torch.randn(1, 3, 64, 64))
    assert model.eval()(torch.randn(1, 3, 64, 64))
