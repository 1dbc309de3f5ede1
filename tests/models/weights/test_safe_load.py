"""The one safe loader: what mmengine writes loads, nothing else runs, every bad file gets one clear line.

Files are made here, as an attacker or a tired user would: pickled code, gadgets through the
allowed names, numpy object arrays, and empty, text, truncated and TorchScript files; URLs are
served by an http.server on 127.0.0.1 started by the test.

Every test runs with each reader this torch has (``safe_load.READER``): torch's weights-only unpickler
(torch >= 2.6) and the restricted unpickler (every torch; the only one below 2.6). Both must accept and
refuse the same files with the same messages.
"""
import copyreg
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from rexnet_mmdet.models.weights import allowlist, safe_load
from rexnet_mmdet.models.weights.safe_load import (CHECKPOINT_GLOBALS, CheckpointError, CheckpointNotFoundError,
                                                   CorruptCheckpointError, UnsafeCheckpointError, load_checkpoint)

#: The readers this torch can use: the weights-only one only where it is the default (torch >= 2.6).
READERS = [r for r in safe_load.READERS if r == 'restricted' or safe_load.READER == 'weights_only']
has_safe_globals = pytest.mark.skipif(not hasattr(torch.serialization, 'add_safe_globals'),
                                      reason='torch.serialization.add_safe_globals came with torch 2.4')


@pytest.fixture(autouse=True, params=READERS)
def reader(request, monkeypatch):
    monkeypatch.setattr(safe_load, 'READER', request.param)
    return request.param



class _Reduces:
    """Pickles as ``func(*args)``: what a crafted checkpoint carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _CraftedHistoryBuffer:
    """Pickles as a HistoryBuffer whose state is whatever the test wants."""

    def __init__(self, state):
        self.state = state

    @property
    def __class__(self):  # pickle checks that __newobj__'s class is the object's
        return HistoryBuffer

    def __reduce__(self):
        return copyreg.__newobj__, (HistoryBuffer,), self.state


def _write_training_checkpoint(path: str) -> None:
    """Written by a fresh process, as mmengine's Runner writes one: MessageHub, numpy values."""
    code = f'''
import numpy as np, torch
from mmengine.logging import MessageHub
hub = MessageHub.get_instance('t')
for v in (3.0, 2.0, 1.5):
    hub.update_scalar('train/loss', v)
hub.update_info('eta', np.float64(12.5))
hub.update_info('flag', np.bool_(True))
hub.update_info('counts', np.arange(6, dtype=np.int32).reshape(2, 3))
hub.update_info('fortran', np.asfortranarray(np.arange(6.0).reshape(2, 3)))
model = torch.nn.Linear(3, 2)
torch.save(dict(meta=dict(iter=7, epoch=0, seed=3), state_dict=model.state_dict(), message_hub=hub.state_dict(),
                big_endian=np.arange(3, dtype='>f4')), {path!r})
'''
    subprocess.run([sys.executable, '-c', code], check=True)


@pytest.fixture(scope='module')
def training_checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'iter_7.pth')
    _write_training_checkpoint(path)
    return path


def test_training_checkpoint_loads_with_working_history_buffers(training_checkpoint):
    ckpt = load_checkpoint(training_checkpoint)
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.mean() == pytest.approx(6.5 / 3) and buffer.current() == 1.5
    assert buffer.statistics('mean') == pytest.approx(6.5 / 3)
    info = ckpt['message_hub']['runtime_info']
    assert info['eta'] == 12.5 and type(info['eta']) is np.float64 and info['flag'] is np.True_
    assert np.array_equal(info['counts'], np.arange(6).reshape(2, 3)) and info['counts'].dtype == np.int32
    assert np.array_equal(info['fortran'], np.arange(6.0).reshape(2, 3))
    assert np.array_equal(ckpt['big_endian'], np.arange(3)) and ckpt['big_endian'].dtype == np.dtype('>f4')
    assert ckpt['meta'] == dict(iter=7, epoch=0, seed=3)


