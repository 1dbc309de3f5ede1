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

from rexnet_mmdet.deploy import runtimes, ssdlite_export  # noqa: E402
from rexnet_mmdet.deploy.backends import ONNX_OPSET  # noqa: E402
from rexnet_mmdet.deploy.torch_onnx import export_onnx  # noqa: E402

# A detector trained and exported once for the module: for make test, not make test-fast.
pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: The detectors exported: SSDLite on ReXNet-v1 x0.9 (every test) and on ReXNet-lite x1.0 (the equality tests).
CONFIGS = {'v1': osp.join(ROOT, 'configs', 'ssdlite_rexnet_x0.9.py'),
           'lite': osp.join(ROOT, 'configs', 'ssdlite_rexnet_lite_x1.0.py')}
FAMILIES = ['v1', pytest.param('lite', marks=pytest.mark.slow)]
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

    from rexnet_mmdet.models.norms import reestimate_batchnorm

    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='Resize', scale=(320, 320), keep_ratio=False),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                      'scale_factor'))]
    train = DATASETS.build(dict(type='ShapesDataset', data_root=data_root, synthetic=SYNTHETIC,
                                ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                                pipeline=pipeline))
    data = model.data_preprocessor(pseudo_collate([train[i] for i in range(len(train))]), True)
    inputs, samples = data['inputs'], data['data_samples']
    reestimate_batchnorm(model, lambda: model.extract_feat(inputs))
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
def trained(request, tmp_path_factory):
    """The trained detector, its config and checkpoint files, its ONNX file and the held-out images
    (ReXNet-v1, or the family a test asks for with ``parametrize('trained', ..., indirect=True)``)."""
    import rexnet_mmdet  # noqa: F401
    import rexnet_mmdet.datasets  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from rexnet_mmdet.datasets.synthetic import SHAPE_CLASSES

    folder = tmp_path_factory.mktemp('ssdlite')
    config = folder / 'ssdlite_tiny.py'
    config.write_text(TINY_CONFIG.format(base=CONFIGS[getattr(request, 'param', 'v1')]))
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
    onnx_path = ssdlite_export.export_ssdlite(model, str(folder / 'ssdlite_tiny.onnx'))
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


