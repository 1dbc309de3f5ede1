"""The allowlist of the safe loader: the only pickled names a checkpoint may refer to besides torch's.

What a training checkpoint of mmengine holds beyond tensors and containers: the message hub's
``HistoryBuffer`` objects, numpy arrays and scalars of numeric or bool dtype, and the four statistics
methods a ``HistoryBuffer`` pickles by name. Each name is served by a stand-in of this module that
checks the pickled state before anything real is made (:func:`materialize`, after unpickling);
mmengine's and numpy's own ``__setstate__`` never run. See :mod:`.safe_load` for how it is used.
"""
import re
import threading
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
from mmengine.logging import HistoryBuffer


# ----------------------------------------------------------------------------- allowlist
class Refused(Exception):
    """Raised inside the unpickler by the allowlist's rebuilders; the safe loader turns it into UnsafeCheckpointError."""


_STATISTICS_METHODS = ('min', 'max', 'current', 'mean')
#: The methods a pickled HistoryBuffer refers to by name, read once, here, from the class itself.
HISTORY_BUFFER_METHODS: Dict[str, Callable] = {name: getattr(HistoryBuffer, name) for name in _STATISTICS_METHODS}
#: numpy type codes a pickled numeric or bool dtype is made from ('f8', 'i8', 'b1' ...).
_NUMPY_TYPE_CODE = re.compile(r'^(b1|[iu][1248]|f[248]|c(8|16))$')


class _HistoryBufferState:
    """Stands in for ``HistoryBuffer`` while unpickling: keeps the state, runs nothing of mmengine's."""

    def __setstate__(self, state):
        self.state = state


class _DTypeState:
    """Stands in for a numpy dtype while unpickling (made by ``_numpy_dtype`` from a checked code)."""

    def __init__(self, code: str):
        self.code = code
        self.byteorder = '='

    def __setstate__(self, state):
        # numpy writes (3, byteorder, subarray, names, fields, elsize, alignment, flags); for the
        # numeric dtypes allowed here only the byte order varies.
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and state[1] in ('<', '>', '|', '=') and state[2:] == (None, None, None, -1, -1, 0)):
            raise Refused(f'a numpy dtype with state {state!r:.80} (only plain numeric and bool dtypes are allowed)')
        self.byteorder = state[1]

    def dtype(self) -> np.dtype:
        dtype = np.dtype(self.code)
        return dtype if self.byteorder in ('|', '=') else dtype.newbyteorder(self.byteorder)


