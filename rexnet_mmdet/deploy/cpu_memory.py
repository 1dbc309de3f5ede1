"""Keep freed memory for reuse: glibc's malloc tuned for CPU inference on large feature maps.

PyTorch's CPU tensors come from ``malloc``. glibc serves blocks above its mmap threshold (at most
32 MiB by default) with fresh ``mmap`` pages and returns them to the kernel on ``free``; every
such tensor, the next time it is made, page-faults and has the kernel zero each of its pages
again. At detection resolutions most feature maps are that large (a ReXNet x2.2 expansion at
stride 4 of a 1216x800 image is about 100 MiB), so a forward pass spends much of its time in the
kernel. :func:`keep_freed_memory` raises the mmap and trim thresholds (``mallopt``), so that large
blocks come from the heap and freed ones stay there for the next tensor: what jemalloc or
tcmalloc, the allocators PyTorch's CPU performance guides recommend, do by design.

It changes the whole process, for every model in it alike, and nothing that is computed. The
cost: memory freed after a peak is kept by the process rather than returned to the system.
The same from the shell, for any Python program:
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483647``
(glibc 2.35 or later; earlier versions cap the mmap threshold at 32 MiB).
"""
import ctypes
import ctypes.util
import platform
from typing import Optional

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heap. glibc before 2.35 refuses more than 32 MiB (half its
#: heap size limit on 64-bit): there the 32 MiB of :data:`FALLBACK_MMAP_THRESHOLD` is set instead.
MMAP_THRESHOLD = 1 << 30
FALLBACK_MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap is returned to the system only above this.
TRIM_THRESHOLD = 2 ** 31 - 1

_applied: Optional[bool] = None
_threshold = 0


def keep_freed_memory() -> bool:
    """Tune glibc's malloc (see the module docstring) for this process. Returns whether it applies:
    ``False`` where the C library is not glibc (macOS, musl) or refuses the settings; nothing
    changes then. glibc before 2.35 takes an mmap threshold of 32 MiB at most, so there only
    blocks up to that size are kept (:func:`mmap_threshold` says which). Calling it again does
    nothing more."""
    global _applied, _threshold
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    for threshold in (MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD):
        if mallopt(_M_MMAP_THRESHOLD, threshold):
            _threshold = threshold
            break
    else:
        return False
    _applied = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


def mmap_threshold() -> int:
    """The mmap threshold :func:`keep_freed_memory` set, in bytes (0 when it has not applied)."""
    return _threshold if _applied else 0


def describe() -> str:
    """One line for logs and benchmark headers: whether :func:`keep_freed_memory` is in effect."""
    if _applied:
        capped = '' if _threshold == MMAP_THRESHOLD else ', the most this glibc accepts'
        return (f'malloc: freed memory kept for reuse (glibc mallopt: mmap threshold {_threshold >> 20} MiB'
                f'{capped}, trim threshold {TRIM_THRESHOLD >> 20} MiB)')
    return "malloc: the C library's defaults"


__all__ = ['keep_freed_memory', 'mmap_threshold', 'describe', 'MMAP_THRESHOLD', 'FALLBACK_MMAP_THRESHOLD',
           'TRIM_THRESHOLD']