@pytest.mark.parametrize('trained', FAMILIES, indirect=True)
def test_graph_has_decoding_and_onnx_nms(trained):
    model = onnx.load(trained['onnx'])
    ops = {node.op_type for node in model.graph.node}
    assert 'NonMaxSuppression' in ops and 'Softmax' in ops and 'TopK' in ops
    assert 'BatchNormalization' not in ops
    assert [i.name for i in model.graph.input] == list(ssdlite_export.INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(ssdlite_export.OUTPUT_NAMES)
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


@pytest.mark.parametrize('trained', FAMILIES, indirect=True)
@pytest.mark.parametrize('backend', runtimes.RUNTIMES)
def test_runtime_detections_equal_pytorch(backend, trained, pytorch_detections):
    import cv2

    detector = runtimes.Detector(trained['onnx'], backend=backend, threads=1)
    for path, expected in zip(trained['images'], pytorch_detections):
        got = detector.predict(cv2.imread(path))
        assert got[0].shape == (len(got[1]), 4) and got[2].dtype == np.int64
        missing, extra = _unmatched(expected, got)
        assert not missing and not extra, (
            f'{backend} on {osp.basename(path)}: {len(missing)} of {len(expected[1])} PyTorch detections '
            f'unmatched (scores {expected[1][missing][:5]}), {len(extra)} of {len(got[1])} extra '
            f'(scores {got[1][extra][:5]})')


@pytest.mark.parametrize('backend', runtimes.RUNTIMES)
def test_nms_pre_cap_equals_pytorch(backend, trained, tmp_path):
    """A small ``nms_pre``: on some levels more pairs pass ``score_thr`` than the cap keeps, on others
    fewer; the graph keeps the pairs MMDetection keeps in both cases."""
    import copy

    import cv2
    from mmdet.apis import inference_detector

    nms_pre = 40
    model = copy.deepcopy(trained['model'])
    model.bbox_head.test_cfg.nms_pre = nms_pre
    path = ssdlite_export.export_ssdlite(model, str(tmp_path / 'capped.onnx'))
    detector = runtimes.Detector(path, backend=backend, threads=1)
    wrapper = ssdlite_export.SSDLiteExportModel(model).eval()
    above = []
    for image in trained['images'][:3]:
        with torch.no_grad():
            pred = inference_detector(model, image).pred_instances
            x, _ = detector.preprocess(cv2.imread(image))
            cls_scores, _ = wrapper._features(torch.from_numpy(x))
        expected = (pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy())
        missing, extra = _unmatched(expected, detector.predict(cv2.imread(image)))
        assert not missing and not extra, (f'{backend} on {osp.basename(image)}: {len(missing)} missing, '
                                           f'{len(extra)} extra')
        for level in cls_scores:
            probs = level[0].permute(1, 2, 0).reshape(-1, model.bbox_head.num_classes + 1).softmax(-1)[:, :-1]
            if probs.numel() > nms_pre:  # levels the cap applies to
                above.append(int((probs > model.bbox_head.test_cfg.score_thr).sum()))
    # Both cases ran: levels with more pairs above the threshold than the cap keeps, and with fewer.
    assert max(above) > nms_pre and min(above) < nms_pre, above


@pytest.mark.parametrize('backend', runtimes.RUNTIMES)
def test_no_pair_above_the_threshold_gives_no_detections(backend, trained, tmp_path):
    import copy

    import cv2
    from mmdet.apis import inference_detector

    model = copy.deepcopy(trained['model'])
    model.bbox_head.test_cfg.score_thr = 0.999  # above every score of this model
    path = ssdlite_export.export_ssdlite(model, str(tmp_path / 'none.onnx'))
    detector = runtimes.Detector(path, backend=backend, threads=1)
    boxes, scores, labels = detector.predict(cv2.imread(trained['images'][0]))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
    with torch.no_grad():
        assert len(inference_detector(model, trained['images'][0]).pred_instances) == 0


@pytest.mark.parametrize('trained', FAMILIES, indirect=True)
def test_export_wrapper_in_pytorch_equals_onnx_runtime(trained):
    # The wrapper's own PyTorch forward (used for tracing) computes what the graph computes.
    wrapper = ssdlite_export.SSDLiteExportModel(trained['model']).eval()
    detector = runtimes.Detector(trained['onnx'], backend='onnxruntime', threads=1)
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
            return ssdlite_export._NonMaxSuppression.apply(boxes, scores, 5, 0.45, 0.2)

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1, 60, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(1, 60, 2, generator=g) * 20], dim=2)
    scores = torch.rand(1, 3, 60, generator=g)
    scores[0, 1, :10] = 0.2  # exactly at the threshold: not candidates
    path = str(tmp_path / 'nms.onnx')
    export_onnx(Nms(), (boxes, scores), path, input_names=['boxes', 'scores'], output_names=['selected'],
                dynamic_axes={'selected': {0: 'n'}}, opset_version=ONNX_OPSET)
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
            ssdlite_export.export_ssdlite(model, str(tmp_path / 'x.onnx'))
    finally:
        model.eval()
    with pytest.raises(ValueError, match='nms'):
        ssdlite_export.SSDLiteExportModel(model, test_cfg=dict(score_thr=0.1))
    with pytest.raises(ValueError, match='backend must be one of onnxruntime, openvino'):
        runtimes.Detector(trained['onnx'], backend='tensorrt')
    bare = str(tmp_path / 'bare.onnx')
    m = onnx.load(trained['onnx'])
    del m.metadata_props[:]
    onnx.save(m, bare)
    with pytest.raises(ValueError, match='lacks the metadata'):
        runtimes.Detector(bare)


