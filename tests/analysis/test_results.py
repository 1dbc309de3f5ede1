"""Gathering runs without training any: finding work dirs, rows for folders that hold no usable run,
and the paper's tables as configs."""
import os.path as osp

import pytest

from rexnet_mmdet.analysis.paper import PAPER_DETECTORS, PAPER_REFERENCES, PAPER_TABLES, paper_detector
from rexnet_mmdet.analysis.results import find_runs, read_run
from rexnet_mmdet.analysis.results_report import results_csv, results_table
from rexnet_mmdet.utils.build import CONFIG_DIR


def test_find_runs_takes_folders_globs_and_parents(tmp_path):
    for name in ('a', 'b'):
        (tmp_path / 'root' / 'x' / name / '20261207_010203').mkdir(parents=True)
    (tmp_path / 'root' / 'x' / 'notes').mkdir()
    a, b = (str(tmp_path / 'root' / 'x' / n) for n in ('a', 'b'))
    assert find_runs([str(tmp_path / 'root')]) == [a, b]
    assert find_runs([str(tmp_path / 'root' / 'x' / '*')]) == [a, b]
    assert find_runs([a, a]) == [a]
    with pytest.raises(FileNotFoundError, match='no run found'):
        find_runs([str(tmp_path / 'root' / 'x' / 'notes')])
    with pytest.raises(FileNotFoundError, match='matches nothing'):
        find_runs([str(tmp_path / 'nothing*')])


def test_a_folder_without_logs_gets_a_row_that_says_so(tmp_path):
    (tmp_path / 'run' / '20261207_010203').mkdir(parents=True)
    row = read_run(str(tmp_path / 'run'))
    assert row.status == 'no training log' and 'no dumped config' in row.problems
    assert row.box_ap is None and row.box_ap_difference is None
    table = results_table([row])
    assert 'no training log: no dumped config' in table and table.count('\n') == 2
    assert results_csv([row]).splitlines()[1].startswith(str(tmp_path / 'run'))


def test_the_papers_tables_are_configs_with_paper_rows():
    for table, names in PAPER_TABLES.items():
        for name in names:
            assert osp.isfile(osp.join(CONFIG_DIR, f'{name}.py'))
            assert paper_detector(name).ap_split == ('test-dev2017' if table == '6' else 'val2017')
    for detector, reference in PAPER_REFERENCES.items():
        row = PAPER_DETECTORS[reference]
        assert row.detector == detector and row.widen_factor is None
    # Table 9's ResNet-50 and Table 6's MobileNetV2, as the paper prints them.
    assert (PAPER_DETECTORS['mask_rcnn_r50_fpn'].box_ap, PAPER_DETECTORS['mask_rcnn_r50_fpn'].mask_ap) == (38.5, 34.6)
    assert (PAPER_DETECTORS['ssdlite_mobilenetv2'].box_ap, PAPER_DETECTORS['ssdlite_mobilenetv2'].params_m) == (22.1, 4.3)
