"""Real-time chunking: the guide the policy plans, and the sampler that inpaints it."""

from dit4dit_policy.runtime.inpainting import InpaintingConfig, PrefixPlanner
import numpy as np
import pytest
import torch

DT = 0.05


def _ns(seconds):
    """Return a stamp in integer nanoseconds, as the planner takes them."""
    return int(round(seconds * 1e9))


def _previous(h=8, d=3):
    """Return a chunk whose action k is k * [1, 2, 3] / 10 (linear: interpolation is exact)."""
    return np.arange(h)[:, None] * np.array([1.0, 2.0, 3.0])[:d] / 10


def test_no_guide_before_a_chunk_or_after_it_ended():
    planner = PrefixPlanner(8)
    assert planner.guide(_ns(10.0)) is None
    planner.remember(_ns(10.0), DT, _previous(), latency_s=0.1)
    assert planner.guide(_ns(10.0 + 7 * DT + 0.01)) is None           # previous chunk is over
    assert planner.guide(_ns(10.0 + 7 * DT)) is not None
    planner.reset()
    assert planner.guide(_ns(10.0)) is None


def test_guide_follows_the_previous_chunk_in_time_with_frozen_and_soft_weights():
    planner = PrefixPlanner(8, InpaintingConfig(soft_actions=3, latency_margin_s=0.0))
    planner.remember(_ns(10.0), DT, _previous(), latency_s=0.06)
    planner.remember(_ns(10.0), DT, _previous(), latency_s=0.12)       # the estimate is the max
    assert planner.latency_s == pytest.approx(0.12)
    guide = planner.guide(_ns(10.0 + 1.5 * DT))                        # between actions 1 and 2
    # Frozen through the first action at or after the arrival (obs + 0.12 s): k = 0 .. 3. The
    # previous chunk ends at its index 7, i.e. k = 5.5: six actions.
    assert guide.frozen == 4
    assert guide.weights.tolist() == pytest.approx([1, 1, 1, 1, 0.75, 0.5])
    expected = (1.5 + np.arange(6))[:, None] * np.array([1.0, 2.0, 3.0]) / 10
    assert guide.actions == pytest.approx(expected)
    # Near the end of the previous chunk the guide stops where that chunk stops.
    late = planner.guide(_ns(10.0 + 6 * DT))
    assert len(late.weights) == 2 and late.actions[-1] == pytest.approx(_previous()[-1])


@pytest.mark.parametrize('kwargs', [{'soft_actions': -1}, {'latency_margin_s': float('nan')},
                                    {'latency_window': 0}])
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        InpaintingConfig(**kwargs)


def test_guide_index_is_exact_at_epoch_stamps():
    """Stamps near 1.8e9 s: float seconds would resolve only ~0.2 us of the index."""
    planner = PrefixPlanner(8, InpaintingConfig(soft_actions=0, latency_margin_s=0.0))
    start = 1_764_050_000_123_456_789
    planner.remember(start, DT, _previous() * 1e4, latency_s=0.0)
    guide = planner.guide(start + 37_000_001)            # index 0.74000002
    assert guide.actions[0] == pytest.approx(0.74000002e3 * np.array([1.0, 2.0, 3.0]), abs=1e-6)


def test_remember_refuses_non_finite_chunks():
    with pytest.raises(ValueError, match='finite'):
        PrefixPlanner(8).remember(0, DT, np.full((8, 3), np.nan), 0.1)


@pytest.fixture
def model(tiny_model):
    return tiny_model.eval()


def _sample(model, **kwargs):
    cfg = model.config
    torch.manual_seed(1)
    features = torch.randn(1, 16, cfg.video.hidden_size)
    state = torch.randn(1, cfg.action.state_dim)
    gen = torch.Generator().manual_seed(5)
    return model.sample_actions(features, state, generator=gen, **kwargs)


def test_sampler_reproduces_frozen_actions_and_ignores_zero_weights(model):
    cfg = model.config.action
    free = _sample(model)
    guide = torch.rand(1, 5, cfg.action_dim) * 1.6 - 0.8
    weights = torch.tensor([1.0, 1.0, 0.75, 0.5, 0.0])
    out = _sample(model, guide=guide, guide_weights=weights)
    assert torch.allclose(out[:, :2], guide[:, :2], atol=1e-6)      # weight 1: exactly the guide
    assert not torch.allclose(out[:, 2:4], free[:, 2:4])              # soft: pulled
    zero = _sample(model, guide=guide, guide_weights=torch.zeros(5))
    assert torch.allclose(zero, free, atol=1e-6)                      # weight 0: no effect
    # The soft actions lie between the free sample and the guide's pull, not beyond.
    assert torch.all((out[:, 2] - guide[:, 2]).abs() <= (free[:, 2] - guide[:, 2]).abs() + 0.5)


@pytest.mark.parametrize('extra, weights', [(1, None), (0, [1.5] * 3), (0, [1.0] * 2),
                                            (0, [float('nan')] * 3)])
def test_sampler_refuses_a_malformed_guide(model, extra, weights):
    length = model.config.action.chunk_size + 1 if extra else 3
    guide = torch.zeros(1, length, model.config.action.action_dim)
    with pytest.raises(ValueError, match='guide'):
        _sample(model, guide=guide, guide_weights=torch.tensor(weights or [1.0] * length))
