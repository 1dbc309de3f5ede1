"""Parameters and FLOPs of ReXNet backbones and detector configs, beside the paper's numbers.

FLOPs count one multiply-add as one FLOP (the paper's convention). No dataset is needed.

Examples:
    python tools/analysis_tools/get_flops.py --backbone rexnet --widen-factor 0.9 1.0 1.3
    python tools/analysis_tools/get_flops.py configs/faster_rcnn_rexnet_x1.0_fpn.py --shape 1200 800
    python tools/analysis_tools/get_flops.py configs/ssdlite_rexnet_x1.0.py --shape 320
    python tools/analysis_tools/get_flops.py --all-configs --markdown
"""
import argparse
import glob
import os.path as osp
import sys
import time

from rexnet_mmdet.analysis.complexity import backbone_complexity, classifier_complexity, detector_complexity
from rexnet_mmdet.analysis.channel_configs import stagewise_block_channels
from rexnet_mmdet.analysis.paper import CONFIG_NAMES, paper_classifier, paper_detector
from rexnet_mmdet.models.width_names import width_tag
from rexnet_mmdet.utils.build import CONFIG_DIR
from rexnet_mmdet.utils.cli import add_shape_argument, fail, shape_wh, tool_main
from rexnet_mmdet.utils.tables import format_count, table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs (multiply-adds, as the paper counts them) of a ReXNet '
                    'backbone or of detector configs, beside the paper\'s numbers. Detectors are '
                    'counted from the image tensor to the heads\' raw outputs (backbone, neck, '
                    'heads; the RoI heads on the proposals the RPN returns), on one dummy image.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Sizes are WIDTH HEIGHT (as mmdet\'s Resize scale) or one number for a square. '
               'Configs pad the image like their data preprocessor (R-CNN: to a multiple of 32, so '
               '1200x800 is counted as 1216x800); --no-pad counts the unpadded size.')
    parser.add_argument('configs', nargs='*', help='detector config files')
    parser.add_argument('--all-configs', action='store_true',
                        help='all nine configs of configs/ (SSDLite, Faster and Mask R-CNN)')
    parser.add_argument('--backbone', choices=['rexnet'],
                        help='count a ReXNet ImageNet classifier and its backbone instead of a config')
    parser.add_argument('--widen-factor', nargs='+', type=float, default=[1.0],
                        help='width(s) for --backbone')
    parser.add_argument('--stagewise', action='store_true',
                        help='with --backbone: use the stage-wise (MobileNetV2-like) channels of '
                             'equal cost instead of the linear rule')
    add_shape_argument(parser, default_text='224 for --backbone, the paper\'s size for the nine configs '
                                            '(320 or 1200 800), else the config\'s test scale')
    parser.add_argument('--no-pad', action='store_true', help='do not pad the input to the '
                        'config\'s pad_size_divisor')
    parser.add_argument('--count-norm', action='store_true',
                        help='also count BatchNorm (2 FLOPs per element; it folds into the conv before '
                             'it at inference and the paper leaves it out)')
    parser.add_argument('--no-paper-size', action='store_true',
                        help='for the R-CNN configs, skip the second count at 1280x800 (the size that '
                             'reproduces the paper\'s FLOPs)')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    parser.add_argument('--detail', action='store_true',
                        help='also print FLOPs and parameters per top-level module')
    return parser.parse_args(argv)


def _size_text(shape) -> str:
    return f'{shape[-1]}x{shape[-2]}'


def _print_table(header, rows, markdown: bool) -> None:
    print(table(header, rows, markdown))


def _detail(result) -> None:
    for name, flops in result.by_module.items():
        params = result.params_by_module.get(name, 0)
        print(f'    {name:<12} FLOPs {format_count(flops):>8}   params {format_count(params):>8}')
    if result.unsupported_ops:
        ops = ', '.join(f'{k} x{v}' for k, v in sorted(result.unsupported_ops.items()))
        print(f'    not counted (no FLOP rule): {ops}')


