"""Checks of what a loaded checkpoint holds: its layout (for loading and for resuming) and how much
of a model its weights fit. Each refusal is one line that names the checkpoint and the problem."""
from typing import Any, Dict

import torch

from ..models.weights.safe_load import CheckpointMismatchError, MalformedCheckpointError
from ..models.weights.weight_files import strip_module_prefix


def checkpoint_state_dict(checkpoint: Any, source: str) -> Dict[str, torch.Tensor]:
    """The model weights of a loaded checkpoint (``state_dict`` entry or the dict itself), checked."""
    if not isinstance(checkpoint, dict):
        raise MalformedCheckpointError(
            f'checkpoint {source} holds a {type(checkpoint).__name__}, not a dict of weights (or an mmengine '
            f'checkpoint dict with a state_dict entry)')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise MalformedCheckpointError(f'checkpoint {source}: its state_dict is a {type(state).__name__}, not a '
                                       f'dict of weights')
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad and state is checkpoint and 'meta' in checkpoint:
        bad = [k for k in bad if k not in ('meta', 'message_hub', 'optimizer', 'param_schedulers')]
    if bad:
        raise MalformedCheckpointError(
            f'checkpoint {source}: {"its state_dict" if state is not checkpoint else "it"} has entries that are '
            f'not tensors ({", ".join(repr(k)[:40] for k in bad[:3])}); expected a dict of weight tensors')
    if not state:
        raise MalformedCheckpointError(f'checkpoint {source} holds no weights (empty state_dict)')
    return state


def check_training_checkpoint(checkpoint: Any, source: str, resume: bool = False) -> None:
    """Refuse, with one line, a checkpoint whose layout mmengine would trip over.

    Always: a dict, weights as a dict of tensors, ``meta`` (if any) a dict. For ``resume``
    also what ``Runner.resume`` reads: ``meta.iter`` / ``meta.epoch`` as integers, a
    ``message_hub`` dict and, if present, ``optimizer`` (dict) and ``param_schedulers``.
    """
    checkpoint_state_dict(checkpoint, source)
    meta = checkpoint.get('meta')
    if 'meta' in checkpoint and not isinstance(meta, dict):
        raise MalformedCheckpointError(f'checkpoint {source}: its meta is a {type(meta).__name__}, not a dict')
    if not resume:
        return
    what = 'a training checkpoint written by tools/train.py (mmengine), not a weights-only file'
    if meta is None:
        raise MalformedCheckpointError(f'cannot resume from {source}: it has no meta (iteration, epoch); '
                                       f'--resume needs {what}. To start from its weights use load_from')
    for key in ('iter', 'epoch'):
        if type(meta.get(key)) is not int or meta[key] < 0:
            raise MalformedCheckpointError(f'cannot resume from {source}: meta[{key!r}] is {meta.get(key)!r:.40}, '
                                           f'not a non-negative integer; --resume needs {what}')
    hub = checkpoint.get('message_hub')
    if not isinstance(hub, dict) or not isinstance(hub.get('log_scalars', {}), dict) \
            or not isinstance(hub.get('runtime_info', {}), dict):
        raise MalformedCheckpointError(f'cannot resume from {source}: its message_hub is missing or malformed; '
                                       f'--resume needs {what}')
    if 'optimizer' in checkpoint and not isinstance(checkpoint['optimizer'], dict):
        raise MalformedCheckpointError(f'cannot resume from {source}: its optimizer state is a '
                                       f'{type(checkpoint["optimizer"]).__name__}, not a dict')
    if 'param_schedulers' in checkpoint and not isinstance(checkpoint['param_schedulers'], (list, dict)):
        raise MalformedCheckpointError(f'cannot resume from {source}: its param_schedulers is a '
                                       f'{type(checkpoint["param_schedulers"]).__name__}, not a list')


def check_weights_fit(model: torch.nn.Module, checkpoint: Any, source: str, min_fit: float = 1.0) -> float:
    """Refuse weights that fit fewer than ``min_fit`` of ``model``'s (same name and shape).

    ``num_batches_tracked`` buffers are not counted; a ``module.`` prefix (DataParallel) is
    ignored. Returns the fraction that fits.
    """
    state = strip_module_prefix(checkpoint_state_dict(checkpoint, source))
    own = {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
    if not own:
        return 1.0
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    fits = len(own) - len(missing) - len(wrong)
    fraction = fits / len(own)
    if fits == 0:
        raise CheckpointMismatchError(
            f'checkpoint {source} fits none of the model\'s {len(own)} weights (checkpoint keys like '
            f'{", ".join(sorted(state)[:3])}; model keys like {", ".join(list(own)[:3])}): is it a checkpoint of '
            f'this config\'s model?')
    if fraction < min_fit:
        detail = []
        if missing:
            detail.append(f'{len(missing)} missing, e.g. {missing[0]}')
        if wrong:
            k = wrong[0]
            detail.append(f'{len(wrong)} of another shape, e.g. {k} {tuple(state[k].shape)} in the checkpoint, '
                          f'{tuple(own[k].shape)} in the model')
        raise CheckpointMismatchError(
            f'checkpoint {source} fits only {fits} of the model\'s {len(own)} weights ({"; ".join(detail)}): '
            f'it belongs to another model or config; give the checkpoint trained with this config')
    return fraction


__all__ = ['checkpoint_state_dict', 'check_training_checkpoint', 'check_weights_fit']