@pytest.mark.slow
def test_history_buffers_work_in_a_fresh_process(training_checkpoint, reader):
    # A process that never made a HistoryBuffer: mmengine's class-level methods are empty until
    # one is made; a loaded buffer must still compute statistics, and nothing else is registered.
    code = f'''
from mmengine.logging import HistoryBuffer
from rexnet_mmdet.models.weights import safe_load
from rexnet_mmdet.models.weights.safe_load import load_checkpoint
safe_load.READER = {reader!r}
assert HistoryBuffer._statistics_methods == {{}}
buffer = load_checkpoint({training_checkpoint!r})['message_hub']['log_scalars']['train/loss']
print(buffer.statistics('mean'), sorted(HistoryBuffer._statistics_methods))
'''
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, text=True).stdout
    assert out.split()[0] == str(6.5 / 3) and "['current', 'max', 'mean', 'min']" in out


@has_safe_globals
def test_user_safe_globals_and_statistics_methods_are_left_as_they_were(training_checkpoint, tmp_path):
    before = set(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals([OrderedDict, _Reduces])
    try:
        mine = set(torch.serialization.get_safe_globals())
        HistoryBuffer()  # the defaults, as any use of mmengine registers them
        methods = dict(HistoryBuffer._statistics_methods)
        load_checkpoint(training_checkpoint)
        assert set(torch.serialization.get_safe_globals()) == mine
        assert HistoryBuffer._statistics_methods == methods
        evil = str(tmp_path / 'evil.pth')
        torch.save({'x': _Reduces(os.getcwd)}, evil)
        with pytest.raises(UnsafeCheckpointError):
            load_checkpoint(evil)
        assert set(torch.serialization.get_safe_globals()) == mine
        assert HistoryBuffer._statistics_methods == methods
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(list(before))


@has_safe_globals
def test_user_safe_globals_do_not_widen_the_allowlist(tmp_path):
    # What the user allows for their own torch.load calls is not allowed in a checkpoint here.
    path = str(tmp_path / 'user_class.pth')
    torch.save({'x': _Reduces(os.getcwd)}, path)
    torch.serialization.add_safe_globals([os.getcwd])
    try:
        with pytest.raises(UnsafeCheckpointError, match='getcwd'):
            load_checkpoint(path)
    finally:
        torch.serialization.clear_safe_globals()


@pytest.mark.parametrize('payload', [
    lambda m: _Reduces(os.system, f'touch {m}'),
    lambda m: _Reduces(subprocess.call, ['touch', m]),
    lambda m: _Reduces(eval, f'open({m!r}, "w")'),
    lambda m: _Reduces(getattr, _Reduces(open, m, 'w'), 'close'),
], ids=['os.system', 'subprocess', 'eval', 'open'])
def test_pickled_code_is_refused_and_never_run(tmp_path, payload):
    marker = str(tmp_path / 'payload_ran')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert 'evil.pth' in message and 'Nothing from the file was run' in message and '\n' not in message
    assert not os.path.exists(marker)


@pytest.mark.parametrize('name', ['register_statistics', '__init__', '__class__', '__subclasses__', 'statistics',
                                  '_statistics_methods', '__setstate__'])
def test_getattr_hands_out_only_the_four_statistics_methods(tmp_path, name):
    path = str(tmp_path / 'gadget.pth')
    torch.save({'meta': _Reduces(getattr, HistoryBuffer, name)}, path)
    with pytest.raises(UnsafeCheckpointError, match=name):
        load_checkpoint(path)
    # What mmengine itself pickles that way loads.
    torch.save({'meta': _Reduces(getattr, HistoryBuffer, 'mean')}, path)
    assert load_checkpoint(path)['meta'] is HistoryBuffer.mean


@pytest.mark.parametrize('methods', [
    {'evil': HistoryBuffer.mean},            # an extra name
    {'mean': HistoryBuffer.max},             # a method under another name
    {'mean': OrderedDict},                   # any other allowed object
], ids=['extra-name', 'swapped', 'foreign'])
def test_a_file_cannot_register_statistics_methods(tmp_path, methods):
    HistoryBuffer()
    before = dict(HistoryBuffer._statistics_methods)
    path = str(tmp_path / 'stats.pth')
    state = dict(max_length=10, _log_history=np.ones(2), _count_history=np.ones(2), statistics_methods=methods)
    torch.save({'hub': _CraftedHistoryBuffer(state)}, path)
    with pytest.raises(UnsafeCheckpointError, match='statistics methods'):
        load_checkpoint(path)
    assert HistoryBuffer._statistics_methods == before


def test_history_buffer_state_is_checked(tmp_path):
    path = str(tmp_path / 'hb.pth')
    torch.save({'hub': _CraftedHistoryBuffer(dict(max_length=3, _log_history=np.ones(2), __class__=1))}, path)
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer'):
        load_checkpoint(path)


@pytest.mark.parametrize('value', [
    np.array([1, 'x'], dtype=object),
    np.array([(1, 2.0)], dtype=[('a', 'i4'), ('b', 'f8')]),
    np.array(['text']),
    np.array([b'bytes']),
    np.array(['2020-01-01'], dtype='datetime64[D]'),
    _Reduces(np.dtype, 'O8', False, True),
    _Reduces(np.dtype, 'V8', False, True),
], ids=['object', 'structured', 'unicode', 'bytes', 'datetime', 'dtype-O8', 'dtype-void'])
def test_numpy_is_limited_to_numeric_and_bool(tmp_path, value):
    path = str(tmp_path / 'numpy.pth')
    torch.save({'x': value}, path)
    with pytest.raises(UnsafeCheckpointError, match='numpy'):
        load_checkpoint(path)


def test_a_dtype_state_cannot_add_objects(tmp_path):
    # numpy's own dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags);
    # flags 63 would mark a float64 as holding Python objects.
    class CraftedDType:
        def __reduce__(self):
            return np.dtype, ('f8', False, True), (3, '<', None, None, None, -1, -1, 63)
    path = str(tmp_path / 'dtype.pth')
    torch.save({'x': CraftedDType()}, path)
    with pytest.raises(UnsafeCheckpointError, match='dtype'):
        load_checkpoint(path)


def test_the_allowlist_is_fixed():
    assert isinstance(CHECKPOINT_GLOBALS, tuple)
    names = {name for _, name in CHECKPOINT_GLOBALS}
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in names and 'builtins.getattr' in names
    # Nothing that can run commands, import modules, open files or build arbitrary objects.
    assert not any(n.split('.')[0] in ('os', 'posix', 'subprocess', 'importlib', 'io', 'sys', 'pickle', 'copyreg')
                   for n in names)
    assert allowlist.HISTORY_BUFFER_METHODS == {n: getattr(HistoryBuffer, n) for n in ('min', 'max', 'current', 'mean')}


def _one_line_error(path, error=CheckpointError, match=None) -> str:
    with pytest.raises(error) as err:
        load_checkpoint(str(path))
    message = str(err.value)
    assert os.path.basename(str(path)) in message and '\n' not in message
    if match:
        assert match in message, message
    return message


def test_malformed_files_get_one_clear_line(tmp_path, training_checkpoint):
    (tmp_path / 'empty.pth').write_bytes(b'')
    _one_line_error(tmp_path / 'empty.pth', CorruptCheckpointError, 'empty (0 bytes)')
    (tmp_path / 'notes.pth').write_text('these are not weights\nsecond line\n')
    _one_line_error(tmp_path / 'notes.pth', CorruptCheckpointError, 'text file')
    (tmp_path / 'page.pth').write_text('<!DOCTYPE html><html><body>404</body></html>')
    _one_line_error(tmp_path / 'page.pth', CorruptCheckpointError, 'HTML page')
    (tmp_path / 'lfs.pth').write_text('version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n')
    _one_line_error(tmp_path / 'lfs.pth', CorruptCheckpointError, 'Git LFS pointer')
    (tmp_path / 'garbage.pth').write_bytes(bytes(range(7, 256)) * 4)
    _one_line_error(tmp_path / 'garbage.pth', CorruptCheckpointError, 'not a PyTorch checkpoint')
    (tmp_path / 'pickle_garbage.pth').write_bytes(b'\x80\x02' + bytes(range(256)))
    _one_line_error(tmp_path / 'pickle_garbage.pth', CheckpointError)
    data = open(training_checkpoint, 'rb').read()
    for cut in (10, len(data) // 2, len(data) - 10):
        (tmp_path / 'cut.pth').write_bytes(data[:cut])
        _one_line_error(tmp_path / 'cut.pth', CorruptCheckpointError, 'truncated or damaged')
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / 'scripted.pth'))
    _one_line_error(tmp_path / 'scripted.pth', CorruptCheckpointError, 'TorchScript')
    _one_line_error(tmp_path / 'nope.pth', CheckpointNotFoundError, 'not found')
    _one_line_error(tmp_path, CheckpointNotFoundError, 'directory')


