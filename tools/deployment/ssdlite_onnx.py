"""Export an SSD / SSDLite detector end to end to ONNX, run it with ONNX Runtime or OpenVINO, evaluate it, time it.

The graph holds the network (BatchNorm folded), box decoding with the priors of the config's
fixed input size, softmax scores, the config's score threshold and ``nms_pre``, per-class NMS
(ONNX's ``NonMaxSuppression``) and ``max_per_img``; see ``rexnet_mmdet/deploy/ssdlite_export.py``.

Examples:
    python tools/deployment/ssdlite_onnx.py configs/ssdlite_rexnet_x1.0.py CHECKPOINT --out ssdlite.onnx \\
        --images demo/ --backend openvino --show-dir work_dirs/ssdlite_shown
    # COCO box AP of the exported graph (here OpenVINO in bfloat16) on a COCO-format dataset
    python tools/deployment/ssdlite_onnx.py configs/ssdlite_rexnet_x1.0.py CHECKPOINT --out ssdlite.onnx \\
        --eval data/coco/annotations/instances_val2017.json --images data/coco/val2017 \\
        --backend openvino --precision bf16
    # latency at 320x320, batch 1: eager PyTorch, ONNX Runtime and OpenVINO, interleaved, 2 threads;
    # then where OpenVINO's time goes, by layer type
    python tools/deployment/ssdlite_onnx.py configs/ssdlite_rexnet_x1.0.py --out x1.0.onnx --benchmark --threads 2 \\
        --profile
    # several detectors in one run, each in every runtime, interleaved
    python tools/deployment/ssdlite_onnx.py configs/ssdlite_rexnet_lite_x1.0.py --out work_dirs/lite.onnx \\
        --benchmark --threads 2 --compare configs/ssdlite_rexnet_x1.0.py \\
        mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
from typing import List, Optional, Tuple

from rexnet_mmdet.deploy.backends import RUNTIMES
from rexnet_mmdet.deploy.runtimes import OPENVINO_PRECISIONS
from rexnet_mmdet.models.images import IMAGE_EXTENSIONS, image_files
from rexnet_mmdet.utils.cli import tool_main



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export an SSD / SSDLite detector with box decoding and NMS to ONNX, run it with ONNX '
                    'Runtime or OpenVINO on images, measure its COCO box AP, and time eager PyTorch, ONNX '
                    'Runtime and OpenVINO.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('Examples:')[1])
    parser.add_argument('config', help='config file, or a package config such as mmdet::ssd/...py')
    parser.add_argument('checkpoint', nargs='?',
                        help='trained weights; without them the weights are random (BatchNorm statistics '
                             'set on a random image), which is enough for timing but detects nothing')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--images', nargs='+', default=[], help='images or folders of images to detect in')
    parser.add_argument('--backend', choices=RUNTIMES, default='onnxruntime',
                        help='runtime for --images and --eval (default onnxruntime)')
    parser.add_argument('--precision', choices=tuple(OPENVINO_PRECISIONS), default='fp32',
                        help='compute precision for --images and --eval: fp32 (default) or bf16, OpenVINO only, '
                             'on CPUs with native bfloat16 (faster; scores differ in the third decimal)')
    parser.add_argument('--eval', metavar='ANN_FILE',
                        help='COCO box AP of the exported graph on this COCO-format annotation file; --images '
                             'gives the folder of its images')
    parser.add_argument('--show-dir', help='write each image with its detections drawn into this folder')
    parser.add_argument('--score-thr', type=float, default=0.3, help='least score drawn (default 0.3)')
    parser.add_argument('--benchmark', action='store_true',
                        help='time eager PyTorch (model.predict), ONNX Runtime and OpenVINO (float32, and '
                             'bfloat16 where the CPU has it), batch 1, interleaved')
    parser.add_argument('--compare', nargs='+', default=[], metavar='CONFIG',
                        help='with --benchmark: other SSD / SSDLite configs (random weights) exported beside --out '
                             'and timed in the same run, every model in every runtime, interleaved')
    parser.add_argument('--profile', action='store_true',
                        help="where OpenVINO's time goes: milliseconds per call by layer type, from its per-layer "
                             'counters (float32, and bfloat16 where the CPU has it), on the first of --images '
                             'or on a fixed noise image')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads for PyTorch and both runtimes (default: the usable cores)')
    parser.add_argument('--repeats', type=int, default=100,
                        help='timed calls of each, and profiled calls with --profile (default 100)')
    parser.add_argument('--warmup', type=int, default=10, help='untimed calls of each first (default 10)')
    parser.add_argument('--json', help='write the export, detection and timing summary to this file')
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1')
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be at least 1 and --warmup 0 or more')
    if args.show_dir and not args.images:
        parser.error('--show-dir needs --images')
    if args.precision != 'fp32' and args.backend != 'openvino':
        parser.error(f'--precision {args.precision} needs --backend openvino (ONNX Runtime computes in float32)')
    if args.eval and (len(args.images) != 1 or not os.path.isdir(args.images[0])):
        found = f' ({args.images[0]} is not a folder)' if len(args.images) == 1 else ''
        parser.error(f'--eval needs --images FOLDER: the one folder of the annotation file\'s images{found}; the '
                     f'built-in dataset (data/shapes/) is made by tools/misc/make_synthetic_dataset.py or by the '
                     f'first training on it')
    if args.compare and not args.benchmark:
        parser.error('--compare needs --benchmark')
    if args.eval and not args.checkpoint:
        parser.error('--eval needs a CHECKPOINT: random weights detect nothing')
    return args


def config_label(config: str) -> str:
    """``configs/ssdlite_rexnet_x1.0.py`` -> ``ssdlite_rexnet_x1.0``: how tables and file names call a config."""
    name = osp.basename(config.split('::')[-1])
    return name[:-3] if name.endswith('.py') else name


def input_size_of(cfg) -> Tuple[int, int]:
    """``(H, W)`` the config's test pipeline resizes every image to; the graph's fixed input size."""
    from mmdet.utils import get_test_pipeline_cfg

    resizes = [t for t in get_test_pipeline_cfg(cfg) if str(t.get('type', '')).split('.')[-1] == 'Resize']
    if len(resizes) != 1 or resizes[0].get('keep_ratio', False) or 'scale' not in resizes[0]:
        raise ValueError('the config\'s test pipeline must resize to one fixed size without keeping the aspect '
                        "ratio, as SSD configs do (dict(type='Resize', scale=(320, 320), keep_ratio=False)); "
                        f'found {[dict(t) for t in resizes]}')
    w, h = resizes[0]['scale']
    return int(h), int(w)


def load_detector(config: str, checkpoint: Optional[str]):
    """The detector of ``config`` in eval mode on the CPU, with ``checkpoint``'s weights (else random
    weights with BatchNorm statistics set on a random image); a checkpoint that does not fit the
    model is refused (:func:`rexnet_mmdet.apis.init_detector`). The class names are the
    checkpoint's, else the config's dataset's. MMDetection 3.3's ``SSDHead`` cannot predict (no
    ``loss_cls``); it is built as ``SSDLiteHead``, the same head with that fixed."""
    import rexnet_mmdet  # noqa: F401  (registers ReXNet, SSDLiteHead)
    from rexnet_mmdet.apis import init_detector
    from rexnet_mmdet.utils.build import build_detector, load_config

    try:
        cfg = load_config(config)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from e
    head = cfg.model.get('bbox_head', {})
    if str(head.get('type', '')).split('.')[-1] not in ('SSDHead', 'SSDLiteHead'):
        found = f'a {head.get("type")} bbox_head' if head else 'no bbox_head'
        raise ValueError(f'{config} has {found}; this tool exports SSD / SSDLite detectors (bbox_head of type '
                        f'SSDHead or SSDLiteHead)')
    head.type = 'SSDLiteHead'
    cfg.model.backbone.init_cfg = None  # no ImageNet download: the checkpoint holds every weight
    if checkpoint:
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise ValueError(f'checkpoint {checkpoint} does not exist: pass the path of a trained checkpoint, or '
                            f'none for random weights (timing only)')
        model = init_detector(cfg, checkpoint, device='cpu')
    else:
        h, w = input_size_of(cfg)
        model = build_detector(cfg, calibration_size=(w, h))
        model.cfg = cfg  # the export records the config's class names
    return model.eval(), cfg


def input_files(paths: List[str]) -> List[str]:
    files = []
    for path in paths:
        if osp.isdir(path):
            files += image_files(path)
        elif osp.isfile(path):
            files.append(path)
        else:
            raise ValueError(f'{path} is neither an image nor a folder')
    if not files:
        raise ValueError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) found in {" ".join(paths)}')
    return files


def detect(detector, files: List[str], show_dir: Optional[str], score_thr: float) -> List[dict]:
    import cv2

    from rexnet_mmdet.deploy.runtimes import draw_detections

    if show_dir:
        os.makedirs(show_dir, exist_ok=True)
    results = []
    for path in files:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f'{path} could not be read as an image')
        boxes, scores, labels = detector.predict(image)
        shown = int((scores >= score_thr).sum())
        names = detector.classes or []
        best = ', '.join(f'{names[l] if l < len(names) else l} {s:.2f}' for s, l in zip(scores[:3], labels[:3]))
        print(f'{path}: {len(scores)} detections, {shown} at score >= {score_thr:g}' + (f' (best: {best})'
                                                                                         if best else ''))
        if show_dir:
            cv2.imwrite(osp.join(show_dir, osp.basename(path)),
                        draw_detections(image, boxes, scores, labels, detector.classes, score_thr))
        results.append(dict(image=path, detections=len(scores), shown=shown))
    return results


def sample_input(onnx_path: str, image_path: Optional[str] = None):
    """What --benchmark and --profile run on: ``image_path`` (else a fixed noise image of the graph's
    input size, so that the graph and the model see the same thing) and its graph inputs ``x``,
    ``scale_factor``, preprocessed as the graph's metadata says."""
    import cv2
    import numpy as np

    from rexnet_mmdet.deploy.runtimes import preprocess, read_metadata

    meta = read_metadata(onnx_path)
    if image_path:
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    else:
        image = np.random.RandomState(0).randint(0, 256, (*meta['input_size'], 3), dtype=np.uint8)
    x, scale = preprocess(image, meta['input_size'], meta['mean'], meta['std'], meta['bgr_to_rgb'])
    return image, x, scale


