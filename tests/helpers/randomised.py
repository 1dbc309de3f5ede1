"""Seeded, non-trivial parameters for models whose exact function a test compares."""
import torch
from torch.nn.modules.batchnorm import _BatchNorm


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm running statistics and affine parameters away from 0 and 1, in place, so that
    folding them into the convs (or a runtime's own folding) is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
