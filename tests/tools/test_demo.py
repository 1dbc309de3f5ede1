"""tools/misc/demo.py runs every step and leaves its pictures (here with the tiny detector, in seconds)."""
import os.path as osp

import cv2
import pytest

# Runs the demo end to end: for make test, not make test-fast.
pytestmark = pytest.mark.slow


def test_demo_runs_all_steps_and_leaves_its_pictures(tmp_path, tiny_runs):
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), str(tmp_path / 'shapes'), max_iters=4,
                                         ckpt_interval=4,
                                         val_interval=2)
    work_dir = tmp_path / 'demo'
    result = tiny_runs.run_tool(['misc/demo.py', '--config', config, '--work-dir', str(work_dir)])
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    for line in ('1/3 dataset', '2/3 training', '3/3 evaluation', 'box AP50 on the held-out split', 'time:'):
        assert line in out
    assert '[shapes dataset] making 12 images' in out  # made on first use
    curves = cv2.imread(str(work_dir / 'training_curves.png'))
    grid = cv2.imread(str(work_dir / 'detections.png'))
    assert curves is not None and grid is not None
    assert grid.shape == (2 * 64, 4 * 2 * 128, 3)  # 4 pictures of 64x(64+64) px, doubled, in one row
    assert len(list((work_dir / 'detections').iterdir())) == 4
    assert osp.isfile(work_dir / 'iter_4.pth')

    # A second run replaces the first; a folder that is not a demo run is left alone.
    other = tmp_path / 'precious'
    other.mkdir()
    (other / 'notes.txt').write_text('keep')
    refused = tiny_runs.run_tool(['misc/demo.py', '--config', config, '--work-dir', str(other)])
    assert refused.returncode != 0 and 'does not look like a previous demo run' in refused.stdout
    assert (other / 'notes.txt').read_text() == 'keep'