def benchmark(models: List[Tuple[str, object, str]], threads: int, repeats: int, warmup: int,
              image_path: Optional[str] = None) -> dict:
    """Median seconds of eager PyTorch ``model.predict`` (as built, BatchNorm not folded), ONNX Runtime
    and OpenVINO (float32, and bfloat16 where the CPU has it), batch 1, for every ``(label, model,
    onnx_path)`` of ``models``: each on its own graph's preprocessed input (:func:`sample_input`), every
    model in every runtime timed in one run, interleaved."""
    import torch
    from mmdet.structures import DetDataSample

    from rexnet_mmdet.utils.timing import format_machine, load_average, machine_info, time_interleaved
    from rexnet_mmdet.deploy.runtimes import Detector, openvino_has_bf16

    if not openvino_has_bf16():
        print('OpenVINO bf16: not timed, this CPU has no native bfloat16')
    cases, counts, sizes = {}, {}, set()
    for label, model, onnx_path in models:
        image, x, scale = sample_input(onnx_path, image_path)
        runners = {'ONNX Runtime': Detector(onnx_path, 'onnxruntime', threads),
                   'OpenVINO': Detector(onnx_path, 'openvino', threads)}
        if openvino_has_bf16():
            runners['OpenVINO bf16'] = Detector(onnx_path, 'openvino', threads, precision='bf16')
        input_size = tuple(x.shape[2:])
        sizes.add(f'{input_size[0]}x{input_size[1]}')
        inputs = torch.from_numpy(x)
        sample = DetDataSample(metainfo=dict(img_shape=input_size, ori_shape=image.shape[:2],
                                             scale_factor=(float(scale[0]), float(scale[1]))))

        def eager(model=model, inputs=inputs, sample=sample):
            with torch.no_grad():
                return model.predict(inputs, [sample], rescale=True)

        cases[(label, 'PyTorch eager')] = eager
        counts[(label, 'PyTorch eager')] = len(eager()[0].pred_instances)
        for name, runner in runners.items():
            cases[(label, name)] = (lambda r, x=x, scale=scale: lambda: r.run(x, scale))(runner)
            counts[(label, name)] = len(runner.run(x, scale)[1])
    info = machine_info()
    print(format_machine(info))
    print(f'timing batch 1 at {", ".join(sorted(sizes))}, {threads} threads: {warmup} warm-up + {repeats} timed '
          f'calls each, {len(cases)} cases interleaved in turns of up to 10 calls')
    times = time_interleaved(cases, repeats, warmup, block=10, pause=0.3)
    load_after = load_average()
    medians = {key: statistics.median(t) for key, t in times.items()}
    first = models[0][0]
    for (label, name), t in medians.items():
        q = statistics.quantiles(times[(label, name)], n=4) if len(times[(label, name)]) > 1 else [t, t, t]
        versus = f'  {t / medians[(first, name)]:.3f}x {first}' if len(models) > 1 else ''
        print(f'  {label:28s} {name:15s} median {t * 1e3:8.2f} ms  IQR/median {(q[2] - q[0]) / t:.2f}  '
              f'{t / medians[(label, "PyTorch eager")]:.3f}x eager{versus}  ({counts[(label, name)]} detections)')
    print(f'load average before {info["load_average"]}, after {load_after}')
    timings = {label: {name: t for (lb, name), t in medians.items() if lb == label} for label, _, _ in models}
    detections = {label: {name: c for (lb, name), c in counts.items() if lb == label} for label, _, _ in models}
    if len(models) == 1:  # one detector: keyed by runtime alone
        timings, detections = timings[first], detections[first]
    return dict(timings=timings, detections=detections, threads=threads, input_size=sorted(sizes),
                load_before=info['load_average'], load_after=load_after, machine=format_machine(info))


