"""The one way this project reads a checkpoint, from any source, without running code from it.

``load_checkpoint(source)`` accepts:

* a local path;
* an ``http://`` / ``https://`` URL: downloaded once into torch hub's cache
  (``$TORCH_HOME/hub/checkpoints``, written under a temporary name and renamed when complete),
  then read from there like a local file;
* the other schemes mmengine's ``CheckpointLoader`` knows: ``torchvision://`` / ``modelzoo://``,
  ``open-mmlab://`` / ``openmmlab://`` and ``mmcls://`` are looked up in mmengine's model tables
  and read through the URL path; ``s3://`` / ``petrel://`` are fetched with mmengine's file
  backend and read from memory; ``pavi://`` is refused (download the file instead).

Every file is read without running code from it, by one of two readers chosen once, by what the
installed torch offers (:data:`READER`):

* ``'weights_only'`` (torch >= 2.6): ``torch.load(weights_only=True)``, torch's own restricted unpickler,
  with a fixed allowlist (:data:`CHECKPOINT_GLOBALS`) added to torch's tensors and plain containers;
* ``'restricted'`` (torch 2.1 to 2.5, whose weights-only allowlist cannot be extended):
  ``torch.load(weights_only=False, pickle_module=...)`` with an unpickler that resolves every global
  through torch's weights-only allowlist plus the same :data:`CHECKPOINT_GLOBALS`, and refuses any
  other before it is called (:mod:`.restricted_unpickler`).

Both accept the same files and refuse the same files with the same messages. ``.safetensors`` files
(recognised by name or content) are read by the safetensors package on every torch: a format that
holds tensors only.

:data:`CHECKPOINT_GLOBALS` covers what an mmengine training checkpoint holds beyond tensors and
containers: the message hub's ``HistoryBuffer`` objects, numpy arrays and scalars of numeric or bool
dtype, and the four statistics methods a ``HistoryBuffer`` pickles by name. The allowlist is built when
this module is imported; nothing in a file can add to it:

* ``HistoryBuffer`` and numpy objects are rebuilt by this module from their pickled state,
  which is checked first: mmengine's ``HistoryBuffer.__setstate__`` (which merges the file's
  statistics methods into a class-level dict) and numpy's ``__setstate__`` never run, a dtype
  is only made from a numeric or bool type code (never ``'O8'``), so no object array can appear;
* ``getattr`` hands out exactly ``HistoryBuffer.min/max/current/mean``.

With the weights-only reader the allowlist is installed in ``torch.serialization``'s safe globals only
for the duration of the load (under a lock) and the user's own safe globals are put back exactly as they
were; the restricted reader changes no global state. Loading leaves
``HistoryBuffer._statistics_methods`` as it was, except that mmengine's four default methods are ensured
when a file held a ``HistoryBuffer`` (what mmengine's own unpickling does), so loaded buffers compute
their statistics.

The allowlist and its stand-ins live in :mod:`.allowlist`.

Errors are :class:`CheckpointError` and its subclasses; every message is one line that names
the file and the problem.
"""
import os
import os.path as osp
import pickle
import re
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch

from .allowlist import CHECKPOINT_GLOBAL_NAMES, CHECKPOINT_GLOBALS, LOAD_LOCK, Refused, materialize
from .restricted_unpickler import RESTRICTED_PICKLE, is_torchscript_archive

#: The readers, and the one this torch gets (module docstring): torch's weights-only unpickler where its
#: allowlist can be extended (``add_safe_globals`` with ``(object, name)`` pairs, torch >= 2.6), else the
#: restricted unpickler.
READERS = ('weights_only', 'restricted')
READER = ('weights_only' if tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 6)
          else 'restricted')


# ----------------------------------------------------------------------------- errors
class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, unsafe, malformed or not fitting."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the given path (or nothing at the URL)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file holds pickled objects outside the allowlist; nothing of it was run."""


class CorruptCheckpointError(CheckpointError):
    """The file is empty, truncated, damaged or not a PyTorch checkpoint at all."""


