"""keep_freed_memory: a large tensor made again after being freed reuses the process's memory
instead of page-faulting fresh pages from the kernel (each case in its own process)."""
import platform
import subprocess
import sys

import pytest

SCRIPT = '''
import resource, sys, torch
from rexnet_mmdet.deploy import cpu_memory
if sys.argv[1] == "keep":
    print("applied", cpu_memory.keep_freed_memory(), cpu_memory.keep_freed_memory(), cpu_memory.mmap_threshold())
print(cpu_memory.describe())
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for numel in (64 << 20, 32 << 20):  # 256 MiB, then 128 MiB: above glibc's default mmap threshold
    before = faults()
    x = torch.empty(numel)
    x.fill_(1.0)
    del x
    counts.append(faults() - before)
print("faults", *counts)
'''

PAGES = (256 << 20) // 4096


def _run(mode):
    out = subprocess.run([sys.executable, '-c', SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    first, second = map(int, lines[-1].split()[1:])
    return lines, first, second


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc', reason='glibc only')
def test_freed_memory_is_reused():
    lines, first, second = _run('keep')
    assert lines[0].startswith('applied True True') and 'freed memory kept for reuse' in lines[1]
    if int(lines[0].split()[-1]) < (256 << 20):
        pytest.skip('this glibc (< 2.35) caps the mmap threshold at 32 MiB: 256 MiB blocks are still mmapped')
    assert first > PAGES // 2          # the first tensor's pages are new
    assert second < PAGES // 100       # the second, smaller one lives in them


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc', reason='glibc only')
def test_without_it_every_large_tensor_faults_its_pages_again():
    lines, first, second = _run('system')
    assert "the C library's defaults" in lines[0]
    assert first > PAGES // 2 and second > PAGES // 4  # the second one's 128 MiB are new pages too
