"""The ReXNet backbone for MMDetection: ReXNet-v1, ReXNet-R and ReXNet-lite."""
import contextlib
import logging
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmdet.registry import MODELS
from mmengine.logging import MessageHub, MMLogger, print_log
from mmengine.model import BaseModule

from .blocks import LinearBottleneck, build_final_conv, build_stem
from .channels import (EXPANSION_TAP, FINAL_TAP, STAGE_DEPTHS, TapSpec, activation, block_settings, check_family,
                       check_out_indices, check_widen_factor, family_name, final_channels, stem_channels,
                       tap_specs)
from .norms import is_batch_norm
from .one_image_batch import one_image_step, running_statistics
from .width_names import format_width

#: frozen_stages: -1 nothing, 0 the stem, k in 1..6 the stem and stages 1..k, 7 also the final conv.
MAX_FROZEN_STAGES = len(STAGE_DEPTHS) + 1


def _recompute_keeps_buffers(module: nn.Module):
    """``context_fn`` for ``torch.utils.checkpoint``: the recomputation in backward leaves
    ``module``'s buffers (BatchNorm running statistics, ``num_batches_tracked``) as the forward
    pass left them, so they are updated once per step, as without checkpointing."""

    @contextlib.contextmanager
    def recompute():
        saved = [(b, b.clone()) for b in module.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, value in saved:
                    buffer.copy_(value)

    return lambda: (contextlib.nullcontext(), recompute())


def _on_running_statistics(fn, module: nn.Module):
    """``fn`` run with ``module``'s training-mode BatchNorm layers on their running statistics."""

    def run(*args):
        with running_statistics(module):
            return fn(*args)

    return run


def _iteration() -> Optional[int]:
    # The training iteration (1-based, as the log counts) when inside a Runner.
    hub = MessageHub.get_current_instance()
    iteration = hub.get_info('iter') if hub.instance_name != 'mmengine' else None
    return None if iteration is None else iteration + 1


#: What a one-image batch switched when the backbone handled it itself (no ReXNetGuardHook).
ONE_IMAGE_SCOPE = 'the ReXNet backbone (no ReXNetGuardHook in the config: the neck\'s and heads\' are not switched)'


@MODELS.register_module()
class ReXNet(BaseModule):
    """ReXNet backbone ("Rethinking Channel Dimensions for Efficient Model Design", CVPR 2021).

    Three families, each computing exactly what its reference model computes and loading its
    ImageNet weights (see :mod:`rexnet_mmdet.models.weights`):

    * ReXNet-v1 (default): the official ``rexnetv1``; official, timm ``rexnet_*`` and this project's formats.
    * ReXNet-R (``channel_divisor=8``, or 16 for ``rexnetr_300``): timm's ``rexnetr_*``, every channel
      count rounded to a multiple of the divisor; timm format.
    * ReXNet-lite (``arch='lite'``): the official ``rexnetv1_lite``: no squeeze-excitation, ReLU6 after
      the stem, every expansion and the final conv, channels in multiples of 8; official lite format.

    Every argument works for every family, except two that are refused with a ``ValueError`` naming
    the family: ``block_channels`` (ReXNet-v1 only) and ``init_cfg``'s ``width_transfer`` (ReXNet-v1 only).

    Args:
        widen_factor: width multiplier ``w`` (any positive number; published: 0.9, 1.0, 1.3,
            1.5, 2.0, 2.2, 3.0; lite 1.0, 1.3, 1.5, 2.0). Channels follow the family's rule in :mod:`.channels`.
        arch: ``'v1'`` (ReXNet-v1 and ReXNet-R) or ``'lite'``.
        channel_divisor: ReXNet-v1 only: 1 (default, the paper's ReXNet-v1), 8 or 16 (ReXNet-R). ReXNet-lite
            always rounds to 8 (leave it unset).
        out_indices: feature points to return, numbered in the order they are computed:
            0 block 0 (stride 2) · 1 block 2 (C2, /4) · 2 block 4 (C3, /8) · 3 block 10 (C4, /16) ·
            4 block 11's 1x1 expansion after its activation (/16, the SSDLite tap) · 5 block 15 (C5, /32) ·
            6 the final 1x1 conv, ``int(1280 * w)`` channels in v1, with norm and activation (/32).
            FPN detectors use ``(1, 2, 3, 5)``, SSDLite ``(4, 6)``. Nothing past the last
            requested tap is built.
        frozen_stages: -1 freezes nothing; 0 the stem; k in 1..6 the stem and stages 1..k
            (stage depths 1, 2, 2, 3, 3, 5 blocks); 7 also the final conv. Frozen layers get no
            gradient and their norm layers stay in eval mode through ``model.train()``.
        norm_cfg: norm layers (``BN``, ``SyncBN``, ``GN`` ...).
        norm_eval: keep every BatchNorm (incl. SyncBN and mmcv's MMSyncBN) in eval mode during training.
        with_cp: gradient checkpointing, block by block, when training; BatchNorm statistics are
            still updated once per step (the recomputation in backward leaves them alone).
        drop_path_rate: stochastic depth, growing linearly over the blocks up to this rate.
        block_channels: explicit output channels of the 16 blocks instead of the linear rule.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads ImageNet weights in
            the official, timm or this project's format (classifier dropped). With
            ``width_transfer=True`` a checkpoint of another width is carried to this one (exactly
            when widening; see :mod:`rexnet_mmdet.models.weights.transfer`); without it a width
            mismatch is an error. ``width_transfer_noise=STD`` adds noise to break copy symmetry.

    A training batch of one image (a sampler's leftover) runs with BatchNorm on running statistics, since
    the squeeze-excitation BatchNorm sees one value per channel (:mod:`.one_image_batch`; said once in the
    log): under ``ReXNetGuardHook`` every BatchNorm layer of the detector, without it the backbone's own.

    Input: ``(N, 3, H, W)``. Output: a tuple of ``(N, C_i, ceil(H / s_i), ceil(W / s_i))`` tensors,
    one per ``out_indices`` entry, with channels and strides given by :meth:`output_shape`.
    When built, it logs them in one line to the current MMLogger (the run's log inside a Runner),
    e.g. ``ReXNet(widen_factor=1.0, out_indices=(2, 3, 5)) outputs: C3 61ch /8, C4 128ch /16, C5 185ch /32``.
    """

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 3, 5),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.0,
                 block_channels: Optional[Sequence[int]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 arch: str = 'v1',
                 channel_divisor: Optional[int] = None):
        self.widen_factor = check_widen_factor(widen_factor)
        self.arch, self.channel_divisor = check_family(arch, channel_divisor)
        self.family = family_name(self.arch, self.channel_divisor)
        self.out_indices = check_out_indices(out_indices)
        self._check_schedule(frozen_stages, drop_path_rate)
        super().__init__(init_cfg=self._read_init_cfg(init_cfg))
        self.frozen_stages = frozen_stages
        self.norm_cfg = norm_cfg
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.block_channels = None if block_channels is None else list(block_channels)
        family = (self.arch, self.channel_divisor)
        self.settings = block_settings(self.widen_factor, self.block_channels, *family)
        self._taps = tap_specs(self.widen_factor, self.block_channels, *family)
        self._check_norm(norm_cfg)
        self._build_layers(norm_cfg, drop_path_rate)
        self._freeze_stages()
        self._deployed = False  # set by rexnet_mmdet.deploy.optimize_for_inference
        self._channels_last = False
        # ReXNet numbers its feature points differently from ResNet: say what comes out, so a
        # copied out_indices shows on the first screen of a run, not after a silent training.
        # Outside a run mmengine falls back to its 'mmengine' logger on stdout, where tools print
        # their tables: there the line is debug-level.
        outside_run = MMLogger.get_current_instance().instance_name == 'mmengine'
        print_log(self._outputs_summary(), logger='current', level=logging.DEBUG if outside_run else logging.INFO)

    def _build_layers(self, norm_cfg: dict, drop_path_rate: float) -> None:
        """The stem, the blocks up to the deepest tap asked for, and the final conv when it is tapped."""
        family = (self.arch, self.channel_divisor)
        last = max(self.out_indices)
        last_block = self._taps[last].block  # 16 means the final conv
        num_blocks = min(last_block, len(self.settings) - 1) + 1
        act = activation(self.arch)
        self.stem = build_stem(stem_channels(self.widen_factor, *family), norm_cfg, act=act)
        blocks = []
        for s in self.settings[:num_blocks]:
            rate = drop_path_rate * s.index / (len(self.settings) - 1)
            expansion_only = last == EXPANSION_TAP and s.index == last_block
            blocks.append(LinearBottleneck(s, norm_cfg, rate, expansion_only=expansion_only))
        self.blocks = nn.ModuleList(blocks)
        if last == FINAL_TAP:
            self.final_conv = build_final_conv(self.settings[-1].out_channels,
                                               final_channels(self.widen_factor, *family), norm_cfg, act=act)
        else:
            self.final_conv = None
        # Block index -> tap index, for taps that are block outputs.
        self._block_taps = {self._taps[i].block: i for i in self.out_indices
                            if i not in (EXPANSION_TAP, FINAL_TAP)}

    @staticmethod
    def _check_schedule(frozen_stages, drop_path_rate) -> None:
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages <= MAX_FROZEN_STAGES:
            raise ValueError(f'frozen_stages must be an int in [-1, {MAX_FROZEN_STAGES}] (-1 none, 0 stem, '
                             f'1-6 stem and stages 1..k, 7 also the final conv), got {frozen_stages!r}')
        if not isinstance(drop_path_rate, (int, float)) or not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')

    def _read_init_cfg(self, init_cfg):
        """Note the ImageNet file and its width transfer; the init_cfg to hand mmengine (Kaiming and
        constant BatchNorm when none is given)."""
        self._pretrained = self._pretrained_path(init_cfg)
        self._width_transfer = bool(self._pretrained and init_cfg.get('width_transfer', False))
        if self._width_transfer and self.family != 'ReXNet-v1':
            raise ValueError(f'width_transfer does not apply to {self.family}: it carries ReXNet-v1 weights '
                             f'between widths; load a checkpoint of this family and width instead')
        self._width_transfer_noise = float(init_cfg.get('width_transfer_noise', 0.0)) \
            if self._width_transfer else 0.0
        if init_cfg is None:
            init_cfg = [dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu'),
                        dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]
        return init_cfg

    # ----------------------------------------------------------------- contract
    @staticmethod
    def _pretrained_path(init_cfg) -> Optional[str]:
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            if not init_cfg.get('checkpoint'):
                raise ValueError("init_cfg=dict(type='Pretrained') needs checkpoint=PATH_OR_URL")
            return init_cfg['checkpoint']
        return None

    def _check_norm(self, norm_cfg: dict) -> None:
        if norm_cfg.get('type') != 'GN':
            return
        groups = norm_cfg.get('num_groups')
        widths = {c for s in self.settings for c in (s.in_channels, s.hidden_channels,
                                                      s.out_channels, s.se_channels)}
        family = (self.arch, self.channel_divisor)
        widths |= {stem_channels(self.widen_factor, *family), final_channels(self.widen_factor, *family)}
        widths.discard(0)  # no SE
        bad = sorted(c for c in widths if not groups or c % groups)
        if bad:
            raise ValueError(f'GN with num_groups={groups} cannot normalise ReXNet layers of {bad[:6]} '
                             f'channels (not divisible); ReXNet channel counts are not multiples of '
                             f'common group sizes: use num_groups=1, or BN/SyncBN')

    def output_shape(self) -> List[TapSpec]:
        """Name, channels and stride of each output, in ``out_indices`` order (no forward pass)."""
        return [self._taps[i] for i in self.out_indices]

    @property
    def out_channels(self) -> Tuple[int, ...]:
        return tuple(t.channels for t in self.output_shape())

    def _outputs_summary(self) -> str:
        width = f'widen_factor={self.widen_factor}'
        if self.arch != 'v1':
            width = f"arch='{self.arch}', " + width
        elif self.channel_divisor != 1:
            width += f', channel_divisor={self.channel_divisor}'
        if self.block_channels is not None:
            width += ', custom block_channels'
        outputs = ', '.join(f'{t.name} {t.channels}ch /{t.stride}' for t in self.output_shape())
        return f'ReXNet({width}, out_indices={self.out_indices}) outputs: {outputs}'

    # ------------------------------------------------------------------ forward
    def _run(self, fn, *args, one_image: bool = False):
        # Recompute activations in backward instead of storing them (training only).
        if self.with_cp and self.training and torch.is_grad_enabled():
            module = getattr(fn, '__self__', fn)
            if one_image:
                # The recomputation runs after forward() has put the norms back in training mode.
                fn = _on_running_statistics(fn, module)
            return cp.checkpoint(fn, *args, use_reentrant=False, context_fn=_recompute_keeps_buffers(module))
        return fn(*args)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'ReXNet expects images of shape (N, 3, H, W), got {tuple(x.shape)}; '
                             f'convert grayscale images to 3 channels (e.g. color_type="color" when loading)')
        if x.shape[0] == 1 and self.training:
            # The fallback for a config without ReXNetGuardHook; under the hook the whole detector's
            # BatchNorm is already on running statistics and nothing is left to switch here.
            with one_image_step(self, ONE_IMAGE_SCOPE, _iteration()) as switched:
                return self._forward(x, one_image=bool(switched))
        return self._forward(x)

    def _forward(self, x: torch.Tensor, one_image: bool = False) -> Tuple[torch.Tensor, ...]:
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        outs = {}
        x = self._run(self.stem, x, one_image=one_image)
        for i, block in enumerate(self.blocks):
            if block.expansion_only or (i == self._taps[EXPANSION_TAP].block
                                        and EXPANSION_TAP in self.out_indices):
                expanded = self._run(block.expand, x, one_image=one_image)
                outs[EXPANSION_TAP] = expanded
                if block.expansion_only:
                    break
                x = self._run(block.forward_expanded, x, expanded, one_image=one_image)
            else:
                x = self._run(block, x, one_image=one_image)
            tap = self._block_taps.get(i)
            if tap is not None:
                outs[tap] = x
        if self.final_conv is not None:
            outs[FINAL_TAP] = self._run(self.final_conv, x, one_image=one_image)
        return tuple(outs[i] for i in self.out_indices)

    # ------------------------------------------------------------ train / freeze
    def _stage_modules(self, stage: int) -> List[nn.Module]:
        if stage == 0:
            return [self.stem]
        if stage == MAX_FROZEN_STAGES:
            return [self.final_conv] if self.final_conv is not None else []
        return [b for b in self.blocks if b.setting.stage == stage]

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            for module in self._stage_modules(stage):
                module.eval()
                for p in module.parameters():
                    p.requires_grad = False

    def set_inference_mode(self, channels_last: bool) -> None:
        """Mark the backbone as prepared for inference (norms folded); see ``optimize_for_inference``."""
        self._deployed = True
        self._channels_last = channels_last

    def train(self, mode: bool = True) -> 'ReXNet':
        if mode and self._deployed:
            raise RuntimeError('this ReXNet was prepared for inference (norm layers folded into convs) and '
                               'cannot be trained; build a new model to train')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if is_batch_norm(m):
                    m.eval()
        return self

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        if self._pretrained is None:
            super().init_weights()
            frozen_bn = self.norm_eval or self.norm_cfg.get('requires_grad') is False
            print_log('=' * 78 + f'\n{self.family} backbone (widen_factor={format_width(self.widen_factor)}) starts '
                      "from RANDOM weights: no init_cfg=dict(type='Pretrained', checkpoint=...). A COCO run from "
                      'scratch falls far short of the paper; see docs/weights.md#imagenet-weights-in-a-config.\n'
                      + ('With frozen BatchNorm (norm_eval=True or requires_grad=False) the random backbone is '
                         'not normalised: unless a checkpoint is loaded next (load_from, resume), train it with '
                         'norm_eval=False, norm_cfg.requires_grad=True, frozen_stages=-1.\n' if frozen_bn else '')
                      + '=' * 78, logger='current', level=30)
            return
        if self._width_transfer:
            from .weights.transfer import load_transferred_weights
            load_transferred_weights(self, self._pretrained, noise=self._width_transfer_noise)
        else:
            from .weights.pretrained import load_backbone_weights
            load_backbone_weights(self, self._pretrained)
        self._is_init = True