class MalformedCheckpointError(CheckpointError):
    """The file loads but its content is not what a checkpoint holds (not a dict, bad ``meta`` ...)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's weights do not fit the model they are loaded into."""


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (torch's messages span paragraphs), cut to ``limit`` characters."""
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


# ----------------------------------------------------------------------------- reading a file
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL = 0x80  # first byte of a protocol-2+ pickle: the legacy (non-zip) torch format


def _describe_content(head: bytes) -> str:
    """What a file that is no PyTorch checkpoint looks like, from its first bytes."""
    if head.startswith(b'version https://git-lfs'):
        return 'a Git LFS pointer, not the file itself (run git lfs pull, or download the file)'
    if head.lstrip().lower().startswith((b'<!doctype html', b'<html')):
        return 'an HTML page (a download that returned a web page instead of the file?)'
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return f'unrecognised binary data (starts with {head[:16]!r})'
    first = text.strip().splitlines()[0] if text.strip() else ''
    return f'a text file (starts with {first[:60]!r})'


def _unsafe_names(filename: str) -> List[str]:
    """Names of the pickled globals in ``filename`` outside torch's and this allowlist (read, not run)."""
    try:
        with LOAD_LOCK, _only_these_safe_globals():
            found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # not a zip checkpoint: the load error itself is reported instead
        return []
    return [name for name in found if name not in CHECKPOINT_GLOBAL_NAMES]


class _only_these_safe_globals:
    """Make torch's safe globals exactly :data:`CHECKPOINT_GLOBALS`; put the user's back afterwards."""

    def __enter__(self):
        self.saved = torch.serialization.get_safe_globals()
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(list(CHECKPOINT_GLOBALS))

    def __exit__(self, *exc):
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(self.saved)


def _torch_load(file, map_location, reader: str) -> Any:
    with LOAD_LOCK, warnings.catch_warnings():
        # torch warns about TorchScript archives and unusual pickle protocols: the errors say it.
        warnings.simplefilter('ignore', UserWarning)
        if reader == 'weights_only':
            with _only_these_safe_globals():
                return torch.load(file, map_location=map_location, weights_only=True)
        return torch.load(file, map_location=map_location, weights_only=False, pickle_module=RESTRICTED_PICKLE)


def _is_safetensors(filename: str, head: bytes) -> bool:
    """A ``.safetensors`` name, or content that starts as one: an 8-byte header length, then ``{"``."""
    if filename.endswith('.safetensors'):
        return True
    return len(head) > 10 and head[8:10] == b'{"' and 0 < int.from_bytes(head[:8], 'little') < 100_000_000


def _read_safetensors(filename: str, size: int, map_location) -> Dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f'{filename} is a safetensors file, and reading it needs the safetensors package: '
                              f'pip install safetensors') from None
    device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        return load_file(filename, device=str(device))
    except Exception as e:  # SafetensorError, header errors, OSError ...
        raise CorruptCheckpointError(
            f'could not read {filename} ({size} bytes) as safetensors ({one_line(str(e) or type(e).__name__, 160)}): '
            f'the file is truncated or is not a safetensors file; download it again') from None


