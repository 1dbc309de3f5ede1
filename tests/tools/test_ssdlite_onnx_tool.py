"""tools/deployment/ssdlite_onnx.py: what it refuses, the backend names it takes, the class names it
records; and the runtime's answer to an image that could not be read."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from rexnet_mmdet.datasets.synthetic import SHAPE_CLASSES
from rexnet_mmdet.deploy import runtimes
from rexnet_mmdet.utils.build import CONFIG_DIR, build_detector

pytestmark = pytest.mark.usefixtures('one_thread')

CONFIG = osp.join(CONFIG_DIR, 'demo', 'ssdlite_rexnet_x0.9_shapes.py')


@pytest.fixture
def tool(load_tool, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo config's data/shapes/ is relative: never made here
    return load_tool('deployment/ssdlite_onnx.py')


def _one_line_error(tool, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith('error: ') and err.count('\n') == 1, err
    return err


@pytest.mark.slow
def test_checkpoints_that_do_not_fit_stop_the_tool_before_the_export(tool, tmp_path, capsys,
                                                                     official_checkpoints):
    out = str(tmp_path / 'out.onnx')
    # An ImageNet backbone file: none of the detector's weights.
    err = _one_line_error(tool, [CONFIG, official_checkpoints['0.9'], '--out', out], capsys)
    assert 'fits none of the model' in err and official_checkpoints['0.9'] in err
    # A x1.0 SSDLite for the x0.9 config: the head fits, the backbone does not.
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'ssdlite_rexnet_x1.0.py'))
    cfg.model.bbox_head.num_classes = 4
    wider = str(tmp_path / 'x1.0.pth')
    torch.save(dict(state_dict=build_detector(cfg, calibration_size=None).state_dict()), wider)
    err = _one_line_error(tool, [CONFIG, wider, '--out', out], capsys)
    assert 'fits only' in err and 'of another shape' in err
    assert not osp.exists(out)


def test_one_backend_vocabulary(tool, capsys):
    args = tool.parse_args([CONFIG, '--out', 'x.onnx', '--images', 'a.png'])
    assert args.backend == 'onnxruntime'
    # One set of words: no aliases.
    for old in (['--runtime', 'onnxruntime'], ['--backend', 'ort'], ['--precision', 'f32']):
        with pytest.raises(SystemExit):
            tool.parse_args([CONFIG, '--out', 'x.onnx'] + old)
    with pytest.raises(ValueError, match='backend must be one of onnxruntime, openvino'):
        runtimes.Detector('x.onnx', backend='ort')
    capsys.readouterr()
    assert tool.parse_args([CONFIG, '--out', 'x.onnx', '--backend', 'openvino']).backend == 'openvino'
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    help_text = capsys.readouterr().out
    assert '--backend {onnxruntime,openvino}' in help_text
    assert '--runtime' not in help_text and '{ort' not in help_text and 'default ort' not in help_text


def test_an_image_that_could_not_be_read_is_named_as_such():
    # cv2.imread returns None for a missing or unreadable file; that None reaches predict.
    with pytest.raises(ValueError, match='cv2.imread returns None'):
        runtimes.preprocess(None, (320, 320), [0.0] * 3, [1.0] * 3, True)
    with pytest.raises(ValueError, match='got a list'):
        runtimes.preprocess([[0]], (320, 320), [0.0] * 3, [1.0] * 3, True)
    x, scale = runtimes.preprocess(np.zeros((40, 80, 3), np.uint8), (32, 64), [0.0] * 3, [1.0] * 3, True)
    assert x.shape == (1, 3, 32, 64) and scale.tolist() == pytest.approx([0.8, 0.8])


@pytest.mark.slow
def test_export_without_checkpoint_records_the_configs_classes(tool, tmp_path):
    pytest.importorskip('onnxruntime')
    out = str(tmp_path / 'random.onnx')
    summary = tool.run([CONFIG, '--out', out, '--threads', '1'])
    assert summary['checkpoint'] is None and osp.isfile(out)
    detector = runtimes.Detector(out, backend='onnxruntime', threads=1)
    assert detector.backend == 'onnxruntime'
    assert detector.classes == list(SHAPE_CLASSES) and len(detector.classes) == 4
    with pytest.raises(ValueError, match='cv2.imread returns None'):
        detector.predict(None)


def test_compare_needs_benchmark(tool, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG, '--out', 'x.onnx', '--compare', CONFIG])
    assert '--compare needs --benchmark' in capsys.readouterr().err


@pytest.mark.slow
def test_compare_times_every_detector_in_every_runtime_in_one_run(tool, tmp_path, capsys):
    lite = osp.join(CONFIG_DIR, 'ssdlite_rexnet_lite_x1.0.py')
    out = str(tmp_path / 'v1.onnx')
    summary = tool.run([CONFIG, '--out', out, '--benchmark', '--compare', lite, '--threads', '1',
                        '--repeats', '2', '--warmup', '1'])
    runtimes_timed = {'PyTorch eager', 'ONNX Runtime', 'OpenVINO'} | (
        {'OpenVINO bf16'} if runtimes.openvino_has_bf16() else set())
    assert set(summary['timings']) == {'ssdlite_rexnet_x0.9_shapes', 'ssdlite_rexnet_lite_x1.0'}
    assert all(set(t) == runtimes_timed and min(t.values()) > 0 for t in summary['timings'].values())
    assert osp.isfile(str(tmp_path / 'v1_ssdlite_rexnet_lite_x1.0.onnx'))
    printed = capsys.readouterr().out
    assert 'x ssdlite_rexnet_x0.9_shapes' in printed  # each row's ratio to the first detector, same runtime
