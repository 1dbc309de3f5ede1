"""Evaluate a trained detector on a COCO-format dataset (box AP; mask AP for Mask R-CNN).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
                         [--show-dir DIR] [--cfg-options KEY=VALUE ...]
                         [--launcher {none,pytorch,slurm,mpi}] [--no-optimize]
                         [--backend {torch,onnxruntime,openvino}]
                         [--test-dev IMAGE_INFO [--test-dev-images DIR] [--alg NAME]]

The model is evaluated on the inference path (rexnet_mmdet.deploy.optimize_for_inference: BatchNorm
folded into the convs, backbone channels-last, batched RoI Align), applied after the checkpoint is
loaded; it computes what the model as built computes, faster. The process keeps freed memory for reuse
(rexnet_mmdet.deploy.keep_freed_memory). --no-optimize evaluates the model as built, with the C
library's malloc; --backend openvino runs the backbone in OpenVINO (the fastest CPU path for ReXNet).

Evaluation is pycocotools' COCOeval through mmdet's CocoMetric; the 12 standard numbers
are printed as a table. Several GPUs: tools/dist_test.sh. --test-dev predicts on the images of a COCO
image-info file (image_info_test-dev2017.json) and writes the zipped JSONs COCO's evaluation server takes
(rexnet_mmdet.engine.test_dev).
"""
import argparse
import os.path as osp
import sys

import rexnet_mmdet.datasets  # noqa: F401  (registers ShapesDataset)
from rexnet_mmdet.deploy import cpu_memory
from rexnet_mmdet.deploy.backends import BACKENDS
from rexnet_mmdet.deploy.inference_hook import InferencePathHook
from rexnet_mmdet.engine import RUN_ERRORS, DatasetCheckError, add_guard, check_run_data, prepare_checkpoints
from rexnet_mmdet.engine import test_dev
from rexnet_mmdet.engine.launch import (add_common_arguments, build_runner, flush_denormals_on_cpu, is_main_process,
                                        load_run_config, prepare_distributed, use_standard_coco_summary)
from rexnet_mmdet.utils.cli import fail, keep_tracebacks, tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a detector on a COCO-format dataset')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth), or an http(s) URL')
    parser.add_argument('--out', help='also dump the raw predictions to this pickle file (.pkl)')
    parser.add_argument('--show-dir', help='draw detections (and masks) on every image into this folder')
    parser.add_argument('--no-optimize', action='store_true',
                        help='evaluate the model as built, not on the inference path (optimize_for_inference)')
    parser.add_argument('--backend', choices=BACKENDS, default='torch',
                        help='where the optimized backbone runs (default: torch; onnxruntime and openvino '
                             'export it to ONNX first and are faster on CPUs)')
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not check the dataset before building the model')
    parser.add_argument('--test-dev', metavar='IMAGE_INFO',
                        help='write a COCO test-dev submission instead of evaluating: predict on the images of '
                             'this image-info file (image_info_test-dev2017.json) and write '
                             '<work_dir>/test-dev/<alg>.bbox.json (+ .segm.json) and their zips')
    parser.add_argument('--test-dev-images', metavar='DIR',
                        help='with --test-dev: the folder of its images (COCO: data/coco/test2017/; default: the '
                             'config\'s test images)')
    parser.add_argument('--alg', help='with --test-dev: the algorithm name in the submitted file name '
                                      '(letters, digits, hyphens; default: the config name)')
    add_common_arguments(parser)
    return parser.parse_args(argv)


def _alg_name(args: argparse.Namespace) -> str:
    return args.alg or osp.splitext(osp.basename(args.config))[0].replace('_', '-').replace('.', '-')


def configure(args: argparse.Namespace):
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} not found (absolute path {osp.abspath(args.checkpoint)})')
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    prepare_checkpoints(cfg, 'test')
    add_guard(cfg)
    use_standard_coco_summary(cfg)

    if args.show_dir:
        if 'visualization' not in cfg.get('default_hooks', {}):
            fail(f'--show-dir needs default_hooks.visualization (a DetVisualizationHook) in {args.config}')
        hook = cfg.default_hooks.visualization
        hook.draw = True
        # An absolute path: mmdet would otherwise put the pictures under <work_dir>/<timestamp>/.
        hook.test_out_dir = osp.abspath(args.show_dir)

    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            fail(f'--out {args.out}: the predictions are written as a pickle; give a .pkl file name')
        dump = dict(type='DumpDetResults', out_file_path=args.out)
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = list(evaluators) + [dump]
    if args.test_dev:
        test_dev.check_alg_name(_alg_name(args))
        args.test_dev_files = test_dev.use_test_dev(cfg, args.test_dev, osp.join(cfg.work_dir, 'test-dev',
                                                    _alg_name(args)), args.test_dev_images)
    return cfg


def run(argv=None) -> dict:
    """Evaluate as the command line says; the metrics (what mmengine's ``Runner.test()`` returns).
    The project's errors propagate: :func:`main` turns them into one line."""
    args = parse_args(argv)
    cfg = configure(args)
    if not args.skip_data_check and is_main_process():
        check_run_data(cfg, ['test_dataloader'])
    prepare_distributed(cfg)
    flush_denormals_on_cpu()
    with keep_tracebacks(except_for=RUN_ERRORS):  # mmengine's and mmdet's own errors keep their traceback
        runner = build_runner(cfg)
        if not args.no_optimize:
            # A hook, because Runner.test() loads the checkpoint itself, after this point.
            runner.register_hook(InferencePathHook(backend=args.backend))
            cpu_memory.keep_freed_memory()
        if is_main_process():
            print('[test] inference path: ' + ('off (--no-optimize): the model as built' if args.no_optimize
                                               else 'on (optimize_for_inference after loading the checkpoint; '
                                               f'{cpu_memory.describe()}; --no-optimize turns both off)'),
                  flush=True)
        metrics = runner.test()
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    uses_coco = any(isinstance(ev, dict) and ev.get('type') == 'CocoMetric' for ev in evaluators)
    if is_main_process() and args.test_dev:
        for path in args.test_dev_files:
            if osp.isfile(path):
                counts = test_dev.submission_summary(path)
                print(f'[test] {path}: {counts["detections"]} detections on {counts["images"]} images, '
                      f'{counts["categories"]} categories; for COCO\'s server: '
                      f'{test_dev.zip_submission(path, _alg_name(args))}', flush=True)
            else:
                print(f'[test] {path} not written: the model made no detection on any image', flush=True)
    elif is_main_process():
        if uses_coco and not any(k.startswith('coco/') for k in metrics or {}):
            # mmdet logs "The testing results of the whole dataset is empty" and returns nothing.
            print('[test] no COCO metrics: the model made no detection on any image, so every AP is 0 '
                  '(an untrained model, or a score threshold such as model.test_cfg.rcnn.score_thr too high)',
                  flush=True)
        if args.show_dir:
            print(f'[test] pictures of the detections: {osp.abspath(args.show_dir)}', flush=True)
    return metrics


@tool_main(errors=(DatasetCheckError,))
def main(argv=None) -> None:
    run(argv)


if __name__ == '__main__':
    sys.exit(main())
