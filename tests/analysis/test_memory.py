"""Peak memory of a training step: the measurement sees an allocation, and runs in a fresh process."""
import os.path as osp

import pytest
import torch

from rexnet_mmdet.analysis import memory
from rexnet_mmdet.analysis.report import memory_table
from rexnet_mmdet.utils.build import CONFIG_DIR


def test_peak_memory_sees_an_allocation():
    with memory.PeakMemory(torch.device('cpu')) as mem:
        block = torch.ones(64, 1024, 1024 // 4)  # 64 MiB, written (resident)
        del block
    assert mem.method.startswith('VmHWM')
    assert 60 * 2 ** 20 <= mem.peak_bytes < 200 * 2 ** 20


@pytest.mark.slow
def test_memory_measurement_in_a_fresh_process():
    result = memory.train_step_memory_isolated(osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x1.0_fpn.py'), True,
                                                   threads=1, batch_size=1, image_size=(128, 96), warmup=0)
    assert result['with_cp'] is True and result['scope'] == 'detector'
    assert result['padded'] == '128x96' and result['batch'] == 1
    assert result['method'].startswith('VmHWM')
    # A training step of a detector allocates at least its gradients.
    assert result['peak_mib'] >= result['grad_mib'] > 0
    table = memory_table([dict(result, with_cp=False), result])
    assert 'faster_rcnn_rexnet_x1.0_fpn.py' in table and '0%' in table
    with pytest.raises(ValueError, match='scope'):
        memory.train_step_memory('unused.py', False, scope='neck')
