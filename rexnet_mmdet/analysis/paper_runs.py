"""The paper's COCO tables on a cluster: for each config, train, test, then gather the table.

Every step is an ordinary command of this project, run with MMDetection's launchers as the repository
ships them (``tools/dist_train.sh`` / ``tools/dist_test.sh`` for torchrun, ``tools/slurm_train.sh`` /
``tools/slurm_test.sh`` for Slurm), so a step can be repeated or changed by hand. Training always gets
``--resume``: a second call continues each run from its newest complete checkpoint (a finished run
resumes at its end and stops at once).
"""
import os
import os.path as osp
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from ..utils.build import CONFIG_DIR, PROJECT_ROOT, load_config
from .paper import PAPER_TABLES

LAUNCHERS = ('slurm', 'pytorch')


@dataclass
class Step:
    """One command: ``argv`` run from the project's root with ``env`` added to the environment."""
    what: str
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        """The command as one shell line."""
        return ' '.join([f'{k}={shlex.quote(v)}' for k, v in self.env.items()] + [shlex.join(self.argv)])


def table_configs(tables: Sequence[str] = (), configs: Sequence[str] = ()) -> List[str]:
    """Config files of the paper's tables (``'6'``, ``'7'``, ``'9'``) and of the configs named, in order."""
    out: List[str] = []
    for table in tables:
        if str(table) not in PAPER_TABLES:
            raise ValueError(f'--table {table}: the paper\'s COCO tables are {", ".join(PAPER_TABLES)}')
        out += [osp.join(CONFIG_DIR, f'{name}.py') for name in PAPER_TABLES[str(table)]]
    for config in configs:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config {config} not found; give config files such as '
                                    f'configs/faster_rcnn_rexnet_x1.0_fpn.py, or --table 6, 7 or 9')
        out.append(config)
    if not out:
        raise ValueError('nothing to run: give --table 6, 7 or 9, or --configs CONFIG ...')
    return list(dict.fromkeys(osp.relpath(osp.abspath(c), PROJECT_ROOT) for c in out))


def final_checkpoint(config: str) -> str:
    """The file name mmengine gives the last checkpoint of the config's schedule."""
    loop = load_config(osp.join(PROJECT_ROOT, config)).get('train_cfg', {})
    if 'max_epochs' in loop:
        return f'epoch_{loop["max_epochs"]}.pth'
    if 'max_iters' in loop:
        return f'iter_{loop["max_iters"]}.pth'
    raise ValueError(f'{config}: train_cfg has neither max_epochs nor max_iters')


def plan(configs: Sequence[str], launcher: str, root: str, gpus: int = 8, gpus_per_node: Optional[int] = None,
         partition: Optional[str] = None, test_dev: Optional[str] = None,
         test_dev_images: Optional[str] = None) -> List[Step]:
    """Every command, in order: train and test each config into ``<root>/<config name>``, then gather.

    ``test_dev`` (an image-info file) adds a test-dev submission for every config after its val2017 test.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'--launcher {launcher}: choose {" or ".join(LAUNCHERS)}')
    if launcher == 'slurm' and not partition:
        raise ValueError('--launcher slurm needs --partition (the Slurm partition to run on)')
    if gpus < 1:
        raise ValueError(f'--gpus must be at least 1, got {gpus}')
    steps = []
    for config in configs:
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(root, name)
        checkpoint = osp.join(work_dir, final_checkpoint(config))
        tests = [['--work-dir', work_dir]]
        if test_dev:
            tests.append(['--work-dir', work_dir, '--test-dev', test_dev]
                         + (['--test-dev-images', test_dev_images] if test_dev_images else []))
        if launcher == 'pytorch':
            steps.append(Step(f'train {name}', ['bash', 'tools/dist_train.sh', config, str(gpus), '--work-dir',
                                                work_dir, '--resume']))
            steps += [Step(f'test {name}' + (' (test-dev)' if '--test-dev' in t else ''),
                           ['bash', 'tools/dist_test.sh', config, checkpoint, str(gpus)] + t) for t in tests]
        else:
            env = dict(GPUS=str(gpus), GPUS_PER_NODE=str(gpus_per_node or min(gpus, 8)))
            steps.append(Step(f'train {name}', ['bash', 'tools/slurm_train.sh', partition, name, config, work_dir,
                                                '--resume'], env))
            steps += [Step(f'test {name}' + (' (test-dev)' if '--test-dev' in t else ''),
                           ['bash', 'tools/slurm_test.sh', partition, name, config, checkpoint] + t, env)
                      for t in tests]
    out = osp.join(root, 'results')
    steps.append(Step('gather', ['python', 'tools/analysis_tools/gather_results.py', root, '--out', out, '--plot']))
    return steps


def run(steps: Sequence[Step], log: Callable[[str], None] = print) -> List[str]:
    """Run the steps in order from the project's root. A failed training skips that config's tests; the
    gathering runs anyway (a failed run gets a row that says so). Returns the steps that failed."""
    failed: List[str] = []
    for step in steps:
        name = step.what.split(' ', 1)[-1].split(' ')[0]
        if step.what.startswith('test') and f'train {name}' in failed:
            log(f'skipped: {step.what} (its training failed)')
            continue
        log(f'$ {step.shell()}')
        argv = [sys.executable] + step.argv[1:] if step.argv[0] == 'python' else step.argv
        code = subprocess.run(argv, cwd=PROJECT_ROOT, env={**os.environ, **step.env}).returncode
        if code != 0:
            log(f'failed (exit status {code}): {step.what}')
            failed.append(step.what)
    return failed


__all__ = ['LAUNCHERS', 'Step', 'table_configs', 'final_checkpoint', 'plan', 'run']
