"""BatchNorm in ReXNet: statistics updated once per step under with_cp, norm_eval on every BN kind,
a one-image training batch on running statistics."""
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


def _buffers(model) -> dict:
    return {k: v.clone() for k, v in model.named_buffers()}


@pytest.mark.parametrize('with_cp', [False, True])
def test_one_image_batch_trains_on_running_statistics(tmp_path, with_cp):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance(f'one_image_{with_cp}', log_file=str(tmp_path / 'run.log'))
    torch.manual_seed(0)
    model = ReXNet(widen_factor=0.5, with_cp=with_cp)
    model.init_weights()
    model.train()
    before = _buffers(model)
    x = torch.randn(1, 3, 64, 64)
    sum(o.pow(2).mean() for o in model(x)).backward()
    # Running statistics untouched, every norm back in training mode, norm weights trained.
    after = _buffers(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training for m in model.modules())
    assert model.stem.bn.weight.grad is not None and model.blocks[3].se.bn.weight.grad.abs().sum() > 0
    # What eval-mode BatchNorm computes, forward and backward (with_cp recomputes in eval mode too).
    reference = copy.deepcopy(model)
    reference.zero_grad()
    model.zero_grad()
    reference.eval()
    sum(o.pow(2).mean() for o in reference._forward(x)).backward()
    sum(o.pow(2).mean() for o in model(x)).backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), model.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0, msg=name)
    for handler in logger.handlers:
        handler.flush()
    text = (tmp_path / 'run.log').read_text()
    assert text.count('training batch of 1 image') == 1, text  # said once, for two one-image batches


def test_two_image_batches_compute_what_they_did():
    """A two-image batch keeps batch statistics: its output differs from running statistics' and matches
    plain training-mode BatchNorm (the mechanism never runs)."""
    torch.manual_seed(0)
    model = ReXNet(widen_factor=0.5)
    model.init_weights()
    x = torch.randn(2, 3, 64, 64)
    model.train()
    out = model(x)
    assert all(m.training for m in model.modules())
    assert int(model.stem.bn.num_batches_tracked) == 1
    assert not torch.equal(out[-1], copy.deepcopy(model).eval()(x)[-1])


def test_frozen_statistics_and_evaluation_take_one_image():
    assert ReXNet(widen_factor=0.5, norm_eval=True).train()(torch.randn(1, 3, 64, 64))
    assert ReXNet(widen_factor=0.5).eval()(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize('device, dtype', [('cpu', torch.bfloat16),
                                           pytest.param('cuda', torch.float16, marks=pytest.mark.cuda)])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('out_indices', [(1, 2, 3, 5), (4, 6)])
def test_with_cp_under_autocast_computes_what_it_computes_without(device, dtype, channels_last, out_indices):
    """Mixed precision: the recomputation in backward (under the forward's autocast state) gives the same
    loss, gradients and BatchNorm statistics as stored activations; the in-place partial residual included."""
    torch.manual_seed(0)
    plain = ReXNet(widen_factor=0.5, out_indices=out_indices)
    plain.init_weights()
    plain = plain.to(device)
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    x = torch.randn(2, 3, 64, 64, device=device)
    if channels_last:
        plain, checkpointed = (m.to(memory_format=torch.channels_last) for m in (plain, checkpointed))
        x = x.contiguous(memory_format=torch.channels_last)
    losses = []
    for model in (plain, checkpointed):
        model.train()
        with torch.autocast(device, dtype=dtype):
            outs = model(x)
            assert all(o.dtype == dtype for o in outs)
            loss = sum(o.float().pow(2).mean() for o in outs)
        loss.backward()
        losses.append(loss.detach())
    assert torch.isfinite(losses[0])
    same = _same_on(device, dtype)
    same(losses[1], losses[0], 'loss')
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        same(b.grad, a.grad, name)
    for (name, a), (_, b) in zip(plain.named_buffers(), checkpointed.named_buffers()):
        same(b, a, name)


def _same_on(device: str, dtype: torch.dtype):
    """Bitwise on the CPU, where kernels are deterministic. On a GPU, cuDNN's weight gradients and
    BatchNorm reductions sum in an order that changes from call to call, and a value computed in
    float16 may then round one unit apart: two float16 units relative (2 ** -9), and the same
    fraction of the tensor's largest value for elements near zero."""
    def same(actual, expected, name):
        if device == 'cpu' or not expected.is_floating_point():
            torch.testing.assert_close(actual, expected, rtol=0, atol=0, msg=name)
            return
        rtol = 2 * torch.finfo(dtype).eps
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=name)
    return same