def test_legacy_and_plain_files_load(tmp_path):
    torch.save({'w': torch.ones(2)}, str(tmp_path / 'legacy.pth'), _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(str(tmp_path / 'legacy.pth'))['w'], torch.ones(2))
    torch.save([1, 2.5, 'x', (None, True)], str(tmp_path / 'plain.pth'))
    assert load_checkpoint(str(tmp_path / 'plain.pth')) == [1, 2.5, 'x', (None, True)]


# ----------------------------------------------------------------------------- URLs and schemes
def test_url_payload_is_refused_and_never_run(http_root, tmp_path):
    root, base = http_root
    marker = str(tmp_path / 'payload_ran')
    torch.save({'meta': _Reduces(os.system, f'touch {marker}')}, str(root / 'evil.pth'))
    message = _one_line_error(f'{base}/evil.pth', UnsafeCheckpointError, 'Nothing from the file was run')
    assert f'{base}/evil.pth' in message and 'delete' in message
    assert not os.path.exists(marker)


def test_url_is_downloaded_once_into_the_hub_cache(http_root, training_checkpoint, tmp_path):
    root, base = http_root
    (root / 'good.pth').write_bytes(open(training_checkpoint, 'rb').read())
    ckpt = load_checkpoint(f'{base}/good.pth')
    assert ckpt['meta']['iter'] == 7
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'good.pth'
    assert cached.is_file()
    (root / 'good.pth').unlink()  # the second load reads the cache
    assert load_checkpoint(f'{base}/good.pth')['meta']['iter'] == 7
    assert [p.name for p in cached.parent.iterdir()] == ['good.pth']  # no partial files left


