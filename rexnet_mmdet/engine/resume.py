"""Which checkpoint ``--resume`` continues from: the newest complete one in a work dir."""
import os
import os.path as osp
import re
import zipfile
from typing import Optional

_CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def is_readable_checkpoint(filename: str) -> bool:
    """Whether ``filename`` is a complete zip checkpoint (every member's CRC checks out)."""
    try:
        with zipfile.ZipFile(filename) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
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
        with open(pointer, errors='replace') as f:
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


__all__ = ['is_readable_checkpoint', 'find_resume_checkpoint']
