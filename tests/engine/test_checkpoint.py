"""Safe loading of mmengine training checkpoints: what mmengine writes loads, nothing else runs."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

from rexnet_mmdet import CorruptCheckpointError, UnsafeCheckpointError
from rexnet_mmdet.engine import find_resume_checkpoint, load_checkpoint_file
from rexnet_mmdet.models.weights import CHECKPOINT_GLOBALS, safe_load

def _training_checkpoint() -> dict:
    """A checkpoint shaped like the ones mmengine's Runner saves, built from the real objects."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=4)
    scheduler.step()
    hub = MessageHub.get_instance('test_engine_checkpoint')
    for value in (3.0, 2.0, 1.5):
        hub.update_scalar('train/loss', value)
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('iter', 7)
    return dict(meta=dict(iter=7, epoch=0, seed=123, dataset_meta=dict(classes=('a', 'b'))),
                state_dict=model.state_dict(), message_hub=hub.state_dict(),
                optimizer=optimizer.state_dict(), param_schedulers=[scheduler.state_dict()],
                array=np.arange(4, dtype=np.float32))


class _GetsAttribute:
    """Pickles as getattr(HistoryBuffer, name): a gadget through the one allowed builtin."""

    def __init__(self, name: str):
        self.name = name

    def __reduce__(self):
        return getattr, (HistoryBuffer, self.name)


def test_mmengine_training_checkpoint_loads_with_weights_only(tmp_path):
    ckpt = _training_checkpoint()
    path = str(tmp_path / 'iter_7.pth')
    torch.save(ckpt, path)
    loaded = load_checkpoint_file(path)
    assert loaded['meta'] == ckpt['meta']
    assert torch.equal(loaded['state_dict']['weight'], ckpt['state_dict']['weight'])
    momentum = loaded['optimizer']['state'][0]['momentum_buffer']
    assert torch.equal(momentum, ckpt['optimizer']['state'][0]['momentum_buffer'])
    assert loaded['param_schedulers'] == ckpt['param_schedulers']
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((3.0 + 2.0 + 1.5) / 3) and buffer.current() == 1.5
    assert loaded['message_hub']['runtime_info']['eta'] == 12.5
    assert np.array_equal(loaded['array'], np.arange(4, dtype=np.float32))


@pytest.mark.skipif(safe_load.READER != 'weights_only',
                    reason='torch < 2.6 loads with weights_only=False by default: there is no safe default to keep')
def test_plain_torch_load_cannot_read_it_but_safety_stays_on(tmp_path):
    # The problem being solved: torch >= 2.6 refuses these files by default. The fix must not
    # switch that default off for everyone.
    path = str(tmp_path / 'ckpt.pth')
    torch.save(_training_checkpoint(), path)
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_mmengine_loads_local_files_through_the_safe_loader(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    torch.save(_training_checkpoint(), path)
    assert CheckpointLoader._get_checkpoint_loader(path).__module__ == 'rexnet_mmdet.engine.mmengine_loader'
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert loaded['meta']['iter'] == 7


@pytest.mark.parametrize('load', ['direct', 'mmengine'])
def test_checkpoint_with_pickled_code_is_refused_and_never_run(tmp_path, load, tiny_runs):
    marker = tmp_path / 'payload_ran'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=tiny_runs.RunsCommand(f'touch {marker}')), path)
    with pytest.raises(UnsafeCheckpointError) as err:
        if load == 'direct':
            load_checkpoint_file(path)
        else:
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
    message = str(err.value)
    assert 'evil.pth' in message and 'system' in message and 'Nothing from the file was run' in message
    assert not marker.exists()


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'gadget.pth')
    torch.save(dict(meta=_GetsAttribute('register_statistics')), path)
    with pytest.raises(UnsafeCheckpointError, match='register_statistics'):
        load_checkpoint_file(path)
    # What mmengine itself pickles that way still loads.
    torch.save(dict(meta=_GetsAttribute('mean')), path)
    assert load_checkpoint_file(path)['meta'] is HistoryBuffer.mean


@pytest.mark.skipif(not hasattr(torch.serialization, 'get_unsafe_globals_in_checkpoint'),
                    reason='lists a file\'s globals with torch >= 2.5; the allowlist is the same on every torch')
def test_allow_list_is_exactly_what_mmengine_checkpoints_need(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    torch.save(_training_checkpoint(), path)
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    allowed = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
               for g in CHECKPOINT_GLOBALS}
    assert needed <= allowed
    # Nothing that can run commands, import modules or open files.
    assert not any(name.split('.')[0] in ('os', 'posix', 'subprocess', 'importlib', 'io', 'sys')
                   for name in allowed)


def test_truncated_checkpoint_is_reported_as_incomplete(tmp_path):
    path = tmp_path / 'iter_4.pth'
    torch.save(_training_checkpoint(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match='truncated or damaged'):
        load_checkpoint_file(str(path))


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    good = tmp_path / 'iter_2.pth'
    torch.save({'meta': {'iter': 2}}, str(good))
    cut = tmp_path / 'iter_4.pth'
    torch.save({'meta': {'iter': 4}}, str(cut))
    cut.write_bytes(cut.read_bytes()[:40])
    (tmp_path / 'last_checkpoint').write_text(str(cut))
    assert find_resume_checkpoint(str(tmp_path)) == str(good)
    # An empty pointer (killed while writing it) falls back to the newest complete file.
    (tmp_path / 'last_checkpoint').write_text('')
    assert find_resume_checkpoint(str(tmp_path)) == str(good)
    # A complete newer checkpoint wins.
    torch.save({'meta': {'iter': 4}}, str(cut))
    (tmp_path / 'last_checkpoint').write_text(str(cut))
    assert find_resume_checkpoint(str(tmp_path)) == str(cut)
