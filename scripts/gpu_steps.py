"""Steps under one time budget, for scripts/gpu_check.py and scripts/gpu_benchmarks.py.

Standard library only: it runs before the project's packages are installed.

- Every step is a command in a process group of its own, its output unbuffered in OUTDIR/<step>.log.
  It may run for what is left of the budget (and at most its own cap); a step that runs out has its
  whole process group ended (SIGTERM, then SIGKILL), children included.
- OUTDIR/summary.txt is rewritten (atomically) whenever a step starts or ends: one line per step,
  passed / failed / cut / skipped with its time, and the last lines of the log of a step that failed.
  A command stopped at any moment (SIGTERM, SIGINT, SIGHUP: its current step's group is ended first)
  leaves everything measured so far on disk.
- Checkpoints, ONNX files and data go to a scratch folder outside OUTDIR.
"""
import argparse
import ctypes
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Seconds a step gets to end after SIGTERM before SIGKILL; kept back from every step's limit.
GRACE_S = 5
#: A step is not started with fewer seconds than this left.
MIN_STEP_S = 3
#: Lines of a failed step's log that the summary repeats.
TAIL_LINES = 12
#: What may be copied into OUTDIR from a scratch folder (text, tables, JSON, pictures), and how large.
SMALL_SUFFIXES = ('.log', '.json', '.txt', '.md', '.png', '.py', '.xml', '.csv')
SMALL_FILE_BYTES = 1 << 20
#: A step's log over this is cut down to its first and last parts once the step ends.
LOG_BYTES = 1 << 20


