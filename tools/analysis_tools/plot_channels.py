"""Channel configuration by block index (the paper's Figure 2 / Table 1 view), as a PNG.

For each width: ReXNet's linear configuration (channels grow by the same step every block)
against a stage-wise configuration (one channel count per stage, the MobileNetV2 pattern
16-24-32-64-96-160 scaled until its multiply-adds at 224x224 match the linear one's).

The stage-wise configuration is a drop-in for experiments::

    from rexnet_mmdet.analysis.channel_configs import stagewise_block_channels
    backbone = dict(type='ReXNet', widen_factor=1.0, block_channels=stagewise_block_channels(1.0))

Example:
    python tools/analysis_tools/plot_channels.py --widen-factor 0.9 1.0 1.3
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use('Agg')  # a tool writes files: no display needed
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from rexnet_mmdet.analysis.channel_configs import (MOBILENETV2_STAGE_CHANNELS, backbone_macs,  # noqa: E402
                                                   stagewise_block_channels)
from rexnet_mmdet.models.channels import (STAGE_DEPTHS, check_widen_factor, linear_block_channels,  # noqa: E402
                                          stem_channels)
from rexnet_mmdet.models.width_names import width_tag  # noqa: E402
from rexnet_mmdet.utils.cli import tool_main  # noqa: E402

#: MobileNetV2 itself (paper Table 1): 17 blocks, 16(x1)-24(x2)-32(x3)-64(x4)-96(x3)-160(x3)-320(x1).
MOBILENETV2_BLOCKS = [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot the output channels of the 16 ReXNet blocks by block index for one or '
                    'more widths: the linear configuration (ReXNet) against a stage-wise, '
                    'MobileNetV2-like configuration of equal multiply-adds at 224x224 '
                    '(rexnet_mmdet.analysis.channel_configs.stagewise_block_channels; build it with '
                    "dict(type='ReXNet', widen_factor=W, block_channels=stagewise_block_channels(W))). "
                    'Prints both channel lists and their cost.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--widen-factor', nargs='+', type=float, default=[1.0], help='width(s)')
    parser.add_argument('--no-stagewise', action='store_true', help='plot the linear configurations only')
    parser.add_argument('--mobilenetv2', action='store_true',
                        help='also plot MobileNetV2\'s own 17 blocks (paper Table 1) for reference')
    parser.add_argument('--out', default='work_dirs/analysis/channels.png', help='PNG to write')
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> None:
    args = parse_args(argv)
    widths = [check_widen_factor(w) for w in args.widen_factor]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    colors = plt.get_cmap('tab10')
    blocks = list(range(len(linear_block_channels(1.0))))
    for i, w in enumerate(widths):
        linear = linear_block_channels(w)
        macs = backbone_macs(w, None) / 1e6
        print(f'{width_tag(w)} linear     stem {stem_channels(w)}, blocks {linear} ({macs:.0f}M multiply-adds at 224x224)')
        ax.plot(blocks, linear, color=colors(i % 10), marker='o', ms=4, lw=2,
                label=f'ReXNet {width_tag(w)}, linear ({macs:.0f}M MACs)')
        if not args.no_stagewise:
            stagewise = stagewise_block_channels(w)
            smacs = backbone_macs(w, stagewise) / 1e6
            print(f'{width_tag(w)} stage-wise stem {stem_channels(w)}, blocks {stagewise} ({smacs:.0f}M multiply-adds, '
                  f'{100 * (smacs / macs - 1):+.1f}%)')
            ax.plot(blocks, stagewise, color=colors(i % 10), ls='--', marker='s', ms=3.5, lw=1.5,
                    drawstyle='steps-mid', label=f'stage-wise {width_tag(w)} ({smacs:.0f}M MACs)')
    if args.mobilenetv2:
        ax.plot(range(len(MOBILENETV2_BLOCKS)), MOBILENETV2_BLOCKS, color='0.4', ls=':', marker='^', ms=3.5,
                label='MobileNetV2 (17 blocks, Table 1)')
    # Stage boundaries (ReXNet: 1, 2, 2, 3, 3, 5 blocks)
    edge = -0.5
    for s, depth in enumerate(STAGE_DEPTHS, start=1):
        ax.axvline(edge, color='0.85', lw=0.8, zorder=0)
        ax.text(edge + depth / 2, 1.0, f'stage {s}', transform=ax.get_xaxis_transform(), ha='center',
                va='bottom', fontsize=8, color='0.4')
        edge += depth
    ax.set_xticks(range(len(MOBILENETV2_BLOCKS)) if args.mobilenetv2 else blocks)
    ax.set_xlabel('block index')
    ax.set_ylabel('output channels')
    ax.set_title('Channel configuration: linear (ReXNet) vs. stage-wise of equal FLOPs', pad=18)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='upper left')
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f'stage-wise pattern: MobileNetV2 stages {"-".join(map(str, MOBILENETV2_STAGE_CHANNELS))} '
          f'x one scale, block 0 as in the linear rule')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