def test_tool_exports_runs_and_draws(trained, tmp_path, capsys):
    """tools/deployment/ssdlite_onnx.py: export, detections drawn for a folder, a short benchmark."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('ssdlite_tool', osp.join(ROOT, 'tools', 'deployment',
                                                                           'ssdlite_onnx.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out, show = str(tmp_path / 'model.onnx'), tmp_path / 'shown'
    images = osp.dirname(trained['images'][0])
    summary = tool.run([trained['config'], trained['checkpoint'], '--out', out, '--images', images,
                         '--backend', 'openvino', '--show-dir', str(show), '--threads', '1',
                         '--benchmark', '--profile', '--repeats', '2', '--warmup', '1'])
    assert osp.isfile(out)
    assert sorted(p.name for p in show.iterdir()) == sorted(osp.basename(p) for p in trained['images'])
    assert set(summary['timings']) == {'PyTorch eager', 'ONNX Runtime', 'OpenVINO'} | (
        {'OpenVINO bf16'} if runtimes.openvino_has_bf16() else set())
    assert all(t > 0 for t in summary['timings'].values())
    assert set(summary['profile']) == ({'fp32', 'bf16'} if runtimes.openvino_has_bf16() else {'fp32'})
    layers = summary['profile']['fp32']
    assert layers['Convolution'] > 0 and 'NonMaxSuppression' in layers

    shapes = trained['folder'] / 'shapes'
    ann_file = str(shapes / 'annotations' / 'instances_val.json')
    summary = tool.run([trained['config'], trained['checkpoint'], '--out', out, '--eval', ann_file,
                        '--images', str(shapes / 'val'), '--threads', '1'])
    assert summary['eval']['images'] == NUM_VAL and summary['eval']['bbox_mAP_50'] > 0.02
    assert 'images' not in summary  # --eval alone draws nothing and lists no images
    for argv, message in [(['--images', images, '--precision', 'bf16'], '--precision bf16 needs --backend openvino'),
                          (['--eval', ann_file], '--eval needs --images FOLDER'),
                          (['--eval', ann_file, '--images', trained['images'][0]], '--eval needs --images FOLDER')]:
        with pytest.raises(SystemExit):
            tool.parse_args([trained['config'], '--out', out] + argv)
        assert message in capsys.readouterr().err


def test_coco_ap_of_the_graph_equals_mmdetection_metric(trained, pytorch_detections):
    """evaluate_coco on the graph's detections gives what MMDetection's CocoMetric gives for PyTorch's."""
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    from rexnet_mmdet.deploy.coco_eval import evaluate_coco

    shapes = trained['folder'] / 'shapes'
    ann_file = str(shapes / 'annotations' / 'instances_val.json')
    lines = []
    got = evaluate_coco(runtimes.Detector(trained['onnx'], backend='onnxruntime', threads=1), ann_file, str(shapes / 'val'),
                        log=lines.append)
    assert got['images'] == NUM_VAL and got['detections'] == sum(len(s) for _, s, _ in pytorch_detections)
    assert any('evaluated 6/6 images' in line for line in lines) and any('maxDets=1000' in line for line in lines)

    coco = COCO(ann_file)
    by_name = {img['file_name']: img for img in coco.imgs.values()}
    metric = CocoMetric(ann_file=ann_file, metric='bbox')
    metric.dataset_meta = dict(classes=trained['model'].dataset_meta['classes'])
    for path, (boxes, scores, labels) in zip(trained['images'], pytorch_detections):
        img = by_name[osp.basename(path)]
        metric.process({}, [dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                                 pred_instances=dict(bboxes=torch.from_numpy(boxes), scores=torch.from_numpy(scores),
                                                     labels=torch.from_numpy(labels)))])
    expected = metric.evaluate(size=NUM_VAL)
    assert expected['coco/bbox_mAP_50'] > 0.02  # not a comparison of zeros
    for name in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l'):
        assert round(got[name], 3) == pytest.approx(expected[f'coco/{name}'], abs=1e-9), name


