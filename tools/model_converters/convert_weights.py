#!/usr/bin/env python
"""Convert ReXNet ImageNet weights between key formats and widths, offline.

    python tools/model_converters/convert_weights.py rexnetv1_1.0.pth checkpoints/rexnet_x1.0_imagenet.pth
    python tools/model_converters/convert_weights.py rexnet_100.safetensors out.pth --format official
    python tools/model_converters/convert_weights.py rexnetv1_200.pth checkpoints/rexnet_x2.2_imagenet.pth \\
        --widen-factor 2.2
    python tools/model_converters/convert_weights.py rexnetv1_100.pth checkpoints/rexnet_x0.9_imagenet.pth \\
        --widen-factor 0.9 --calibrate-images data/coco/train2017 --num-images 256

The source format (official ReXNet-v1 or ReXNet-lite, timm rexnet_*/rexnetr_*, this project's, or a
detector checkpoint's backbone) and the family and width it was made for are recognised automatically.
The default output format, ``rexnet_mmdet``, records the family and width and holds no classifier.
``official`` and ``timm`` also write the source's classifier when it has one, so the file loads strictly
into the reference model (timm: ``timm.create_model(NAME, num_classes=CLASSES)``); from a source without
one (``rexnet_mmdet``, a detector) they hold the backbone only, which ``timm.create_model(NAME,
num_classes=0)`` loads strictly. timm has no ReXNet-lite: lite weights convert to official or rexnet_mmdet.
An output name ending in ``.safetensors`` is written as safetensors.

``--widen-factor W`` (ReXNet-v1 only) carries the weights to width W: exactly (the same function, ImageNet logits
included) when W is at least the source's width, approximately when it is smaller (the most important
channels are kept; ``--calibrate-images`` then re-estimates BatchNorm statistics and prints how far
the features drift from the source's). ``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads the
result.
"""
import argparse
import sys

from rexnet_mmdet.models.channels import family_name
from rexnet_mmdet import CheckpointError
from rexnet_mmdet.models.weights import FORMATS, convert_checkpoint
from rexnet_mmdet.models.weights.transfer import transfer_checkpoint
from rexnet_mmdet.models.width_names import format_width
from rexnet_mmdet.utils.cli import tool_main


@tool_main(errors=(CheckpointError,))
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint: path or URL (.pth or .safetensors)')
    parser.add_argument('dst', help='output path: .pth, or .safetensors to write safetensors')
    parser.add_argument('--format', default='rexnet_mmdet', choices=FORMATS, help='output key format')
    parser.add_argument('--widen-factor', type=float, help='carry the weights to this width')
    parser.add_argument('--exact', action='store_true',
                        help='fail unless the transfer is exact (every layer at least as wide as the source); '
                             'not with --noise')
    parser.add_argument('--noise', type=float, default=0.0, metavar='STD',
                        help='Gaussian noise added to every conv/linear weight, as a fraction of its std, to '
                             'break the symmetry of copied channels (default 0: exact)')
    parser.add_argument('--seed', type=int, default=0, help='seed of --noise')
    parser.add_argument('--calibrate-images', metavar='DIR',
                        help='folder of images (e.g. COCO train2017) to re-estimate BatchNorm after narrowing')
    parser.add_argument('--num-images', type=int, default=64, help='images taken from --calibrate-images')
    args = parser.parse_args(argv)
    width_only = [name for name, given in (('--exact', args.exact), ('--noise', args.noise),
                                           ('--calibrate-images', args.calibrate_images)) if given]
    if args.exact and args.noise:
        parser.error('--exact and --noise exclude each other: noise changes the function an exact widening keeps')
    if args.widen_factor is None:
        if width_only:
            parser.error(f'{", ".join(width_only)} needs --widen-factor')
        src_fmt, family, classifier = convert_checkpoint(args.src, args.dst, args.format)
        made_for = (f'widen_factor={format_width(family.widen_factor)} ({family_name(family.arch, family.channel_divisor)})'
                    if family is not None else 'a custom channel configuration')
        head = 'with the classifier' if classifier else 'no classifier'
        if args.format == 'timm' and not classifier:
            head += '; timm.create_model(NAME, num_classes=0) loads it strictly'
        print(f'{args.src}: {src_fmt} format, {made_for} -> {args.dst} ({args.format} format, {head})')
    else:
        report = transfer_checkpoint(args.src, args.dst, args.widen_factor, args.format,
                                     require_exact=args.exact, noise=args.noise, seed=args.seed,
                                     calibrate_images=args.calibrate_images, num_images=args.num_images)
        print('\n'.join(report.lines()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
