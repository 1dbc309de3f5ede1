"""SIGKILL while a checkpoint is being written: no partial checkpoint is ever visible, the earlier
ones stay intact, and --resume continues from the last complete one."""
import hashlib
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
from tiny_runs import ROOT, run_tool, tool_env, write_tiny_config  # noqa: E402

from rexnet_mmdet.engine.resume import find_resume_checkpoint, is_readable_checkpoint  # noqa: E402

# Trains and kills tools/train.py for real: for make test, not make test-fast.
pytestmark = pytest.mark.slow

#: tools/train.py with checkpoint bytes written slowly (64 KiB every 5 ms), so the test can kill the
#: process while a file is being written, not before or after.
SLOW_WRITER = '''
import runpy, sys, time
from rexnet_mmdet.engine import atomic_backend

def slow_write(f, data):
    for i in range(0, len(data), 1 << 16):
        f.write(data[i:i + (1 << 16)])
        f.flush()
        time.sleep(0.005)

atomic_backend.AtomicLocalBackend._write_data = staticmethod(slow_write)
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _digest(path: str) -> str:
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def test_sigkill_during_checkpoint_write_then_resume(tmp_path):
    config = write_tiny_config(str(tmp_path / 'tiny.py'), str(tmp_path / 'data'), max_iters=6, ckpt_interval=2)
    work_dir = str(tmp_path / 'run')
    proc = subprocess.Popen([sys.executable, '-c', SLOW_WRITER, osp.join(ROOT, 'tools', 'train.py'), config,
                             '--work-dir', work_dir], cwd=ROOT, env=tool_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = re.compile(r'^\.iter_(\d+)\.pth\.partial-\d+$')
    complete_seen = {}
    killed_while_writing = None
    deadline = time.monotonic() + 400
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            names = os.listdir(work_dir) if osp.isdir(work_dir) else []
            for name in names:
                if re.match(r'^iter_\d+\.pth$', name) and name not in complete_seen:
                    # Whenever a checkpoint is visible under its name, it is complete.
                    path = osp.join(work_dir, name)
                    assert is_readable_checkpoint(path), f'{name} visible before it was complete'
                    complete_seen[name] = _digest(path)
            writing = [n for n in names if partial.match(n)]
            # Kill while the second checkpoint (iter 4) is half written: iter_2.pth must survive.
            if 'iter_2.pth' in complete_seen and any(partial.match(n).group(1) == '4' for n in writing):
                part = osp.join(work_dir, [n for n in writing if partial.match(n).group(1) == '4'][0])
                if osp.exists(part) and osp.getsize(part) > (1 << 20):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_while_writing = part
                    break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_while_writing, 'the run ended before it could be killed while writing a checkpoint'
    assert proc.returncode == -signal.SIGKILL
    assert not osp.exists(osp.join(work_dir, 'iter_4.pth'))
    assert find_resume_checkpoint(work_dir) == osp.join(work_dir, 'iter_2.pth')
    assert _digest(osp.join(work_dir, 'iter_2.pth')) == complete_seen['iter_2.pth']

    resumed = run_tool(['train.py', config, '--work-dir', work_dir, '--resume'])
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert f'--resume: continuing from {osp.join(work_dir, "iter_2.pth")}' in resumed.stdout
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout
    for name in ('iter_2.pth', 'iter_4.pth', 'iter_6.pth'):
        assert is_readable_checkpoint(osp.join(work_dir, name)), name
    # The earlier checkpoint is untouched by the kill and by the resumed run.
    assert _digest(osp.join(work_dir, 'iter_2.pth')) == complete_seen['iter_2.pth']
