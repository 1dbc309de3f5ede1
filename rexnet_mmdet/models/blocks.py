"""Building blocks of ReXNet (every family): squeeze-excitation with a norm layer and the linear bottleneck."""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks import DropPath

from .channels import BlockSetting


def _exporting() -> bool:
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()


class SqueezeExcite(nn.Module):
    """Squeeze-excitation as ReXNet has it: pool -> 1x1 conv -> norm -> ReLU -> 1x1 conv -> sigmoid.

    Args:
        channels: channels of the input (the block's expanded width).
        squeeze_channels: width of the bottleneck (``channels // 12`` in ReXNet).
        norm_cfg: norm layer after the first 1x1 conv.
    """

    def __init__(self, channels: int, squeeze_channels: int, norm_cfg: dict):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1, bias=True)
        self.bn_name, bn = build_norm_layer(norm_cfg, squeeze_channels, postfix='')
        # Always called ``bn`` so checkpoints keep one key format whatever the norm type.
        self.bn = bn
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(self.act(self.bn(self.fc1(s))))
        return x * s.sigmoid()


class LinearBottleneck(nn.Module):
    """One ReXNet block: [1x1 expansion -> act] -> 3x3 depthwise -> [SE] -> ReLU6 -> 1x1 linear.

    ``act`` is ``setting.activation``: SiLU in ReXNet-v1 and ReXNet-R, ReLU6 in ReXNet-lite (no SE).

    When ``stride == 1`` and ``in_channels <= out_channels`` the input is added to the first
    ``in_channels`` output channels only (partial residual); the other channels pass unchanged.

    Args:
        setting: the block's channels, stride, expansion ratio and SE flag (from ``block_settings``).
        norm_cfg: norm layers' config.
        drop_path_rate: stochastic depth on the residual branch (only blocks with a residual).
        expansion_only: build only the 1x1 expansion (used when the backbone's last requested
            tap is this block's expansion, so nothing past it is built).
    """

    def __init__(self, setting: BlockSetting, norm_cfg: dict, drop_path_rate: float = 0.0,
                 expansion_only: bool = False):
        super().__init__()
        self.setting = setting
        self.in_channels = setting.in_channels
        self.out_channels = setting.out_channels
        self.use_residual = setting.use_residual
        self.expansion_only = expansion_only
        hidden = setting.hidden_channels
        if setting.expand_ratio != 1:
            self.conv_exp = ConvModule(setting.in_channels, hidden, 1, bias=False,
                                       norm_cfg=norm_cfg, act_cfg=dict(type=setting.activation))
        else:
            if expansion_only:
                raise ValueError(f'block {setting.index} has no expansion layer to stop at')
            self.conv_exp = None
        if expansion_only:
            return
        self.conv_dw = ConvModule(hidden, hidden, 3, stride=setting.stride, padding=1, groups=hidden,
                                  bias=False, norm_cfg=norm_cfg, act_cfg=None)
        self.se = SqueezeExcite(hidden, setting.se_channels, norm_cfg) if setting.use_se else None
        self.act_dw = nn.ReLU6(inplace=True)
        self.conv_pwl = ConvModule(hidden, setting.out_channels, 1, bias=False,
                                   norm_cfg=norm_cfg, act_cfg=None)
        self.drop_path = DropPath(drop_path_rate) if (drop_path_rate > 0 and self.use_residual) \
            else nn.Identity()

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 expansion (identity for the block without one)."""
        return x if self.conv_exp is None else self.conv_exp(x)

    def forward_expanded(self, x: torch.Tensor, expanded: torch.Tensor) -> torch.Tensor:
        """The rest of the block, given its input ``x`` and ``expand(x)``."""
        out = self.conv_dw(expanded)
        if self.se is not None:
            out = self.se(out)
        out = self.conv_pwl(self.act_dw(out))
        if not self.use_residual:
            return out
        out = self.drop_path(out)
        c = self.in_channels
        if _exporting() or c == out.shape[1]:
            # Out of place: trace/ONNX friendly (and the full-width case is a plain add).
            return torch.cat([out[:, :c] + x, out[:, c:]], dim=1) if c < out.shape[1] else out + x
        # In place on the first ``c`` channels: one pass over the input instead of a full copy.
        # Safe for autograd: the norm layer that produced ``out`` does not save its output.
        out[:, :c] += x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.expansion_only:
            raise RuntimeError('this block was built up to its expansion only; call expand()')
        return self.forward_expanded(x, self.expand(x))


def build_stem(out_channels: int, norm_cfg: dict, in_channels: int = 3, act: str = 'SiLU') -> ConvModule:
    """3x3 stride-2 conv -> norm -> act (SiLU; ReLU6 in ReXNet-lite)."""
    return ConvModule(in_channels, out_channels, 3, stride=2, padding=1, bias=False,
                      norm_cfg=norm_cfg, act_cfg=dict(type=act))


def build_final_conv(in_channels: int, out_channels: int, norm_cfg: dict, act: str = 'SiLU') -> ConvModule:
    """The final 1x1 conv (``int(1280 * w)`` channels in v1) -> norm -> act (SiLU; ReLU6 in ReXNet-lite)."""
    return ConvModule(in_channels, out_channels, 1, bias=False, norm_cfg=norm_cfg,
                      act_cfg=dict(type=act))


__all__ = ['SqueezeExcite', 'LinearBottleneck', 'build_stem', 'build_final_conv']