def load_checkpoint_file(filename: str, map_location=None) -> Any:
    """Read a local checkpoint file with the fixed allowlist (the reader :data:`READER`); see the module docstring.

    Raises:
        CheckpointNotFoundError: no such file.
        CorruptCheckpointError: empty, truncated, damaged, or not a PyTorch checkpoint.
        UnsafeCheckpointError: it holds pickled objects outside the allowlist (none of them ran).
    """
    reader = READER
    filename = osp.expanduser(str(filename))
    if not osp.exists(filename):
        raise CheckpointNotFoundError(f'checkpoint {filename} not found (absolute path {osp.abspath(filename)})')
    if osp.isdir(filename):
        raise CheckpointNotFoundError(f'checkpoint {filename} is a directory, not a file; give the path of a '
                                      f'.pth file inside it')
    size = osp.getsize(filename)
    if size == 0:
        raise CorruptCheckpointError(f'checkpoint {filename} is empty (0 bytes): was the run killed while saving '
                                     f'it, or the download interrupted? Use an earlier checkpoint or fetch it again')
    with open(filename, 'rb') as f:
        head = f.read(64)
    if _is_safetensors(filename, head):
        return _read_safetensors(filename, size, map_location)
    if not head.startswith(_ZIP_MAGIC) and head[0] != _PICKLE_PROTOCOL:
        raise CorruptCheckpointError(f'{filename} ({size} bytes) is not a PyTorch checkpoint: it is '
                                     f'{_describe_content(head)}')
    if head.startswith(_ZIP_MAGIC) and is_torchscript_archive(filename):
        raise CorruptCheckpointError(_torchscript_message(filename))
    try:
        obj = _torch_load(filename, map_location, reader)
        return materialize(obj)
    except Refused as e:
        raise _unsafe(filename, str(e)) from None
    except pickle.UnpicklingError as e:
        reason = _torch_reason(str(e))
        if reader == 'weights_only':
            names = _unsafe_names(filename)
            if not names:
                match = re.search(r'GLOBAL ([\w.]+)', reason)
                names = [match.group(1)] if match else []
            if names:
                raise _unsafe(filename, f'pickled {", ".join(names)}') from None
            if re.search(r'global|GLOBAL|reduce|build|new object|persistent', reason):
                raise _unsafe(filename, f'pickled objects ({one_line(reason, 160)})') from None
        # The restricted reader refuses through Refused alone: its UnpicklingErrors are damaged data.
        raise CorruptCheckpointError(_corrupt_message(filename, size, e, reason)) from None
    except RecursionError:
        raise _unsafe(filename, 'containers nested too deeply') from None
    except Exception as e:  # torch's reader, the legacy format: many exception types
        raise CorruptCheckpointError(_corrupt_message(filename, size, e)) from None


def _unsafe(filename: str, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'refusing to load checkpoint {filename}: it contains {what}, outside what a checkpoint may hold '
        f'(tensors, plain Python values, numeric numpy arrays, mmengine HistoryBuffers). Nothing from the file '
        f'was run. If you made it yourself, save plain tensors instead (torch.save(model.state_dict(), ...))')


def _torch_reason(message: str) -> str:
    """The line of torch's weights-only error that says what was wrong (not its paragraph on weights_only)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(('Weights only load failed', 'Check the documentation'))]
    return useful[0] if useful else (lines[0] if lines else message)


def _torchscript_message(filename: str) -> str:
    return (f'{filename} is a TorchScript archive (torch.jit.save), not a checkpoint: load it with '
            f'torch.jit.load, or save its weights with torch.save(model.state_dict(), PATH)')


def _corrupt_message(filename: str, size: int, e: Exception, reason: Optional[str] = None) -> str:
    text = one_line(reason or str(e) or type(e).__name__, 160)
    if 'TorchScript' in text:
        return _torchscript_message(filename)
    return (f'checkpoint {filename} ({size} bytes) is truncated or damaged ({type(e).__name__}: {text}): was the '
            f'run killed while saving it, or the download cut short? Use an earlier checkpoint or fetch it again')


# ----------------------------------------------------------------------------- URLs and schemes
def is_url(source: str) -> bool:
    return bool(re.match(r'^https?://', str(source)))


def hash_prefix(name: str) -> Optional[str]:
    """The sha256 prefix a published file's name carries (``rexnetv1_100-1b4dddf4.pth``), checked on download."""
    match = re.search(r'-([a-f0-9]{8,})\.', name)
    return match.group(1) if match else None


def download_checkpoint(url: str, model_dir: Optional[str] = None) -> str:
    """Download ``url`` into torch hub's cache (``$TORCH_HOME/hub/checkpoints``) once; return the path.

    The file is written under a temporary name and renamed when complete (torch's downloader),
    so a cut download never leaves a file under the final name. In a distributed run, local
    rank 0 downloads and the others wait for it.
    """
    from mmengine.dist import barrier, get_dist_info
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    name = osp.basename(url.split('?')[0].split('#')[0])
    if name in ('model.safetensors', 'pytorch_model.bin', '') or name.startswith('.'):
        # Hub files share generic names: keep one cache entry per URL.
        import hashlib
        name = hashlib.sha256(url.encode()).hexdigest()[:8] + '-' + (name.lstrip('.') or 'checkpoint.pth')
    dst = osp.join(model_dir, name)
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(dst):
        os.makedirs(model_dir, exist_ok=True)
        print(f'Downloading {url} to {dst}', flush=True)
        try:
            torch.hub.download_url_to_file(url, dst, hash_prefix=hash_prefix(name), progress=os.isatty(2))
        except Exception as e:  # URLError, HTTPError, timeouts, hash mismatch ...
            raise CheckpointError(
                f'could not download {url}: {one_line(e, 200)}. If this machine has no network, download the '
                f'file elsewhere and give its local path, or put it at {dst}') from None
    if world_size > 1:
        barrier()
    return dst


