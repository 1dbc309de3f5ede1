"""Timing on a shared machine: the interleaved timer, what a timing depends on (machine info) and
a warning when other processes keep the cores busy.

Every model of a comparison is timed in the same process and the same run, their calls
interleaved (round ``r`` runs the cases in an order rotated by ``r``), after warm-up calls, so
that load changes and CPU clock drift reach all of them alike.
"""
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch


# ----------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (or what ``platform`` knows)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown'


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> Optional[Tuple[float, float, float]]:
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except (AttributeError, OSError):
        return None


def machine_info(device: str = 'cpu') -> Dict[str, Any]:
    """What a timing depends on: CPU, cores, threads, library versions, load, GPU."""
    info: Dict[str, Any] = dict(
        cpu=cpu_model(), cores=usable_cores(), logical_cpus=os.cpu_count(),
        torch=torch.__version__, threads=torch.get_num_threads(),
        mkldnn=bool(torch.backends.mkldnn.is_available()), python=platform.python_version(),
        load_average=load_average(), device=device)
    try:
        import mmdet
        info['mmdet'] = mmdet.__version__
    except ImportError:
        pass
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    return info


def format_machine(info: Dict[str, Any]) -> str:
    text = (f"CPU: {info['cpu']} ({info['cores']} usable cores of {info['logical_cpus']}), "
            f"torch {info['torch']}, {info['threads']} threads")
    if 'mmdet' in info:
        text += f", mmdet {info['mmdet']}"
    if info.get('load_average'):
        text += ', load average %s' % ' '.join(f'{v:.2f}' for v in info['load_average'])
    if info.get('gpu'):
        text += f", GPU: {info['gpu']}"
    return text


def busy_cores(interval: float = 1.0) -> Optional[float]:
    """How many cores' worth of CPU time the whole machine used over ``interval`` seconds (from
    ``/proc/stat``; this process sleeps meanwhile, so it is the others' use). ``None`` off Linux."""
    def read() -> Optional[Tuple[int, int]]:
        try:
            with open('/proc/stat', encoding='utf-8') as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]) - idle, sum(values[:8])

    first = read()
    time.sleep(interval)
    second = read()
    if first is None or second is None or second[1] == first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def busy_warning(threads: int, cores: Optional[int] = None) -> Optional[str]:
    """A warning when other processes keep the cores busy: threads then wait on each other at
    every OpenMP barrier, and times grow many-fold (not in proportion), ratios included."""
    cores = cores or usable_cores()
    busy = busy_cores()
    if busy is None or busy + threads <= cores + 0.25:
        return None
    fewer = max(1, int(cores - busy))
    return (f'warning: other processes keep {busy:.1f} of the {cores} cores busy: they compete with the '
            f'{threads} thread(s) and the timings will be inflated and uneven; wait for an idle machine'
            + (f' or use --threads {fewer}' if fewer < threads else ''))


def check_device(device: str) -> torch.device:
    """``'cpu'`` or ``'cuda[:i]'``, failing clearly when CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f'unknown device {device!r}: use cpu or cuda (cuda:0 ...)') from e
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} asked for, but this torch ({torch.__version__}) sees no CUDA '
                         f'GPU; use --device cpu')
    if dev.type not in ('cpu', 'cuda'):
        raise ValueError(f'device {device!r} is not supported: use cpu or cuda')
    return dev


# ----------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def warm_up(cases: Dict[str, Callable[[], Any]], rounds: int, device: torch.device = torch.device('cpu'),
            log: Optional[Callable[[str], None]] = None) -> float:
    """Call every case ``rounds`` times, untimed (first calls: kernel loading, cuDNN's autotuning when
    it is on, graph captures); returns the seconds it took."""
    start = time.perf_counter()
    for r in range(rounds):
        for case in cases.values():
            case()
        sync(device)
        if log:
            log(f'  warm-up {r + 1}/{rounds} done')
    return time.perf_counter() - start


def time_interleaved(cases: Dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                     device: torch.device = torch.device('cpu'),
                     log: Optional[Callable[[str], None]] = None, block: int = 1,
                     pause: float = 0.0, phases: Optional[Dict[str, float]] = None) -> Dict[str, List[float]]:
    """Seconds of each of ``repeats`` calls of every case, the cases' calls interleaved.

    ``warmup`` rounds run first and are not timed. Each round calls every case ``block`` times
    in a row (timing each call), in the cases' order rotated by the round number, so that no
    case always follows the same one. ``pause`` seconds of sleep before each block let thread
    pools that spin after work (ONNX Runtime's, OpenMP's) go quiet, so that one runtime's
    spinning threads do not slow the next one down. ``phases``, when given, gets the seconds of the
    warm-up rounds (``warmup_s``, where cuDNN's autotuning and graph captures fall) and of the timed
    ones (``timed_s``).
    """
    if repeats < 1:
        raise ValueError(f'repeats must be at least 1, got {repeats}')
    if warmup < 0:
        raise ValueError(f'warmup must be 0 or more, got {warmup}')
    if block < 1:
        raise ValueError(f'block must be at least 1, got {block}')
    names = list(cases)
    times: Dict[str, List[float]] = {n: [] for n in names}
    warmup_s = warm_up(cases, warmup, device, log)
    begin = time.perf_counter()
    rounds = -(-repeats // block)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if pause:
                time.sleep(pause)
            for _ in range(min(block, repeats - len(times[name]))):
                sync(device)
                start = time.perf_counter()
                cases[name]()
                sync(device)
                times[name].append(time.perf_counter() - start)
        if log:
            log(f'  round {r + 1}/{rounds}: ' + ', '.join(f'{n} {times[n][-1] * 1e3:.1f} ms' for n in names))
    if phases is not None:
        phases.update(warmup_s=warmup_s, timed_s=time.perf_counter() - begin)
    return times


def medians(times: Dict[str, List[float]]) -> Dict[str, float]:
    """Median seconds of each case of :func:`time_interleaved`'s result."""
    return {name: statistics.median(t) for name, t in times.items()}


__all__ = ['cpu_model', 'usable_cores', 'load_average', 'machine_info', 'format_machine', 'busy_cores',
           'busy_warning', 'check_device', 'sync', 'warm_up', 'time_interleaved', 'medians']