def test_url_errors_are_one_line(http_root):
    _, base = http_root
    _one_line_error(f'{base}/missing.pth', CheckpointError, 'could not download')
    _one_line_error('http://127.0.0.1:9/closed.pth', CheckpointError, 'could not download')


@pytest.mark.parametrize('source, match', [
    ('pavi://some/model.pth', 'no safe loader'),
    ('ftp://host/model.pth', 'no safe loader'),
    ('open-mmlab://no_such_model', 'no model'),
    ('mmcls://no_such_model', 'no model'),
    ('s3://bucket/model.pth', 'could not fetch'),
])
def test_other_schemes_resolve_or_fail_clearly(source, match):
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(source)
    assert '\n' not in str(err.value) and source.split('://')[0] in str(err.value)


def test_open_mmlab_names_go_through_the_url_path(http_root, monkeypatch, training_checkpoint):
    from mmengine.runner import checkpoint as mc
    root, base = http_root
    (root / 'model_tiny.pth').write_bytes(open(training_checkpoint, 'rb').read())
    monkeypatch.setattr(mc, 'get_external_models', lambda: {'tiny': f'{base}/model_tiny.pth'})
    monkeypatch.setattr(mc, 'get_deprecated_model_names', lambda: {})
    assert load_checkpoint('open-mmlab://tiny')['meta']['iter'] == 7
    torch.save({'meta': _Reduces(os.system, 'true')}, str(root / 'evil_model.pth'))
    monkeypatch.setattr(mc, 'get_external_models', lambda: {'evil': f'{base}/evil_model.pth'})
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint('openmmlab://evil')


def test_the_restricted_reader_turns_only_text_into_latin1_bytes(tmp_path, reader):
    # Protocol 2 spells bytes as _codecs.encode(text, 'latin1'): that loads; other uses of it do not.
    import codecs
    path = str(tmp_path / 'bytes.pth')
    torch.save({'b': b'\x00\xffdata'}, path)
    assert load_checkpoint(path)['b'] == b'\x00\xffdata'
    torch.save({'b': _Reduces(codecs.encode, 'text', 'rot13')}, path)
    if reader == 'restricted':
        with pytest.raises(UnsafeCheckpointError, match='_codecs.encode'):
            load_checkpoint(path)