def profile(onnx_path: str, threads: int, calls: int, warmup: int, x, scale) -> dict:
    """OpenVINO's per-layer-type milliseconds per call, float32 and (where the CPU has it) bfloat16, on
    the graph inputs ``x``, ``scale`` (:func:`sample_input`)."""
    from rexnet_mmdet.deploy.runtimes import openvino_has_bf16, openvino_profile

    inputs = {'input': x, 'scale_factor': scale}
    result = {}
    for precision in ('fp32', 'bf16') if openvino_has_bf16() else ('fp32',):
        layers = openvino_profile(onnx_path, threads, precision, calls=calls, warmup=warmup, inputs=inputs)
        total = sum(ms for _, ms in layers)
        print(f'OpenVINO {precision}, {threads} threads, per-layer counters over {calls} calls: {total:.2f} ms '
              f'per call in layers')
        for kind, ms in layers:
            if ms >= 0.05:
                print(f'  {kind:22s} {ms:7.2f} ms  {ms / total:6.1%}')
        result[precision] = dict(layers)
    return result


def run(argv=None) -> dict:
    """Run the tool; returns a summary (``'timings'``: median seconds per runtime with --benchmark)."""
    args = parse_args(argv)
    import torch

    from rexnet_mmdet.utils.timing import usable_cores
    from rexnet_mmdet.deploy.ssdlite_export import export_ssdlite

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    # --eval finds its images through the annotation file; the others take every image given.
    files = input_files(args.images) if args.images and (not args.eval or args.show_dir) else []
    model, cfg = load_detector(args.config, args.checkpoint)
    input_size = input_size_of(cfg)
    export_ssdlite(model, args.out, input_size)
    s = model.bbox_head.test_cfg
    print(f'wrote {args.out}: {type(model.backbone).__name__} {type(model.bbox_head).__name__}, input 1x3x'
          f'{input_size[0]}x{input_size[1]}, BatchNorm folded, score_thr {s.get("score_thr")}, nms_pre '
          f'{s.get("nms_pre")}, NMS IoU {s.nms.get("iou_threshold")}, max_per_img {s.get("max_per_img")}, '
          + (f'weights from {args.checkpoint}' if args.checkpoint else 'random weights (timing only)'))
    summary = dict(config=args.config, checkpoint=args.checkpoint, onnx=args.out, input_size=list(input_size))
    if files or args.eval:
        from rexnet_mmdet.deploy.runtimes import Detector
        detector = Detector(args.out, backend=args.backend, threads=threads, precision=args.precision)
        if args.eval:
            from rexnet_mmdet.deploy.coco_eval import evaluate_coco
            print(f'COCO box AP of {args.out} in {args.backend} ({args.precision}) on {args.eval}:')
            summary['eval'] = dict(evaluate_coco(detector, args.eval, args.images[0]), backend=args.backend,
                                   precision=args.precision, ann_file=args.eval)
        if files:
            summary['images'] = detect(detector, files, args.show_dir, args.score_thr)
    if args.benchmark or args.profile:
        if args.benchmark:
            models = [(config_label(args.config), model, args.out)]
            for config in args.compare:
                other, other_cfg = load_detector(config, None)
                path = osp.splitext(args.out)[0] + f'_{config_label(config)}.onnx'
                export_ssdlite(other, path, input_size_of(other_cfg))
                print(f'wrote {path}: {config}, random weights (timing only)')
                models.append((config_label(config), other, path))
            summary.update(benchmark(models, threads, args.repeats, args.warmup, files[0] if files else None))
        if args.profile:
            image, x, scale = sample_input(args.out, files[0] if files else None)
            summary['profile'] = profile(args.out, threads, args.repeats, args.warmup, x, scale)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=2)
    return summary


@tool_main
def main(argv=None) -> None:
    run(argv)


if __name__ == '__main__':
    sys.exit(main())
