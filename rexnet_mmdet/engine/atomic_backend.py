"""A local file backend whose checkpoints are written whole or not at all (registered in mmengine as
:data:`ATOMIC_BACKEND` when this module is imported)."""
import os
import os.path as osp

from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend

ATOMIC_BACKEND = 'rexnet_mmdet_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """Local files written whole or not at all: a temporary name in the same folder, then ``os.replace``.

    A run killed while saving leaves at most a hidden ``.NAME.partial-PID`` file; the previous
    checkpoints and the pointer to them are untouched.
    """

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        tmp = osp.join(folder, f'.{osp.basename(filepath)}.partial-{os.getpid()}')
        try:
            with open(tmp, 'wb') as f:
                self._write_data(f, obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    @staticmethod
    def _write_data(f, data: bytes) -> None:
        f.write(data)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend']
