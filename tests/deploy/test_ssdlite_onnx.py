"""SSDLite end to end in ONNX: ONNX Runtime and OpenVINO give PyTorch's detections; the tool.

A ReXNet x0.9 SSDLite (the smallest config) with 4 classes is trained a little on the built-in
shapes dataset (BatchNorm statistics from the training images, then the neck and head trained on
the backbone's features), exported with decoding and NMS, and run by both runtimes on held-out
images: every detection must have its counterpart in PyTorch's ``inference_detector`` result (same
label, IoU >= 0.99, score within 1e-3) and the other way round.
"""
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')

import onnx  # noqa: E402

from rexnet_mmdet.deploy import runtimes, ssdlite_onnx  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ssdlite_rexnet_x0.9.py')
TRAIN_STEPS = 30
NUM_VAL = 6

TINY_CONFIG = '''
_base_ = {base!r}
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=4))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), keep_ratio=False),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
'''


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # Correctness only: one thread keeps these tests quick when other work shares the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train_a_little(model, data_root: str) -> None:
    """BatchNorm statistics from the training images, then the neck and head trained on the (fixed)
    backbone's features: a model with varied, confident detections in seconds on one thread."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate

    from rexnet_mmdet.utils.build import calibrate_batchnorm

    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='Resize', scale=(320, 320), keep_ratio=False),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                      'scale_factor'))]
    train = DATASETS.build(dict(type='ShapesDataset', data_root=data_root, synthetic=SYNTHETIC,
                                ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                                pipeline=pipeline))
    data = model.data_preprocessor(pseudo_collate([train[i] for i in range(len(train))]), True)
    inputs, samples = data['inputs'], data['data_samples']
    calibrate_batchnorm(model, lambda: model.extract_feat(inputs))
    model.eval()  # BatchNorm keeps the calibrated statistics while the neck and head learn
    with torch.no_grad():
        feats = model.backbone(inputs)
    params = list(model.neck.parameters()) + list(model.bbox_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(TRAIN_STEPS):
        idx = torch.randperm(len(samples), generator=g)[:4]
        losses = model.bbox_head.loss(model.neck(tuple(f[idx] for f in feats)), [samples[i] for i in idx])
        loss = sum(sum(v) if isinstance(v, list) else v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


SYNTHETIC = dict(image_size=96, splits=dict(train=16, val=NUM_VAL), min_objects=1, max_objects=3, min_size=0.25,
                 max_size=0.6, colour_by_class=True, seed=0)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """The trained detector, its config and checkpoint files, its ONNX file and the held-out images."""
    import rexnet_mmdet  # noqa: F401
    import rexnet_mmdet.datasets  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from rexnet_mmdet.datasets.synthetic import SHAPE_CLASSES

    folder = tmp_path_factory.mktemp('ssdlite')
    config = folder / 'ssdlite_tiny.py'
    config.write_text(TINY_CONFIG.format(base=CONFIG))
    cfg = Config.fromfile(str(config))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    data_root = str(folder / 'shapes') + '/'
    _train_a_little(model, data_root)
    model.cfg = cfg
    model.dataset_meta = dict(classes=list(SHAPE_CLASSES))
    checkpoint = str(folder / 'ssdlite_tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=model.dataset_meta)), checkpoint)
    onnx_path = ssdlite_onnx.export_ssdlite(model, str(folder / 'ssdlite_tiny.onnx'))
    images = sorted(str(p) for p in (folder / 'shapes' / 'val').iterdir())
    assert len(images) == NUM_VAL
    return dict(model=model, config=str(config), checkpoint=checkpoint, onnx=onnx_path, images=images,
                folder=folder)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    return inter / union if union > 0 else float(np.allclose(a, b))


def _unmatched(expected, got, iou: float = 0.99, score_tol: float = 1e-3):
    """Detections of ``expected`` without a counterpart in ``got`` (same label, IoU >= ``iou``,
    score within ``score_tol``; each used once), then those of ``got`` left over."""
    e_boxes, e_scores, e_labels = expected
    g_boxes, g_scores, g_labels = got
    free = np.ones(len(g_scores), bool)
    missing = []
    for i in np.argsort(-e_scores, kind='stable'):
        candidates = [j for j in np.flatnonzero(free & (g_labels == e_labels[i]))
                      if abs(g_scores[j] - e_scores[i]) <= score_tol and _iou(e_boxes[i], g_boxes[j]) >= iou]
        if candidates:
            free[min(candidates, key=lambda j: abs(g_scores[j] - e_scores[i]))] = False
        else:
            missing.append(int(i))
    return missing, [int(j) for j in np.flatnonzero(free)]


@pytest.fixture(scope='module')
def pytorch_detections(trained):
    from mmdet.apis import inference_detector

    model = trained['model']
    results = []
    with torch.no_grad():
        for path in trained['images']:
            pred = inference_detector(model, path).pred_instances
            results.append((pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy()))
    return results


def test_graph_has_decoding_and_onnx_nms(trained):
    model = onnx.load(trained['onnx'])
    ops = {node.op_type for node in model.graph.node}
    assert 'NonMaxSuppression' in ops and 'Softmax' in ops and 'TopK' in ops
    assert 'BatchNormalization' not in ops
    assert [i.name for i in model.graph.input] == list(ssdlite_onnx.INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(ssdlite_onnx.OUTPUT_NAMES)
    meta = runtimes.read_metadata(trained['onnx'])
    assert meta['input_size'] == [320, 320] and meta['bgr_to_rgb'] is True
    assert meta['mean'] == pytest.approx([123.675, 116.28, 103.53])
    assert meta['classes'] == ['circle', 'triangle', 'square', 'star']


def test_pytorch_detections_are_not_trivial(pytorch_detections):
    # The comparison below means something only if there are many detections of several classes,
    # scores well above the threshold (0.02) and apart from each other, some images at max_per_img.
    scores = np.concatenate([s for _, s, _ in pytorch_detections])
    labels = np.concatenate([lab for _, _, lab in pytorch_detections])
    assert all(len(s) > 10 for _, s, _ in pytorch_detections)
    assert any(len(s) == 200 for _, s, _ in pytorch_detections)
    assert scores.max() > 0.1 and len(np.unique(labels)) >= 3
    assert len(np.unique(np.round(scores, 4))) > len(scores) // 4


@pytest.mark.parametrize('runtime', runtimes.RUNTIMES)
def test_runtime_detections_equal_pytorch(runtime, trained, pytorch_detections):
    import cv2

    detector = runtimes.Detector(trained['onnx'], runtime=runtime, threads=1)
    for path, expected in zip(trained['images'], pytorch_detections):
        got = detector.predict(cv2.imread(path))
        assert got[0].shape == (len(got[1]), 4) and got[2].dtype == np.int64
        missing, extra = _unmatched(expected, got)
        assert not missing and not extra, (
            f'{runtime} on {osp.basename(path)}: {len(missing)} of {len(expected[1])} PyTorch detections '
            f'unmatched (scores {expected[1][missing][:5]}), {len(extra)} of {len(got[1])} extra '
            f'(scores {got[1][extra][:5]})')


def test_export_wrapper_in_pytorch_equals_onnx_runtime(trained):
    # The wrapper's own PyTorch forward (used for tracing) computes what the graph computes.
    wrapper = ssdlite_onnx.SSDLiteExportModel(trained['model']).eval()
    detector = runtimes.Detector(trained['onnx'], runtime='ort', threads=1)
    import cv2
    x, scale = detector.preprocess(cv2.imread(trained['images'][0]))
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(torch.from_numpy(x), torch.from_numpy(scale))]
    missing, extra = _unmatched(expected, detector.run(x, scale), score_tol=1e-5)
    assert not missing and not extra


def test_nms_matches_onnx_runtime_per_class_with_cap(tmp_path):
    """NonMaxSuppression alone: per class, score threshold (strict), IoU threshold, per-class cap."""
    import onnxruntime as ort

    class Nms(torch.nn.Module):
        def forward(self, boxes, scores):
            return ssdlite_onnx._NonMaxSuppression.apply(boxes, scores, 5, 0.45, 0.2)

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1, 60, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(1, 60, 2, generator=g) * 20], dim=2)
    scores = torch.rand(1, 3, 60, generator=g)
    scores[0, 1, :10] = 0.2  # exactly at the threshold: not candidates
    path = str(tmp_path / 'nms.onnx')
    torch.onnx.export(Nms(), (boxes, scores), path, input_names=['boxes', 'scores'], output_names=['selected'],
                      dynamic_axes={'selected': {0: 'n'}}, opset_version=17, dynamo=False)
    got = ort.InferenceSession(path, providers=['CPUExecutionProvider']).run(
        None, {'boxes': boxes.numpy(), 'scores': scores.numpy()})[0]
    expected = Nms()(boxes, scores).numpy()
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))
    assert 0 < len(expected) <= 15 and not any(r[1] == 1 and r[2] < 10 for r in expected)


def test_refusals(trained, tmp_path):
    model = trained['model']
    model.train()
    try:
        with pytest.raises(ValueError, match='eval mode'):
            ssdlite_onnx.export_ssdlite(model, str(tmp_path / 'x.onnx'))
    finally:
        model.eval()
    with pytest.raises(ValueError, match='nms'):
        ssdlite_onnx.SSDLiteExportModel(model, test_cfg=dict(score_thr=0.1))
    with pytest.raises(ValueError, match='runtime must be one of'):
        runtimes.Detector(trained['onnx'], runtime='tensorrt')
    bare = str(tmp_path / 'bare.onnx')
    m = onnx.load(trained['onnx'])
    del m.metadata_props[:]
    onnx.save(m, bare)
    with pytest.raises(ValueError, match='lacks the metadata'):
        runtimes.Detector(bare)


def test_tool_exports_runs_and_draws(trained, tmp_path):
    """tools/deployment/ssdlite_onnx.py: export, detections drawn for a folder, a short benchmark."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('ssdlite_tool', osp.join(ROOT, 'tools', 'deployment',
                                                                           'ssdlite_onnx.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out, show = str(tmp_path / 'model.onnx'), tmp_path / 'shown'
    images = osp.dirname(trained['images'][0])
    summary = tool.run([trained['config'], trained['checkpoint'], '--out', out, '--images', images,
                         '--runtime', 'openvino', '--show-dir', str(show), '--threads', '1',
                         '--benchmark', '--repeats', '2', '--warmup', '1'])
    assert osp.isfile(out)
    assert sorted(p.name for p in show.iterdir()) == sorted(osp.basename(p) for p in trained['images'])
    assert set(summary['timings']) == {'PyTorch eager', 'ONNX Runtime', 'OpenVINO'}
    assert all(t > 0 for t in summary['timings'].values())