class Stopped(Exception):
    """The whole command got a signal to stop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def _child_dies_with_parent() -> None:
    """In the step's first process: SIGTERM when this runner dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _descendants(pid: int) -> List[int]:
    """Every process below ``pid`` (read from /proc), so that one that left the group is ended too."""
    parents: Dict[int, int] = {}
    for entry in os.listdir('/proc') if osp.isdir('/proc') else []:
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat', 'rb') as f:
                    parents[int(entry)] = int(f.read().rsplit(b')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _signal_all(pgid: int, pids: Sequence[int], sig: int) -> None:
    for target in [None] + list(pids):
        try:
            os.killpg(pgid, sig) if target is None else os.kill(target, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end_group(proc: subprocess.Popen, grace: float = GRACE_S) -> None:
    """End ``proc``'s process group and every descendant: SIGTERM, up to ``grace`` s, then SIGKILL."""
    pids = _descendants(proc.pid)
    _signal_all(proc.pid, pids, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_all(proc.pid, pids + _descendants(proc.pid), signal.SIGKILL)
    proc.wait()


def _show(cmd: Sequence[str]) -> str:
    """The command line as logged: an inline script shows as <script>."""
    return ' '.join('<script>' if '\n' in c else c for c in cmd)


def _write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def _trim(path: str, limit: int = LOG_BYTES) -> None:
    """Keep a log under ``limit`` bytes: its first fifth and its end, with a line where the middle was."""
    size = osp.getsize(path)
    if size <= limit:
        return
    with open(path, 'rb') as f:
        head = f.read(limit // 5)
        f.seek(size - (limit - limit // 5))
        tail = f.read()
    with open(path, 'wb') as f:
        f.write(head + f'\n[... {size - len(head) - len(tail)} bytes of this log left out ...]\n'.encode() + tail)


def _tail(path: str, lines: int = TAIL_LINES) -> List[str]:
    try:
        with open(path, 'rb') as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 16384))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


class Budget:
    """One command's steps under one budget of ``budget_s`` seconds, reported in ``out``."""

    def __init__(self, title: str, out: str, budget_s: float, scratch: str, caps: Optional[Dict[str, float]] = None,
                 planned: Sequence[str] = ()):
        self.title, self.out, self.budget_s, self.scratch = title, out, float(budget_s), scratch
        self.planned = list(planned)
        self.caps = dict(caps or {})
        self.start = time.monotonic()
        self.started_at = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())
        self.steps: List[dict] = []
        self.current: Optional[dict] = None
        os.makedirs(out, exist_ok=True)
        os.makedirs(scratch, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _raise_stopped)
        self.write_summary()

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def record(self, name: str, status: str, seconds: float = 0.0, note: str = '', tail=()) -> dict:
        entry = dict(name=name, status=status, seconds=round(seconds, 1), note=note, tail=list(tail))
        self.steps.append(entry)
        self.write_summary()
        return entry

    def run(self, name: str, cmd: Sequence[str], cap: Optional[float] = None, env: Optional[dict] = None,
            after: Optional[Callable[[str, str], str]] = None) -> str:
        """Run ``cmd`` as step ``name`` (log: OUTDIR/<name>.log) for at most ``cap`` seconds (or the
        cap given on the command line) and never beyond the budget; returns passed, failed or cut.
        ``after(log_path, status)`` may add a note to the step's summary line."""
        cap = self.caps.get(name, cap)
        limit = self.left() - GRACE_S
        if cap is not None:
            limit = min(limit, cap)
        log = osp.join(self.out, f'{name}.log')
        if limit < MIN_STEP_S:
            self.record(name, 'cut', note=f'not started: {max(0, self.left()):.0f} s of the {self.budget_s:.0f} s '
                                          f'budget left')
            return 'cut'
        full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        self.current = dict(name=name, status='running', seconds=0.0, note=f'limit {limit:.0f} s', tail=[],
                            since=time.monotonic())
        self.write_summary()
        print(f'[{name}] running (limit {limit:.0f} s, log {log}): {_show(cmd)}', flush=True)
        t0 = time.monotonic()
        with open(log, 'wb', buffering=0) as f:
            f.write(f'$ {_show(cmd)}\n'.encode())
            # coreutils' timeout leads the step's group: should this runner die (even by SIGKILL), its parent-death
            # signal makes timeout end the whole group, as it also would once the step overstays by far.
            backstop = ['timeout', '-k', '2', str(int(limit + 2 * GRACE_S))] if shutil.which('timeout') else []
            proc = subprocess.Popen(backstop + list(cmd), cwd=ROOT, env=full_env, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_child_dies_with_parent)
            try:
                rc = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                end_group(proc)
                rc = None
            except Stopped as stop:
                end_group(proc, grace=1)
                self.current = None
                self.record(name, 'cut', time.monotonic() - t0, f'the whole command was stopped ({stop})',
                            _tail(log))
                raise
        self.current = None
        seconds = time.monotonic() - t0
        _trim(log)
        if rc is None:
            status, note = 'cut', f'stopped at its limit of {limit:.0f} s'
        elif rc == 0:
            status, note = 'passed', ''
        else:
            status, note = 'failed', f'exit status {rc}'
        extra = after(log, status) if after else ''
        note = '; '.join(n for n in (note, extra) if n)
        self.record(name, status, seconds, note, _tail(log) if status != 'passed' else ())
        print(f'[{name}] {status} in {seconds:.0f} s' + (f' ({note})' if note else ''), flush=True)
        return status

    def summary(self) -> str:
        lines = [f'{self.title}: {self.out}; budget {self.budget_s:.0f} s; started {self.started_at}']
        width = max([12] + [len(s['name']) for s in self.steps])
        for s in self.steps + ([self.current] if self.current else []):
            if s['status'] == 'running':
                lines.append(f'{s["name"]:<{width}}  running  (started {s["since"] - self.start:.0f} s into the budget; '
                             f'{s["note"]})')
                continue
            line = f'{s["name"]:<{width}}  {s["status"]:<7}  {s["seconds"]:5.0f} s'
            lines.append(line + (f'  ({s["note"]})' if s['note'] else ''))
            lines += [f'    | {t}' for t in s['tail']]
        elapsed = time.monotonic() - self.start
        counts = {k: sum(s['status'] == k for s in self.steps) for k in ('passed', 'failed', 'cut', 'skipped')}
        lines.append(f'{elapsed:.0f} s of the {self.budget_s:.0f} s budget: '
                     + ', '.join(f'{v} {k}' for k, v in counts.items()))
        return '\n'.join(lines) + '\n'

    def write_summary(self) -> None:
        _write(osp.join(self.out, 'summary.txt'), self.summary())
        _write(osp.join(self.out, 'summary.json'), json.dumps(
            dict(title=self.title, budget_s=self.budget_s, started=self.started_at,
                 elapsed_s=round(time.monotonic() - self.start, 1), steps=self.steps,
                 running=self.current['name'] if self.current else None), indent=1))

    def finish(self, stopped: bool = False) -> int:
        """Give every planned step that did not run its line, print the summary; 0 when every step
        passed or was skipped."""
        done = {s['name'] for s in self.steps}
        for name in self.planned:
            if name not in done:
                cut = stopped or self.left() - GRACE_S < MIN_STEP_S
                note = ('not started: the command was stopped' if stopped else 'not started: the budget is spent'
                        if cut else 'not run: a step it needs did not pass')
                self.steps.append(dict(name=name, status='cut' if cut else 'skipped', seconds=0.0, tail=[], note=note))
        order = ['hang', 'install', 'environment', 'gpu'] + self.planned
        self.steps.sort(key=lambda s: order.index(s['name']) if s['name'] in order else len(order))
        self.write_summary()
        print('\n' + self.summary(), end='', flush=True)
        return 0 if all(s['status'] in ('passed', 'skipped') for s in self.steps) else 1


def collect_small(src: str, dst: str, limit: int = SMALL_FILE_BYTES) -> int:
    """Copy the small text, table and picture files under ``src`` into ``dst`` (same layout);
    checkpoints, ONNX files and anything over ``limit`` bytes stay behind. Returns the count."""
    copied = 0
    for folder, _, names in os.walk(src):
        for name in names:
            path = osp.join(folder, name)
            if name.endswith(SMALL_SUFFIXES) and osp.getsize(path) <= limit:
                target = osp.join(dst, osp.relpath(path, src))
                os.makedirs(osp.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
                copied += 1
    return copied


# ----------------------------------------------------------------------------- shared steps
def parse_args(prog: str, description: str, default_budget: float, argv=None,
               add: Optional[Callable[[argparse.ArgumentParser], None]] = None) -> argparse.Namespace:
    """The options both commands take (``add`` adds a command's own)."""
    parser = argparse.ArgumentParser(prog=f'scripts/{prog}.sh', description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('outdir', nargs='?', default=os.environ.get('OUT') or osp.join('work_dirs', prog),
                        help='where the logs, tables and summary.txt go (default: $OUT, else work_dirs/NAME)')
    parser.add_argument('--budget', type=float, default=float(os.environ.get('GPU_BUDGET_S', default_budget)),
                        help=f'seconds for all steps together (default: $GPU_BUDGET_S, else {default_budget:.0f})')
    parser.add_argument('--dry-run', action='store_true',
                        help='rehearse every step on the CPU at tiny sizes (CUDA hidden): checks the plumbing; '
                             'nothing it prints is a measurement')
    parser.add_argument('--scratch', default=os.environ.get('GPU_SCRATCH'),
                        help='folder for checkpoints, data and other large files, outside OUTDIR (default: '
                             '$GPU_SCRATCH, else a folder under the system temporary folder)')
    parser.add_argument('--cap', nargs='+', default=[], metavar='STEP=SECONDS',
                        help='a step\'s own limit in seconds (e.g. --cap compile=30)')
    parser.add_argument('--hang-step', action='store_true',
                        help='first run a step that never ends (a process and its child sleeping): shows that '
                             'the budget holds and the whole group is ended')
    parser.add_argument('--wheels', default=os.environ.get('GPU_WHEELS', '.gpu'),
                        help='folder of wheels installed when mmcv, mmdet and mmengine do not import (default: '
                             '$GPU_WHEELS, else .gpu)')
    parser.add_argument('--site', default=os.environ.get('GPU_SITE', osp.join('/tmp', 'rexnet-mmdet-site')),
                        help='where the wheels are installed (default: $GPU_SITE, else /tmp/rexnet-mmdet-site)')
    if add:
        add(parser)
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f'--budget must be positive, got {args.budget:g}')
    caps = {}
    for item in args.cap:
        name, _, value = item.partition('=')
        try:
            caps[name] = float(value)
        except ValueError:
            parser.error(f'--cap takes STEP=SECONDS, got {item!r}')
    args.caps = caps
    args.outdir = osp.abspath(args.outdir)
    args.scratch = osp.abspath(args.scratch or osp.join(os.environ.get('TMPDIR', '/tmp'),
                                                         f'rexnet-mmdet-{prog}-scratch'))
    if args.scratch == args.outdir or args.scratch.startswith(args.outdir + os.sep):
        parser.error(f'--scratch {args.scratch} is inside OUTDIR {args.outdir}: give a folder outside it')
    return args


def run_plan(prog: str, args: argparse.Namespace, planned: Sequence[str],
             steps: Callable[[Budget, argparse.Namespace], None]) -> int:
    """Run ``steps(budget, args)`` under the budget (after the hang step when asked for) and print the
    summary; the exit status: 0 when every step passed or was skipped, 1 otherwise, 128 + the signal
    number when the command was stopped."""
    if args.dry_run:
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    os.environ['MPLBACKEND'] = 'Agg'
    budget = Budget(prog + (' (dry run on the CPU)' if args.dry_run else ''), args.outdir, args.budget,
                    args.scratch, args.caps, ['install', 'environment'] + list(planned))
    try:
        if args.hang_step:
            budget.run('hang', [sys.executable, '-c', HANG, osp.join(args.scratch, 'hang.pids')])
        steps(budget, args)
    except Stopped as stop:
        budget.finish(stopped=True)
        return 128 + stop.signum
    return budget.finish()


#: A step that never ends: a child process, then both sleep; their pids go to argv[1].
HANG = '''
import subprocess, sys, time
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'])
open(sys.argv[1], 'w').write(f'{child.pid} ' + str(__import__('os').getpid()))
print('sleeping', flush=True)
time.sleep(3600)
'''

#: Imports what every step needs; exit status 1 when something is missing.
IMPORTS = 'import mmcv.ops, mmdet, mmengine, pycocotools, rexnet_mmdet'


def install(budget: Budget, args: argparse.Namespace) -> bool:
    """Put the wheels' site first on PYTHONPATH (and the checkout after it); install the wheels
    there unless everything already imports. False when the packages are not there."""
    os.environ['PYTHONPATH'] = os.pathsep.join([args.site, ROOT] + [p for p in os.environ.get('PYTHONPATH', '')
                                                                     .split(os.pathsep) if p])
    script = (f'import glob, subprocess, sys\n'
              f'if subprocess.run([sys.executable, "-c", {IMPORTS!r}], stderr=subprocess.DEVNULL).returncode == 0:\n'
              f'    print("mmcv, mmdet, mmengine and pycocotools import: nothing installed"); sys.exit(0)\n'
              f'wheels = sorted(glob.glob({osp.join(args.wheels, "*.whl")!r}))\n'
              f'if not wheels:\n'
              f'    sys.exit("error: mmcv, mmdet or mmengine does not import and {args.wheels} holds no wheels: copy '
              f'the wheels (mmcv with CUDA ops, mmengine, mmdet, pycocotools ...) into {args.wheels}/")\n'
              f'subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", '
              f'"--no-compile", "--upgrade", "--target", {args.site!r}] + wheels, check=True)\n'
              f'subprocess.run([sys.executable, "-c", {IMPORTS!r}], check=True)\n'
              f'print(f"installed {{len(wheels)}} wheels into {args.site}")\n')
    return budget.run('install', [sys.executable, '-c', script], cap=90) == 'passed'


ENVIRONMENT = '''
import json, platform, sys, torch, mmcv, mmdet, mmengine, rexnet_mmdet
gpu = torch.cuda.is_available()
info = dict(python=platform.python_version(), torch=torch.__version__, mmcv=mmcv.__version__,
            mmengine=mmengine.__version__, mmdet=mmdet.__version__, rexnet_mmdet=rexnet_mmdet.__version__, gpu=gpu)
try:
    from mmcv.utils import ext_loader
    info['mmcv_ops_cuda'] = ext_loader.load_ext('_ext', ['get_compiling_cuda_version']).get_compiling_cuda_version()
except Exception as e:
    info['mmcv_ops_cuda'] = f'unknown ({e})'
try:
    import timm
    info['timm'] = timm.__version__
except ImportError:
    info['timm'] = None
if gpu:
    p = torch.cuda.get_device_properties(0)
    info.update(gpu_name=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), capability=f'{p.major}.{p.minor}',
                gpus=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version())
for k, v in info.items():
    print(f'{k}: {v}')
json.dump(info, open(sys.argv[1], 'w'), indent=1)
'''


def environment(budget: Budget, args: argparse.Namespace) -> Optional[dict]:
    """Print and keep (OUTDIR/environment.json) the versions and the GPU; None when it failed."""
    path = osp.join(args.outdir, 'environment.json')
    if budget.run('environment', [sys.executable, '-c', ENVIRONMENT, path], cap=60) != 'passed':
        return None
    with open(path, encoding='utf-8') as f:
        info = json.load(f)
    if not info['gpu'] and not args.dry_run:
        budget.record('gpu', 'failed', note='torch sees no CUDA GPU here: run on a GPU machine, or add --dry-run '
                                            'to rehearse the steps on the CPU')
        return None
    return info


__all__ = ['Budget', 'Stopped', 'end_group', 'collect_small', 'parse_args', 'run_plan', 'install', 'environment']
