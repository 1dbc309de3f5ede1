"""Loading mmengine training checkpoints safely, and finding the one to resume from.

Since torch 2.6, ``torch.load`` only unpickles tensors and plain containers
(``weights_only=True``). mmengine 0.10's local checkpoint loader calls ``torch.load``
without arguments, so a checkpoint that mmengine itself wrote (its ``message_hub`` holds
``HistoryBuffer`` objects with numpy arrays) cannot be resumed. The common workaround,
``weights_only=False``, lets any checkpoint run code on load.

``load_checkpoint_file`` keeps ``weights_only=True`` and allows, in addition, exactly the
classes mmengine writes into a training checkpoint (``TRAINING_CHECKPOINT_GLOBALS``). A
file carrying any other pickled global (for instance one whose ``__reduce__`` calls
``os.system``) is refused with ``UnsafeCheckpointError``, before any of it runs.

``register_safe_checkpoint_loader()`` (called when this package is imported) installs it
as mmengine's loader for local paths, so ``Runner.resume``, ``load_from`` and
``tools/test.py`` all go through it.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _restricted_getattr(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling.

    Pickle protocol 2 stores a function defined in a class as ``getattr(Class, 'name')``;
    mmengine's ``HistoryBuffer`` pickles its statistics methods (``HistoryBuffer.mean`` ...)
    that way. A general ``getattr`` would let a file reach any attribute of any allowed
    object, so only those methods are handed out.
    """
    allowed = set(_HISTORY_BUFFER_METHODS) | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'the checkpoint asks for getattr({owner!r}, {name!r}); only the statistics methods of '
        f'mmengine HistoryBuffer ({", ".join(sorted(allowed))}) may be looked up')


def _numpy_globals() -> List:
    """The numpy functions and types that pickled arrays and scalars refer to, under the names
    numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) write."""
    core = getattr(np, '_core', None) or np.core
    found: List = [np.ndarray, np.dtype]
    # numpy >= 1.25 gives each dtype its own class (numpy.dtypes.Float64DType ...), which a
    # pickled dtype is rebuilt as: the numeric and bool ones (not object, not void).
    found += sorted({type(np.dtype(code)) for code in np.typecodes['AllFloat'] + np.typecodes['AllInteger'] + '?'}
                    - {np.dtype}, key=lambda t: t.__name__)
    for func in (core.multiarray._reconstruct, core.multiarray.scalar):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            found.append((func, f'{module}.{func.__name__}'))
    return found


#: Everything besides tensors and plain containers that an mmengine training checkpoint holds
#: (found with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on checkpoints written
#: by mmengine 0.10): the message hub's ``HistoryBuffer`` objects with their numpy arrays and
#: statistics methods, and numpy scalars in the hub's runtime info.
TRAINING_CHECKPOINT_GLOBALS: List = [HistoryBuffer, (_restricted_getattr, 'builtins.getattr')] + _numpy_globals()
_ALLOWED_NAMES = {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
                  for g in TRAINING_CHECKPOINT_GLOBALS}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allowed set; nothing of it was run."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is incomplete or damaged (e.g. the run was killed while saving it)."""


def _unsafe_globals(filename: str) -> List[str]:
    """Names of the pickled globals in ``filename`` that are not allowed (read, not run)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # not a zip checkpoint: the load error itself is reported instead
        return []
    return [name for name in found if name not in _ALLOWED_NAMES]


def load_checkpoint_file(filename: str, map_location=None) -> dict:
    """``torch.load`` with ``weights_only=True`` plus the classes of mmengine training checkpoints.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: it carries other pickled objects (they are not executed).
        CorruptCheckpointError: it is truncated or damaged.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found (absolute path {osp.abspath(filename)})')
    # HistoryBuffer.__setstate__ merges the file's statistics methods into a class-level dict:
    # put it back afterwards, so a file cannot change how later buffers compute statistics.
    statistics_methods = dict(HistoryBuffer._statistics_methods)
    try:
        with torch.serialization.safe_globals(TRAINING_CHECKPOINT_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(filename)
        if not unsafe:
            match = re.search(r'(?:GLOBAL|global) ([\w.]+)', str(e))
            unsafe = [match.group(1)] if match else []
        what = ', '.join(unsafe) if unsafe else 'objects outside the allowed set'
        # torch's message: a generic paragraph, then the actual reason after "WeightsUnpickler error:".
        reason = str(e).split('WeightsUnpickler error:')[-1].strip().split('\n')[0]
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: it contains pickled {what}, which loading would '
            f'execute; an mmengine training checkpoint holds only tensors, plain Python values, numpy '
            f'arrays and mmengine HistoryBuffer objects. Nothing from the file was run. If you made this '
            f'file yourself, save plain tensors instead (torch.save(model.state_dict(), ...)). '
            f'(torch: {reason})') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        text = str(e)
        if 'zip archive' in text or 'central directory' in text or isinstance(e, (EOFError, zipfile.BadZipFile)) \
                or 'unexpected EOF' in text or 'file read failed' in text:
            raise CorruptCheckpointError(
                f'checkpoint {filename} is incomplete or damaged ({text.splitlines()[0]}); was the run killed '
                f'while saving it? Resume from an earlier checkpoint of the same work dir') from None
        raise
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(statistics_methods)


def _load_from_local(filename: str, map_location=None) -> dict:
    return load_checkpoint_file(filename, map_location)


def register_safe_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints with ``load_checkpoint_file`` (idempotent)."""
    # '' is the scheme of local paths; force=True replaces mmengine's own loader.
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)


_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def is_readable_checkpoint(filename: str) -> bool:
    """Whether ``filename`` is a complete zip checkpoint (every member's CRC checks out)."""
    try:
        with zipfile.ZipFile(filename) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint in ``work_dir``, or None.

    mmengine's ``last_checkpoint`` pointer is tried first; if it is missing, empty or names a
    damaged file (a run killed while saving), the newest complete ``iter_*.pth`` /
    ``epoch_*.pth`` is used instead. The caller should say which one it picked.
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates.append(named if osp.isabs(named) else osp.join(work_dir, osp.basename(named)))
    if osp.isdir(work_dir):
        numbered = []
        for name in os.listdir(work_dir):
            match = _CKPT_NAME.match(name)
            if match:
                numbered.append((osp.getmtime(osp.join(work_dir, name)), int(match.group(1)), name))
        candidates += [osp.join(work_dir, name) for _, _, name in sorted(numbered, reverse=True)]
    for path in candidates:
        if osp.isfile(path) and is_readable_checkpoint(path):
            return path
    return None
