"""The detector configs' models as the config tests use them: each built once with a random backbone, one
training step checked, a prediction checked."""
from typing import Dict

import torch
from mmdet.registry import MODELS
from mmengine.config import Config

_MODELS: Dict[str, torch.nn.Module] = {}


def build_random(path: str) -> torch.nn.Module:
    """The model of the config at ``path``, built once per session (random backbone, seed 0: the tests never
    download ImageNet weights)."""
    if path not in _MODELS:
        cfg = Config.fromfile(path)
        cfg.model.backbone.init_cfg = None
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        _MODELS[path] = model
    return _MODELS[path]


def train_step(model: torch.nn.Module, batch: dict, head: torch.nn.Module) -> dict:
    """One SGD step on ``batch``: the loss is finite and positive, and gradients reach ``head`` and the
    backbone. Returns the logged losses."""
    model.train()
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    data = model.data_preprocessor(batch, training=True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    optim.step()
    return log_vars


def predict(model: torch.nn.Module, batch: dict):
    """The model's prediction on ``batch`` in eval mode: one result per image, boxes, scores and labels
    alike in number. Returns the first image's ``pred_instances``."""
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch, training=False), mode='predict')
    assert len(results) == len(batch['inputs'])
    pred = results[0].pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.labels) == len(pred.bboxes)
    return pred
