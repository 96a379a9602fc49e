"""
Small, randomly initialised checkpoints for tests, examples and smoke runs (no training needed).

The weights are untrained, so the actions are noise in range; what such a checkpoint exercises is
the plumbing: loading, shapes, normalisation, stamping, safety.
"""

from .model import DiT4DiT, Normalizer, preset, save_checkpoint

SMALL = ['video.num_layers=2', 'video.tap_block=0', 'action.num_layers=2']


def make_tiny_checkpoint(path, joints, chunk_size=8, fps=30, action_range=1.0, overrides=()):
    """Write a tiny-preset checkpoint for ``joints`` (actions and state) to ``path``; return it."""
    n = len(joints)
    cfg = preset('tiny', SMALL + [f'action.real_action_dim={n}', f'action.real_state_dim={n}',
                                  f'action.chunk_size={chunk_size}', *overrides])
    norm = Normalizer([-action_range] * n, [action_range] * n, action_dim=cfg.action.action_dim,
                      state_dim=cfg.action.state_dim, state_keys=[('joints', n)],
                      action_names=list(joints))
    return save_checkpoint(path, DiT4DiT(cfg), norm, extra={'fps': fps})