class _ArrayState:
    """Stands in for a numpy array while unpickling; ``array()`` makes the real one from checked bytes."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1
                and isinstance(state[1], tuple) and all(type(n) is int and n >= 0 for n in state[1])
                and isinstance(state[2], _DTypeState) and isinstance(state[3], bool)
                and isinstance(state[4], (bytes, bytearray))):
            raise Refused('a numpy array whose state is not (1, shape, numeric dtype, fortran flag, bytes)')
        self.state = state

    def array(self) -> np.ndarray:
        if not hasattr(self, 'state'):
            raise Refused('a numpy array without data')
        _, shape, dtype_state, fortran, data = self.state
        dtype = dtype_state.dtype()
        if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise Refused(f'a numpy array of shape {shape} whose data has {len(data)} bytes')
        return np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order='F' if fortran else 'C').copy()


class _NdarrayType:
    """What the name ``numpy.ndarray`` stands for in a file: only a marker for ``_reconstruct``."""


_NDARRAY = _NdarrayType()


def _numpy_dtype(code, align=False, copy=False) -> _DTypeState:
    if not (isinstance(code, str) and _NUMPY_TYPE_CODE.match(code) and align is False and isinstance(copy, bool)):
        raise Refused(f'numpy.dtype({code!r:.40}): only numeric and bool dtypes are allowed')
    return _DTypeState(code)


def _numpy_reconstruct(subtype, shape, typecode) -> _ArrayState:
    if subtype is not _NDARRAY:
        raise Refused('numpy _reconstruct of something other than a plain numpy.ndarray')
    return _ArrayState()


def _numpy_scalar(dtype_state, data=None):
    if not isinstance(dtype_state, _DTypeState) or not isinstance(data, bytes):
        raise Refused('a numpy scalar that is not a numeric or bool value')
    dtype = dtype_state.dtype()
    if len(data) != dtype.itemsize:
        raise Refused(f'a numpy {dtype} scalar with {len(data)} bytes of data')
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _history_buffer_getattr(owner, name):
    """``builtins.getattr`` in a file: only ``HistoryBuffer.min/max/current/mean``."""
    if owner is _HistoryBufferState and isinstance(name, str) and name in HISTORY_BUFFER_METHODS:
        return HISTORY_BUFFER_METHODS[name]
    owner_name = 'HistoryBuffer' if owner is _HistoryBufferState else getattr(owner, '__name__', type(owner).__name__)
    raise Refused(f'getattr({owner_name}, {name!r:.40}); only the '
                   f'statistics methods of mmengine HistoryBuffer ({", ".join(_STATISTICS_METHODS)}) may be looked up')


def _numpy_names(name: str) -> List[str]:
    # numpy 1.x pickles under numpy.core, numpy 2.x under numpy._core.
    return [f'numpy.core.multiarray.{name}', f'numpy._core.multiarray.{name}']


#: The names a checkpoint may refer to besides torch's own, and what each stands for. The
#: stand-in classes are listed under names with a newline, which no pickle can spell (a
#: GLOBAL reads module and name up to a newline each), so a file cannot ask for them directly.
CHECKPOINT_GLOBALS: Tuple[Tuple[Any, str], ...] = tuple(
    [(_HistoryBufferState, 'mmengine.logging.history_buffer.HistoryBuffer'),
     (_history_buffer_getattr, 'builtins.getattr'),
     (_numpy_dtype, 'numpy.dtype'),
     (_NDARRAY, 'numpy.ndarray')]
    + [(_numpy_reconstruct, n) for n in _numpy_names('_reconstruct')]
    + [(_numpy_scalar, n) for n in _numpy_names('scalar')]
    + [(_DTypeState, 'rexnet_mmdet\n_DTypeState'), (_ArrayState, 'rexnet_mmdet\n_ArrayState')])
#: The allowed names, for messages and checks.
CHECKPOINT_GLOBAL_NAMES = frozenset(name for _, name in CHECKPOINT_GLOBALS if '\n' not in name)

LOAD_LOCK = threading.RLock()


# ----------------------------------------------------------------------------- after unpickling
def materialize(obj: Any) -> Any:
    """Replace the stand-ins in ``obj`` by real numpy objects and HistoryBuffers (checked)."""
    memo: Dict[int, Any] = {}
    found_buffer = []

    def visit(o):
        key = id(o)
        if key in memo:
            return memo[key]
        if isinstance(o, _ArrayState):
            memo[key] = out = o.array()
        elif isinstance(o, _DTypeState):
            memo[key] = out = o.dtype()
        elif isinstance(o, _HistoryBufferState):
            memo[key] = out = _history_buffer(o, visit)
            found_buffer.append(True)
        elif type(o) is list:
            memo[key] = o
            o[:] = [visit(v) for v in o]
            out = o
        elif isinstance(o, dict):  # dict, OrderedDict, Counter: same object, entries replaced
            memo[key] = o
            items = [(visit(k), visit(v)) for k, v in o.items()]
            o.clear()
            o.update(items)
            if type(o) is not dict and getattr(o, '__dict__', None):
                o.__dict__.update({k: visit(v) for k, v in o.__dict__.items()})
            out = o
        elif type(o) is tuple:
            out = tuple(visit(v) for v in o)
            memo[key] = out
        elif type(o) is set:
            memo[key] = o
            items = [visit(v) for v in o]
            o.clear()
            o.update(items)
            out = o
        else:
            out = o
        return out

    result = visit(obj)
    if found_buffer:
        # What mmengine's own unpickling does (setdefault of its four methods, nothing else), so
        # loaded buffers compute statistics even in a process that never made a HistoryBuffer.
        HistoryBuffer._set_default_statistics(HistoryBuffer.__new__(HistoryBuffer))
    return result


def _history_buffer(stand_in: _HistoryBufferState, visit) -> HistoryBuffer:
    state = getattr(stand_in, 'state', None)
    if not isinstance(state, dict) or not set(state) <= {'max_length', '_log_history', '_count_history',
                                                         'statistics_methods'}:
        raise Refused('a HistoryBuffer with unexpected state (expected max_length, _log_history, '
                       '_count_history, statistics_methods)')
    methods = state.get('statistics_methods', {})
    # The pickled methods are the class-level ones of the writing process: only mmengine's own
    # four can be named (see _history_buffer_getattr); they are checked, never registered.
    if not isinstance(methods, dict) or any(HISTORY_BUFFER_METHODS.get(k) is not v for k, v in methods.items()):
        raise Refused('a HistoryBuffer whose statistics methods are not mmengine\'s min/max/current/mean')
    buffer = HistoryBuffer.__new__(HistoryBuffer)
    max_length = state.get('max_length', 1000000)
    if type(max_length) is not int or max_length < 1:
        raise Refused(f'a HistoryBuffer with max_length {max_length!r:.40}')
    buffer.max_length = max_length
    for name in ('_log_history', '_count_history'):
        value = visit(state.get(name, _empty_history()))
        if not isinstance(value, np.ndarray) or value.ndim != 1:
            raise Refused(f'a HistoryBuffer whose {name} is not a 1-d numeric array')
        setattr(buffer, name, value)
    return buffer


def _empty_history() -> np.ndarray:
    return np.array([])


__all__ = ['CHECKPOINT_GLOBALS', 'CHECKPOINT_GLOBAL_NAMES', 'HISTORY_BUFFER_METHODS', 'LOAD_LOCK', 'Refused', 'materialize']
