"""The safe loader's reader on a torch without an extensible weights-only unpickler (torch < 2.6).

torch 2.1 to 2.5 have ``torch.load(weights_only=True)``, but its allowlist cannot be extended, so it
refuses every mmengine training checkpoint (the message hub's ``HistoryBuffer`` and numpy values), and it
refuses an explicit ``pickle_module``. There the safe loader reads files with
``torch.load(weights_only=False, pickle_module=RESTRICTED_PICKLE)``: torch builds its unpickler on
:class:`RestrictedUnpickler`, which resolves every global a pickle names through one fixed table and
refuses all others before anything is called. This is the "restricting globals" pattern of Python's
``pickle`` documentation. The table is:

* torch's own weights-only allowlist of that release (tensor and parameter rebuilders, storages, dtypes,
  ``torch.Size``), read from torch, without any globals a user added;
* the plain Python types a protocol-2 pickle (what ``torch.save`` writes) names: ``OrderedDict``,
  ``Counter``, ``set``, ``frozenset``, ``bytearray``, ``complex``, and ``_codecs.encode``, by which it
  spells ``bytes``, here limited to turning text into latin-1 bytes;
* the safe loader's allowlist (:data:`.allowlist.CHECKPOINT_GLOBALS`): the same stand-ins the weights-only
  path uses, so a ``HistoryBuffer``, a numpy array or a dtype is checked by the same code on every torch.

Storages are resolved by torch itself before this table is asked (its wrapper of the unpickler). A
TorchScript archive, which ``torch.load(weights_only=False)`` would hand to ``torch.jit.load``, is refused
before torch sees it (:func:`is_torchscript_archive`).
"""
import _compat_pickle
import pickle
import types
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Dict

from .allowlist import CHECKPOINT_GLOBALS, Refused


def _torch_allowlist() -> Dict[str, Any]:
    """torch's weights-only allowlist (``'module.name' -> object``), without globals a user added."""
    from torch import _weights_only_unpickler as weights_only
    table = dict(weights_only._get_allowed_globals())
    user_added = getattr(weights_only, '_get_user_allowed_globals', None)
    for name in (user_added() if user_added else {}):
        table.pop(name, None)
    return {name: obj for name, obj in table.items() if name.startswith('torch.')}


def _latin1_bytes(text, encoding='latin1') -> bytes:
    """``_codecs.encode`` in a file: protocol 2 spells ``bytes`` as ``_codecs.encode(text, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise Refused(f'_codecs.encode with {type(text).__name__} and {encoding!r:.20} (only text to latin-1 bytes)')
    return text.encode('latin1')


#: Plain Python names a protocol-2 pickle uses for containers and values.
PLAIN_PYTHON = {'collections.OrderedDict': OrderedDict, 'collections.Counter': Counter, 'builtins.set': set,
                'builtins.frozenset': frozenset, 'builtins.bytearray': bytearray, 'builtins.complex': complex,
                '_codecs.encode': _latin1_bytes}


def _allowed_globals() -> Dict[str, Any]:
    table = _torch_allowlist()
    table.update(PLAIN_PYTHON)
    # Names with a newline are the stand-ins' own entries, which no GLOBAL opcode can spell; they are
    # left out so that STACK_GLOBAL, which can, cannot reach them either.
    table.update({name: obj for obj, name in CHECKPOINT_GLOBALS if '\n' not in name})
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves globals only through :func:`_allowed_globals`; anything else is refused."""

    _allowed: Dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 writes Python 2's names (__builtin__.set): read them as pickle itself does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full_name = f'{module}.{name}'
        if not RestrictedUnpickler._allowed:
            RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return RestrictedUnpickler._allowed[full_name]
        except (KeyError, TypeError):
            raise Refused(f'pickled {full_name}') from None


def _load(file, **kwargs) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


#: What ``torch.load`` is given as ``pickle_module``: it uses ``Unpickler`` and ``load`` (legacy files).
RESTRICTED_PICKLE = types.ModuleType('rexnet_mmdet_restricted_pickle')
RESTRICTED_PICKLE.Unpickler = RestrictedUnpickler
RESTRICTED_PICKLE.load = _load
RESTRICTED_PICKLE.UnpicklingError = pickle.UnpicklingError
RESTRICTED_PICKLE.__doc__ = 'pickle, with globals restricted to the safe loader\'s table'


def is_torchscript_archive(filename: str) -> bool:
    """Whether a zip file is a TorchScript archive (``torch.jit.save``): it holds ``constants.pkl``."""
    try:
        with zipfile.ZipFile(filename) as archive:
            return any(name.endswith('constants.pkl') for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


__all__ = ['RESTRICTED_PICKLE', 'RestrictedUnpickler', 'is_torchscript_archive']
