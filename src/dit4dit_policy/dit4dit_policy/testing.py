"""
Small, randomly initialised checkpoints for tests, examples and smoke runs (no training needed).

The weights are untrained, so the actions are noise in range; what such a checkpoint exercises is
the plumbing: loading, shapes, normalisation, stamping, safety.
"""

from .contract import Camera, PolicyContract
from .model import DiT4DiT, Normalizer, preset, save_checkpoint

SMALL = ['video.num_layers=2', 'video.tap_block=0', 'action.num_layers=2']


def make_tiny_checkpoint(path, joints, chunk_size=8, fps=30, action_range=1.0, overrides=(),
                         state_joints=None, cameras=(('head', 64, 64),)):
    """
    Write a tiny-preset checkpoint to ``path``; return it.

    ``joints`` are the action joints, ``state_joints`` (default: the same) the state's;
    ``cameras`` (name, height, width) the views of its contract.
    """
    state_joints = list(joints if state_joints is None else state_joints)
    n, m = len(joints), len(state_joints)
    cfg = preset('tiny', SMALL + [f'action.real_action_dim={n}', f'action.real_state_dim={m}',
                                  f'action.chunk_size={chunk_size}',
                                  f'video.num_views={len(cameras)}', *overrides])
    norm = Normalizer([-action_range] * n, [action_range] * n, action_dim=cfg.action.action_dim,
                      state_dim=cfg.action.state_dim, state_keys=[('joints', m)],
                      action_names=list(joints))
    contract = PolicyContract(fps=fps, state_joints=state_joints, action_joints=list(joints),
                              cameras=[Camera(*c) for c in cameras])
    return save_checkpoint(path, DiT4DiT(cfg), norm, contract, extra={'fps': fps})
