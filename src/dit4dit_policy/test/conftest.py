"""Shared fixtures: a small tiny-preset model and a synthetic batch; DDS kept on loopback."""

from dit4dit_common.testing import loopback

loopback()

from dit4dit_policy.model import DiT4DiT, preset  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def make_batch(cfg, batch=2, seed=0):
    """Return (clip, state, actions, action_mask, text) shaped for ``cfg``, in model space."""
    g = torch.Generator().manual_seed(seed)
    v, a = cfg.video, cfg.action
    h, w = v.frame_size
    clip = torch.rand(batch, 3, len(v.frame_indices), h, w, generator=g) * 2 - 1
    state = torch.randn(batch, a.state_dim, generator=g)
    actions = torch.rand(batch, a.chunk_size, a.action_dim, generator=g) * 2 - 1
    mask = torch.zeros(batch, a.chunk_size, a.action_dim, dtype=torch.bool)
    mask[..., : a.real_action_dim] = True
    actions[~mask] = 0.0
    text = torch.randn(batch, cfg.text.max_tokens, cfg.text.embed_dim, generator=g)
    return clip, state, actions, mask, text


@pytest.fixture
def tiny_config():
    """Return the tiny preset, made smaller still so tests stay fast on two cores."""
    return preset('tiny', ['video.num_layers=3', 'video.tap_block=1', 'action.num_layers=4'])


@pytest.fixture
def tiny_model(tiny_config):
    """Return a randomly initialised model of ``tiny_config``."""
    torch.manual_seed(0)
    return DiT4DiT(tiny_config)
