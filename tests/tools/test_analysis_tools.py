"""The analysis tools run end to end from the command line and write their pictures."""
import subprocess
import sys

import pytest
import torch

from rexnet_mmdet.utils.build import PROJECT_ROOT

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _run(*args, ok=True):
    proc = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def tool_error(load_tool, capsys):
    """Run a tool's ``main`` in this process (for the error paths: no second interpreter start) and
    return its error line, checking the one way tools fail: ``error: ...`` on stderr, exit 1, no traceback."""
    def run(tool, *args):
        module = load_tool(f'analysis_tools/{tool}.py')
        with pytest.raises(SystemExit) as exc:
            module.main(list(args))
        err = capsys.readouterr().err
        assert exc.value.code == 1 and err.startswith('error: ') and 'Traceback' not in err, err
        return err
    return run


def _is_png(path):
    with open(path, 'rb') as f:
        return f.read(8) == PNG_MAGIC


@pytest.mark.slow
def test_rank_study_cli(tmp_path, tool_error):
    out = tmp_path / 'rank.png'
    proc = _run('tools/analysis_tools/rank_study.py', '--trials', '1', '--ratios', '0.1', '1.0', '--d-out', '16', '24',
                '--samples', '128', '--out', str(out))
    assert _is_png(out)
    assert 'Findings' in proc.stdout and '(a) 1x1 convolution' in proc.stdout
    assert 'must exceed the largest d_out' in tool_error('rank_study', '--trials', '1', '--samples', '10')


@pytest.mark.slow
def test_plot_channels_cli(tmp_path, tool_error):
    out = tmp_path / 'channels.png'
    proc = _run('tools/analysis_tools/plot_channels.py', '--widen-factor', '1.0', '2.2', '--mobilenetv2',
                '--out', str(out))
    assert _is_png(out)
    assert 'x1.0 stage-wise' in proc.stdout and 'x2.2 linear' in proc.stdout
    assert 'widen_factor must be a positive' in tool_error('plot_channels', '--widen-factor', '-1')


@pytest.mark.slow
def test_feature_rank_cli_with_a_checkpoint(tmp_path, tool_error):
    from mmdet.registry import MODELS

    import rexnet_mmdet  # noqa: F401
    backbone = MODELS.build(dict(type='ReXNet', widen_factor=0.9, out_indices=(6,)))
    ckpt = tmp_path / 'backbone.pth'
    torch.save(backbone.state_dict(), ckpt)
    out = tmp_path / 'feature_rank.png'
    proc = _run('tools/analysis_tools/feature_rank.py', '--num-images', '6', '--size', '64', '--synthetic',
                '--backbone', f'loaded=rexnet:0.9:{ckpt}', '--backbone', 'rexnet-stagewise:0.9',
                '--out', str(out))
    assert _is_png(out)
    assert 'loaded' in proc.stdout and 'rexnet-stagewise x0.9 (random init)' in proc.stdout
    assert 'nuclear norm' in proc.stdout
    assert 'KIND:WIDTH' in tool_error('feature_rank', '--backbone', 'resnet:1.0')
    assert 'at least 2' in tool_error('feature_rank', '--num-images', '1')


@pytest.mark.slow
def test_get_flops_cli(tool_error):
    proc = _run('tools/analysis_tools/get_flops.py', 'configs/ssdlite_rexnet_x0.9.py', '--backbone', 'rexnet',
                '--widen-factor', '1.0', '--markdown')
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('| model | input | params | params (paper) | FLOPs')
    assert lines[2] == '| ReXNet x1.0 classifier | 224x224 | 4.80M | 4.8M | 0.398G | 0.40G | 0.385G |'
    start = lines.index(next(line for line in lines if line.startswith('| config |')))
    assert lines[start].startswith('| config | params (ours) | params (paper) | FLOPs (ours, input)')
    assert lines[start + 2].startswith('| ssdlite_rexnet_x0.9 | 4.99M | 5.0M | 0.89G (320x320) |')
    assert 'nothing to count' in tool_error('get_flops')
    assert 'too small' in tool_error('get_flops', '--backbone', 'rexnet', '--shape', '8')


@pytest.mark.slow
def test_shape_is_width_height_in_every_tool(tmp_path, load_tool, capsys):
    """--shape WIDTH [HEIGHT] in get_flops.py and export_onnx.py alike (export_onnx took H W)."""
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    for tool in ('analysis_tools/get_flops.py', 'deployment/export_onnx.py'):
        with pytest.raises(SystemExit):
            load_tool(tool).parse_args(['--help'])
        assert '--shape WIDTH [HEIGHT ...]' in capsys.readouterr().out
    out = str(tmp_path / 'wide.onnx')
    assert load_tool('deployment/export_onnx.py').main(['--widen-factor', '0.9', '--out-indices', '5', '--shape', '96',
                                                        '64', '--repeats', '0', '--threads', '1', '--out', out]) == 0
    dims = [d.dim_value for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]
    assert 'fixed input 1x3x64x96' in capsys.readouterr().out
