"""The GPU launch levers: refused off CUDA with a clear message; on CUDA, a captured graph replays
what the module computes, keeps one graph per padded shape and falls back beyond its limit."""
import copy

import pytest
import torch
import torch.nn as nn

from rexnet_mmdet.deploy.graphs import GraphedModule, graph_features, lever_unavailable
from rexnet_mmdet.deploy.treatments import TREATMENTS, treat_backbone, treat_detector, treatment_unavailable

GPU_LEVERS = [t for t in TREATMENTS if t.endswith(('+cudagraph', '+compile'))]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1)).eval()


def test_levers_are_refused_off_cuda():
    assert GPU_LEVERS == ['fused+cl+cudagraph', 'fused+cl+compile']
    cpu = torch.device('cpu')
    for treatment in GPU_LEVERS:
        reason = treatment_unavailable(treatment, cpu)
        assert 'needs a CUDA device; skipped on cpu' in reason
        with pytest.raises(ValueError, match='needs a CUDA device'):
            treat_backbone(_net(), treatment)
    assert treatment_unavailable('fused+cl', cpu) is None
    with pytest.raises(ValueError, match='unknown lever'):
        lever_unavailable('tensorrt', cpu)
    with pytest.raises(ValueError, match='unknown treatment'):
        treatment_unavailable('fused+tensorrt', cpu)


def test_graphed_module_runs_as_built_off_cuda():
    net = _net()
    graphed = GraphedModule(net)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(graphed(x), net(x)) and graphed.num_graphs == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_graph_replays_the_module_per_shape_and_falls_back():
    net = _net().cuda()
    graphed = GraphedModule(copy.deepcopy(net), max_graphs=2)
    with torch.no_grad():
        for shape in [(1, 3, 32, 32), (2, 3, 32, 64), (1, 3, 32, 32)]:
            x = torch.randn(shape, device='cuda')
            torch.testing.assert_close(graphed(x).clone(), net(x))
        assert graphed.num_graphs == 2
        with pytest.warns(UserWarning, match='without a CUDA graph'):
            x = torch.randn(1, 3, 64, 64, device='cuda')
            torch.testing.assert_close(graphed(x), net(x))
        assert graphed.num_graphs == 2
        with torch.autocast('cuda', dtype=torch.float16, cache_enabled=False):
            x = torch.randn(1, 3, 32, 32, device='cuda')
            out, ref = graphed(x).float(), net(x).float()
        assert graphed.num_graphs == 2  # a new key beyond the limit: run as built
        torch.testing.assert_close(out, ref)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_graphed_detector_predicts_what_fused_predicts():
    from mmengine.config import Config

    from rexnet_mmdet.utils.build import build_detector, fake_batch
    cfg = Config.fromfile('configs/faster_rcnn_rexnet_x0.9_fpn.py')
    model = build_detector(cfg, calibration_size=(128, 96)).cuda().eval()
    fused = treat_detector(copy.deepcopy(model), 'fused+cl')
    graphed = graph_features(copy.deepcopy(fused), 'cudagraph')
    data = model.data_preprocessor(fake_batch(2, (128, 96)), False)
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        for _ in range(2):  # capture, then replay
            feats = [f.clone() for f in graphed.extract_feat(data['inputs'])]
        ref = fused.extract_feat(data['inputs'])
    assert graphed.features_lever == 'cudagraph'
    for a, b in zip(feats, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
