from .blocks import LinearBottleneck, SqueezeExcite
from .channels import (PUBLISHED_WIDTHS, BlockSetting, TapSpec, block_settings, linear_block_channels,
                       out_channels, tap_specs)
from .rexnet import ReXNet
from .ssdlite_anchor import SSDLiteAnchorGenerator

__all__ = ['ReXNet', 'SSDLiteAnchorGenerator', 'LinearBottleneck', 'SqueezeExcite', 'BlockSetting', 'TapSpec', 'block_settings',
           'linear_block_channels', 'out_channels', 'tap_specs', 'PUBLISHED_WIDTHS']
