"""Rank of a backbone's final features over a set of images (the paper's §6, Figure 5).

For each backbone: the globally pooled final features of every image form a matrix
(images x channels); its singular values give the nuclear norm (the paper's rank measure) and
the cumulative distribution of the singular values normalised to [0, 1].

Examples:
    # trained vs. random ReXNet-1.0 on the images of a folder
    python tools/analysis_tools/feature_rank.py --images data/coco/val2017 --num-images 500 \\
        --backbone trained=rexnet:1.0:checkpoints/rexnetv1_1.0.pth --backbone rexnet:1.0
    # a detector's backbone (detector checkpoint: its backbone.* weights are used)
    python tools/analysis_tools/feature_rank.py --synthetic \\
        --config configs/faster_rcnn_rexnet_x1.0_fpn.py:work_dirs/demo/epoch_12.pth
    # linear vs. stage-wise channels (random weights: shows the architecture alone)
    python tools/analysis_tools/feature_rank.py --backbone rexnet:1.0 --backbone rexnet-stagewise:1.0
"""
import argparse
import os
import sys
import time

from rexnet_mmdet.analysis.feature_rank import (backbone_from_spec, feature_rank, folder_images, parse_backbone_spec,
                                                parse_config_spec, pooled_features, random_images,
                                                synthetic_images)
from rexnet_mmdet.analysis.report import plot_feature_rank
from rexnet_mmdet.models.norms import calibrate_batchnorm
from rexnet_mmdet.utils.cli import fail, tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Nuclear norm and singular values of the globally pooled final features of '
                    'one or more backbones over a set of images (paper §6, Figure 5). Writes a PNG '
                    'and prints the numbers.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Backbones: --backbone [LABEL=]KIND:WIDTH[:CHECKPOINT] with KIND rexnet or '
               'rexnet-stagewise (the stage-wise channels of equal FLOPs, see '
               'tools/analysis_tools/plot_channels.py); no checkpoint = random initialisation. '
               '--config [LABEL=]CONFIG.py[:CHECKPOINT] takes the backbone of a detector config. '
               'Randomly initialised backbones get their BatchNorm statistics from the images. '
               'Checkpoints: ImageNet (official, timm, this project\'s) or detector checkpoints; '
               'always read with weights_only loading.\n'
               'Images: --images DIR, else --synthetic (shapes drawn in memory), else random '
               'normal inputs.')
    parser.add_argument('--backbone', action='append', default=[], metavar='SPEC')
    parser.add_argument('--config', action='append', default=[], metavar='SPEC')
    parser.add_argument('--images', help='folder of images (jpg, png, ...)')
    parser.add_argument('--synthetic', action='store_true',
                        help='use images of the built-in synthetic shapes dataset')
    parser.add_argument('--num-images', type=int, default=256,
                        help='images to use (the first ones of a folder, by name)')
    parser.add_argument('--size', type=int, default=224, help='images are resized to SIZE x SIZE')
    parser.add_argument('--tap', type=int,
                        help='feature point (out_indices entry) to analyse: 5 = C5, 6 = final 1x1 conv; '
                             'default 6 for --backbone, the last output of a config\'s backbone')
    parser.add_argument('--no-center', action='store_true',
                        help='do not subtract the mean feature before the SVD')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/analysis/feature_rank.png', help='PNG to write')
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    specs = [parse_backbone_spec(s) for s in args.backbone] + [parse_config_spec(s) for s in args.config]
    if not specs:
        specs = [parse_backbone_spec('rexnet:1.0'), parse_backbone_spec('rexnet-stagewise:1.0')]
        print('[feature_rank] no backbone given: comparing rexnet:1.0 and rexnet-stagewise:1.0 '
              '(random weights)')
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        fail(f'two backbones share a label ({labels}); name them with LABEL=SPEC')
    if args.num_images < 2:
        fail(f'--num-images must be at least 2, got {args.num_images}')
    if args.images:
        images, source = folder_images(args.images, args.size, args.num_images), args.images
    elif args.synthetic:
        images, source = synthetic_images(args.num_images, args.size, args.seed), 'synthetic shapes'
    else:
        images, source = random_images(args.num_images, args.size, args.seed), 'random normal inputs'
    print(f'[feature_rank] {images.shape[0]} images ({source}) at {args.size}x{args.size}')

    results = {}
    for spec in specs:
        try:
            # One seed for every spec: equal specs get the same random initialisation.
            backbone = backbone_from_spec(spec, args.tap, seed=args.seed)
        except (FileNotFoundError, ValueError) as err:
            fail(f'{spec.label}: {err}')
        if not spec.checkpoint:
            # Random weights: BN statistics from the images (see rexnet_mmdet.models.norms.calibrate_batchnorm).
            calibrate_batchnorm(backbone, images, batch_size=args.batch_size)
        feats = pooled_features(backbone, images, args.batch_size)
        results[spec.label] = feature_rank(feats, center=not args.no_center)
        r = results[spec.label]
        print(f'[feature_rank] {spec.label}: features {r.shape[0]}x{r.shape[1]} '
              f'({time.time() - start:.0f}s)', flush=True)

    name_w = max(len(k) for k in results) + 2
    print(f'\n{"backbone":<{name_w}}{"features":>12}{"nuclear norm":>15}{"sum/max":>10}{"rank":>7}'
          f'{"sv>0.1max":>11}')
    for label, r in results.items():
        sv = r.singular_values
        big = int((sv > 0.1 * sv[0]).sum()) if sv.numel() else 0
        print(f'{label:<{name_w}}{f"{r.shape[0]}x{r.shape[1]}":>12}{r.nuclear_norm:>15.4g}'
              f'{r.normalized_nuclear_norm:>10.2f}{r.rank:>7}{big:>11}')
    print('nuclear norm: sum of singular values of the (centred) images x channels feature matrix; '
          'sum/max: the same over the largest singular value (scale-free); rank: numerical rank; '
          'sv>0.1max: singular values above a tenth of the largest.')
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    plot_feature_rank(results, args.out, title=f'Rank of the final features over {images.shape[0]} '
                                               f'images ({source})')
    print(f'wrote {args.out} ({time.time() - start:.0f}s)')


if __name__ == '__main__':
    sys.exit(main())
