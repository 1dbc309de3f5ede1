"""The output check of the benchmarks: a treated model in half precision stays under the bound that
rounding explains (set by the model as built in the same precision), while a real error (a
BatchNorm dropped instead of folded) does not."""
import copy

import pytest
import torch
import torch.nn as nn

from rexnet_mmdet.analysis import precision
from rexnet_mmdet.deploy.treatments import treat_backbone
from rexnet_mmdet.utils.build import build_backbone

pytestmark = pytest.mark.usefixtures('one_thread')
CPU = torch.device('cpu')


def test_precisions_and_clear_refusals():
    assert precision.check_precision('bf16', CPU) == torch.bfloat16
    with pytest.raises(ValueError, match='fp16 runs on a CUDA device only.*use bf16'):
        precision.check_precision('fp16', CPU)
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose from fp32, fp16, bf16"):
        precision.check_precision('fp8', CPU)
    usable = precision.usable_precisions(['fp32', 'fp16', 'bf16'], CPU)
    assert usable['fp32'] is None and usable['bf16'] is None and 'CUDA' in usable['fp16']


def test_numeric_settings_are_set_and_named():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        gpu = precision.apply_numeric_settings(torch.device('cuda'), tf32=True, cudnn_benchmark=True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
        assert precision.describe_numeric_settings(gpu) == (
            'numeric settings: TF32 on for fp32 convolutions and matmuls; cudnn.benchmark on (every shape warmed '
            'before timing)')
        assert precision.precision_label('fp32', gpu) == 'fp32 (TF32)'
        cpu = precision.apply_numeric_settings(CPU)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cudnn.benchmark
        assert precision.precision_label('fp32', cpu) == 'fp32'
        assert 'do not apply' in precision.describe_numeric_settings(cpu)
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def test_relative_difference():
    ref = torch.tensor([3.0, 4.0])
    assert precision.relative_difference((ref + torch.tensor([0.0, 0.5]),), (ref,)) == pytest.approx(0.1)
    assert precision.relative_difference(torch.tensor([float('nan'), 4.0]), ref) == float('inf')
    assert precision.relative_difference([ref, ref * 2], [ref, ref]) == pytest.approx(1.0)


def _drop_one_batchnorm(model: nn.Module) -> str:
    """A plausible folding bug: one BatchNorm replaced by nothing, its statistics lost."""
    name = next(n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and '.' in n)
    parent, _, child = name.rpartition('.')
    setattr(model.get_submodule(parent), child, nn.Identity())
    return name


def test_rounding_passes_and_a_real_error_does_not():
    backbone = build_backbone(dict(type='ReXNet', widen_factor=0.9, out_indices=(1, 2, 3, 5)), calibration_size=64)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ref = precision.reference_outputs(backbone, lambda m: m(x.to(next(m.parameters()).dtype)), CPU)
    assert all(r.dtype == torch.float32 for r in ref)

    def diff(model, p):
        with torch.no_grad(), precision.autocast(p, CPU):
            return precision.relative_difference(model(x), ref)

    fused = treat_backbone(copy.deepcopy(backbone), 'fused+cl')
    wrong = copy.deepcopy(backbone)
    _drop_one_batchnorm(wrong)  # as if a fold had lost one BatchNorm
    broken = treat_backbone(wrong, 'fused+cl')
    for p in ('fp32', 'bf16'):
        as_built = diff(backbone, p)
        bound = precision.tolerance(p, precision.apply_numeric_settings(CPU), as_built)
        assert 0 < diff(fused, p) <= bound, p
        assert diff(broken, p) > bound, p
    # bf16 rounding through this random network exceeds any fixed per-operation bound: the bound
    # comes from the model as built.
    assert diff(backbone, 'bf16') > 1e-2 and diff(fused, 'fp32') <= precision.ROUNDING_FLOORS['fp32']


def test_tolerance_follows_the_model_as_built():
    cpu = precision.apply_numeric_settings(CPU)
    assert precision.tolerance('fp32', cpu, 1e-6) == precision.ROUNDING_FLOORS['fp32']
    assert precision.tolerance('bf16', cpu, 0.05) == pytest.approx(0.15)
    assert precision.tolerance('bf16', cpu, 1.0) == 3.0  # rounding alone reaches 1: no error can show
    assert precision.within(0.5, 1.0) and not precision.within(float('inf'), 3.0) and not precision.within(2e-4, 1e-4)
    tf32 = dict(cpu, applies=True, tf32=True)
    assert precision.tolerance('fp32', tf32, 0.0) == precision.ROUNDING_FLOORS['tf32']
