"""Setting a run's config up for checkpoints: checks of what is loaded (``CheckpointCheckHook``) and,
when training, atomic checkpoint writes (``AtomicLocalBackend``: a run killed while saving never
leaves a partial ``iter_*.pth``)."""
from .atomic_backend import ATOMIC_BACKEND

#: The share of the model's weights a ``load_from`` checkpoint (fine-tuning) must provide.
FINE_TUNE_MIN_FIT = 0.5


def prepare_checkpoints(cfg, purpose: str) -> None:
    """Set ``cfg`` up for checkpoints: checks of what is loaded; atomic saving when training.

    ``purpose``: ``'train'`` (``load_from`` must fit half of the model, a resumed checkpoint all of
    it) or ``'test'`` (all of it).
    """
    if purpose not in ('train', 'test'):
        raise ValueError(f"purpose must be 'train' or 'test', got {purpose!r}")
    if cfg.get('load_from'):
        resume = purpose == 'train' and bool(cfg.get('resume'))
        min_fit = FINE_TUNE_MIN_FIT if purpose == 'train' and not resume else 1.0
        hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'CheckpointCheckHook']
        cfg.custom_hooks = hooks + [dict(type='CheckpointCheckHook', source=str(cfg.load_from), resume=resume,
                                         min_fit=min_fit)]
    if purpose == 'train':
        hook = (cfg.get('default_hooks') or {}).get('checkpoint')
        if hook is not None and hook.get('backend_args') is None and not hook.get('out_dir'):
            hook['backend_args'] = dict(backend=ATOMIC_BACKEND)


__all__ = ['FINE_TUNE_MIN_FIT', 'prepare_checkpoints']