def test_coco_eval_refusals(trained, tmp_path):
    from rexnet_mmdet.deploy.coco_eval import category_ids, evaluate_coco

    detector = runtimes.Detector(trained['onnx'], backend='onnxruntime', threads=1)
    shapes = trained['folder'] / 'shapes'
    ann_file = str(shapes / 'annotations' / 'instances_val.json')
    with pytest.raises(ValueError, match='does not exist'):
        evaluate_coco(detector, str(tmp_path / 'none.json'), str(shapes / 'val'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='is missing or not an image'):
        evaluate_coco(detector, ann_file, str(tmp_path / 'empty'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": 3}')
    with pytest.raises(ValueError, match='not a COCO-format'):
        evaluate_coco(detector, str(bad), str(shapes / 'val'))
    no_categories = tmp_path / 'no_categories.json'
    no_categories.write_text('{"images": [], "annotations": []}')
    with pytest.raises(ValueError, match='lists no categories'):
        evaluate_coco(detector, str(no_categories), str(shapes / 'val'))
    with pytest.raises(ValueError, match='max_images must be at least 1'):
        evaluate_coco(detector, ann_file, str(shapes / 'val'), max_images=0)
    # Labels go to categories as MMDetection's CocoDataset assigns them: the file's order, names kept.
    cats = [dict(id=7, name='dog'), dict(id=3, name='cat'), dict(id=5, name='cow')]
    assert category_ids(cats, None) == [7, 3, 5]
    assert category_ids(cats, ['dog', 'cat']) == [7, 3]
    assert category_ids(cats, ['cat', 'dog']) == [7, 3]
    with pytest.raises(ValueError, match=r"\['circle'\] are not categories"):
        category_ids(cats, ['circle', 'cat'])


def test_precision_choices(trained, monkeypatch):
    with pytest.raises(ValueError, match="needs backend='openvino'"):
        runtimes.Detector(trained['onnx'], backend='onnxruntime', precision='bf16')
    with pytest.raises(ValueError, match='precision must be one of'):
        runtimes.Detector(trained['onnx'], backend='openvino', precision='f16')
    f32 = runtimes.openvino_model(trained['onnx'], threads=1)
    assert str(f32.get_property('INFERENCE_PRECISION_HINT')) == "<Type: 'float32'>"
    monkeypatch.setattr(runtimes, 'openvino_has_bf16', lambda: False)
    with pytest.raises(ValueError, match='no native bfloat16'):
        runtimes.Detector(trained['onnx'], backend='openvino', precision='bf16')


@pytest.mark.skipif(not runtimes.openvino_has_bf16(), reason='this CPU has no native bfloat16')
def test_bfloat16_runs_in_bfloat16_and_stays_close(trained, pytorch_detections):
    """bf16 is really bfloat16 (scores differ from float32's), and close: each image's best detections
    keep their label, box (IoU >= 0.9) and score (within 0.01)."""
    import cv2

    assert str(runtimes.openvino_model(trained['onnx'], 1, 'bf16').get_property('INFERENCE_PRECISION_HINT')) \
        == "<Type: 'bfloat16'>"
    detector = runtimes.Detector(trained['onnx'], backend='openvino', threads=1, precision='bf16')
    differences = []
    for path, (boxes, scores, labels) in zip(trained['images'], pytorch_detections):
        got = detector.predict(cv2.imread(path))
        assert len(got[1]), f'{osp.basename(path)}: no detections in bfloat16'
        best = np.argsort(-scores, kind='stable')[:5]
        missing, _ = _unmatched((boxes[best], scores[best], labels[best]), got, iou=0.9, score_tol=0.01)
        assert not missing, f'{osp.basename(path)}: best detections {missing} lost in bfloat16'
        differences.append(abs(got[1][0] - scores[best[0]]))
    assert max(differences) > 1e-6  # a float32 run would give the same best scores to rounding
