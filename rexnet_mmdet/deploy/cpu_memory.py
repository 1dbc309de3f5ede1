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
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483647``.
"""
import ctypes
import ctypes.util
import platform
from typing import Optional

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heap (glibc accepts up to its heap's limit).
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap is returned to the system only above this.
TRIM_THRESHOLD = 2 ** 31 - 1

_applied: Optional[bool] = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc (see the module docstring) for this process. Returns whether it applies:
    ``False`` where the C library is not glibc (macOS, musl) or refuses the settings; nothing
    changes then. Calling it again does nothing more."""
    global _applied
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
    # The trim threshold first: a refused mmap threshold then leaves only a harmless setting behind.
    trim = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    _applied = bool(trim) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return _applied


def describe() -> str:
    """One line for logs and benchmark headers: whether :func:`keep_freed_memory` is in effect."""
    if _applied:
        return (f'malloc: freed memory kept for reuse (glibc mallopt: mmap threshold {MMAP_THRESHOLD >> 20} MiB, '
                f'trim threshold {TRIM_THRESHOLD >> 20} MiB)')
    return "malloc: the C library's defaults"


__all__ = ['keep_freed_memory', 'describe', 'MMAP_THRESHOLD', 'TRIM_THRESHOLD']
