#!/usr/bin/env python
"""Convert ReXNet ImageNet weights between key formats, offline.

    python tools/convert_weights.py rexnetv1_1.0.pth checkpoints/rexnet_x1.0_imagenet.pth
    python tools/convert_weights.py rexnet_100.safetensors out.pth --format official

The source format (official ReXNet-v1, timm, or this project's) is recognised automatically and the
classifier is dropped. The default output format, ``rexnet_mmdet``, records the width it was made for;
``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads any of the three.
"""
import argparse
import sys

from rexnet_mmdet.models.weights import FORMATS, CheckpointError, convert_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint: path or URL (.pth or .safetensors)')
    parser.add_argument('dst', help='output path (.pth; .safetensors for --format timm/official)')
    parser.add_argument('--format', default='rexnet_mmdet', choices=FORMATS, help='output key format')
    args = parser.parse_args(argv)
    try:
        src_fmt, width = convert_checkpoint(args.src, args.dst, args.format)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    width_text = f'widen_factor={width:g}' if width is not None else 'a non-linear channel configuration'
    print(f'{args.src}: {src_fmt} format, {width_text} -> {args.dst} ({args.format} format, no classifier)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