def run_backbone(args) -> None:
    size = args.shape or [224]
    header = ['model', 'input', 'params', 'params (paper)', 'FLOPs', 'FLOPs (paper, 224)',
              'backbone FLOPs (to C5)']
    rows = []
    for w in args.widen_factor:
        channels = stagewise_block_channels(w) if args.stagewise else None
        cls = classifier_complexity(w, size, channels, count_norm=args.count_norm)
        bb = backbone_complexity(w, size, out_indices=(5,), block_channels=channels,
                                 count_norm=args.count_norm)
        paper = paper_classifier(w) if not args.stagewise else None
        name = f'ReXNet {width_tag(w)}' + (' stage-wise' if args.stagewise else '') + ' classifier'
        rows.append([name, _size_text(cls.input_shape), f'{cls.params_m:.2f}M',
                     f'{paper.params_m:.1f}M' if paper else '-', f'{cls.gflops:.3f}G',
                     f'{paper.gflops:.2f}G' if paper else '-', f'{bb.gflops:.3f}G'])
        if args.detail:
            print(f'{name}:')
            _detail(cls)
        if channels is not None:
            print(f'ReXNet {width_tag(w)} stage-wise block channels: {channels}')
    _print_table(header, rows, args.markdown)


def _config_list(args):
    configs = list(args.configs)
    if args.all_configs:
        found = {osp.splitext(osp.basename(p))[0]: p for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))}
        missing = [n for n in CONFIG_NAMES if n not in found]
        if missing:
            print(f'warning: configs/ lacks {", ".join(missing)}; counting the others', file=sys.stderr)
        configs += [found[n] for n in CONFIG_NAMES if n in found]
    return configs


def _count(path, size, args):
    name = osp.splitext(osp.basename(path))[0]
    start = time.time()
    try:
        result = detector_complexity(path, size, pad=not args.no_pad, count_norm=args.count_norm)
    except (FileNotFoundError, ValueError) as err:
        fail(f'{path}: {err}')
    print(f'[get_flops] {name}: counted in {time.time() - start:.0f}s; ' + '; '.join(result.notes),
          file=sys.stderr, flush=True)
    return result


def run_configs(args, configs) -> None:
    # The paper's R-CNN FLOPs are reproduced at 1280x800 (see rexnet_mmdet/analysis/paper.py):
    # count there too, unless a size was given.
    extra = args.shape is None and not args.no_paper_size and any(
        (p := paper_detector(osp.basename(c))) is not None and p.counted_size != p.input_size
        for c in configs)
    header = ['config', 'params (ours)', 'params (paper)', 'FLOPs (ours, input)']
    if extra:
        header.append('FLOPs (ours, 1280x800)')
    header += ['FLOPs (paper)', 'backbone / neck / heads']
    rows, notes = [], []
    for path in configs:
        name = osp.splitext(osp.basename(path))[0]
        paper = paper_detector(name)
        if args.shape:
            size = args.shape
        elif paper is not None:
            size = list(paper.input_size)
        else:
            size = None
        result = _count(path, size, args)
        parts = result.by_module
        heads = sum(v for k, v in parts.items() if k not in ('backbone', 'neck'))
        split = f'{parts.get("backbone", 0) / 1e9:.2f} / {parts.get("neck", 0) / 1e9:.2f} / {heads / 1e9:.2f}'
        row = [name, f'{result.params_m:.2f}M', '-' if paper is None else f'{paper.params_m:.1f}M',
               f'{result.gflops:.2f}G ({_size_text(result.input_shape)})']
        if extra:
            if paper is not None and paper.counted_size != paper.input_size:
                at_paper = _count(path, list(paper.counted_size), args)
                row.append(f'{at_paper.gflops:.2f}G')
            else:
                row.append('-')
        row.append('-' if paper is None else
                   f'{paper.gflops:.{2 if paper.gflops < 10 else 1}f}G ({paper.input_size[0]}x{paper.input_size[1]})')
        row.append(split)
        rows.append(row)
        notes.append(f'{name}: ' + '; '.join(result.notes))
        if args.detail:
            print(f'{name}:')
            _detail(result)
    _print_table(header, rows, args.markdown)
    print()
    print('FLOPs = multiply-adds (BatchNorm folded), counted from the image tensor to the heads\' raw '
          'outputs, without NMS; the last column splits the first FLOPs column (G). ')
    if extra:
        print('The paper\'s R-CNN FLOPs are reproduced at 1280x800 (MMDetection 2.x get_flops\'s default '
              'input), not at the 1200x800 it states; its Mask R-CNN FLOPs leave the mask head out.')
    for note in notes:
        print(f'  {note}')


@tool_main
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.shape is not None:
        shape_wh(args.shape)
    configs = _config_list(args)
    if args.backbone is None and not configs:
        fail('nothing to count: give config files, --all-configs or --backbone rexnet')
    if args.backbone is not None:
        run_backbone(args)
    if configs:
        if args.backbone is not None:
            print()
        run_configs(args, configs)


if __name__ == '__main__':
    sys.exit(main())