def _load_url(url: str, map_location=None) -> Any:
    path = download_checkpoint(url)
    try:
        return load_checkpoint_file(path, map_location)
    except CheckpointError as e:
        # Say where the bad file came from and that it stays cached.
        raise type(e)(f'{e} [downloaded from {url}; delete {path} to download it again]') from None


def _mmengine_model_url(source: str) -> Tuple[str, str]:
    """(url or local file, kind) of an ``open-mmlab://`` ... name, from mmengine's tables."""
    from mmengine.runner import checkpoint as mc
    prefix, _, name = source.partition('://')
    prefix += '://'
    try:
        if prefix in ('torchvision://', 'modelzoo://'):
            table = mc.get_torchvision_models()
        elif prefix == 'mmcls://':
            table = mc.get_mmcls_models()
        else:
            table = mc.get_external_models()
            name = mc.get_deprecated_model_names().get(name, name)
    except Exception as e:  # torchvision not installed, unreadable tables
        raise CheckpointError(f'cannot resolve {source}: {one_line(e, 160)}') from None
    if name not in table:
        raise CheckpointNotFoundError(f'{source}: no model {name!r} in mmengine\'s {prefix} table; give a path '
                                      f'or an http(s) URL instead')
    return table[name], prefix


def load_checkpoint(source: str, map_location=None) -> Any:
    """Read a checkpoint from a path, an http(s) URL or an mmengine scheme (module docstring)."""
    source = str(source)
    if is_url(source):
        return _load_url(source, map_location)
    if re.match(r'^(torchvision|modelzoo|open-mmlab|openmmlab|mmcls)://', source):
        target, prefix = _mmengine_model_url(source)
        if is_url(target):
            checkpoint = _load_url(target, map_location)
        else:
            from mmengine.runner.checkpoint import _get_mmengine_home
            checkpoint = load_checkpoint_file(osp.join(_get_mmengine_home(), target), map_location)
        if prefix == 'mmcls://':
            from mmengine.runner.checkpoint import _process_mmcls_checkpoint
            checkpoint = _process_mmcls_checkpoint(checkpoint)
        return checkpoint
    if re.match(r'^(\S+:)?(s3|petrel)://', source):
        return _load_from_object_storage(source, map_location)
    if re.match(r'^[a-zA-Z][\w+.-]*://', source):
        raise CheckpointError(
            f'cannot load {source}: the {source.split("://")[0]}:// scheme has no safe loader here; download the '
            f'file and give its local path (or an http(s) URL)')
    return load_checkpoint_file(source, map_location)


def _load_from_object_storage(source: str, map_location=None) -> Any:
    import tempfile
    from mmengine.fileio import get_file_backend
    try:
        data = get_file_backend(source, backend_args={'backend': 'petrel'}).get(source)
    except Exception as e:  # petrel_client missing, no access ...
        raise CheckpointError(f'could not fetch {source}: {one_line(e, 200)}') from None
    # Read it like a local file (same checks and messages).
    with tempfile.NamedTemporaryFile(suffix='-' + osp.basename(source)) as f:
        f.write(data)
        f.flush()
        try:
            return load_checkpoint_file(f.name, map_location)
        except CheckpointError as e:
            raise type(e)(str(e).replace(f.name, source)) from None


__all__ = [
    'CheckpointError', 'CheckpointNotFoundError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
    'MalformedCheckpointError', 'CheckpointMismatchError', 'CHECKPOINT_GLOBALS', 'CHECKPOINT_GLOBAL_NAMES',
    'load_checkpoint', 'load_checkpoint_file', 'download_checkpoint', 'is_url', 'one_line', 'READER', 'READERS'
]
