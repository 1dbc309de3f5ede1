from .blocks import LinearBottleneck, SqueezeExcite
from .channels import (PUBLISHED_LITE_WIDTHS, PUBLISHED_WIDTHS, BlockSetting, TapSpec, block_settings,
                       linear_block_channels, lite_block_channels, out_channels, rounded_block_channels, tap_specs)
from .rexnet import ReXNet
from .ssdlite import SSDLiteAnchorGenerator, SSDLiteHead

__all__ = ['ReXNet', 'SSDLiteAnchorGenerator', 'SSDLiteHead', 'LinearBottleneck', 'SqueezeExcite', 'BlockSetting', 'TapSpec', 'block_settings',
           'linear_block_channels', 'lite_block_channels', 'rounded_block_channels', 'out_channels', 'tap_specs',
           'PUBLISHED_WIDTHS', 'PUBLISHED_LITE_WIDTHS']
