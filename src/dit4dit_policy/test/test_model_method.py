"""The method, exactly: timestep distributions, stop-gradient, the early-exit tap, Euler steps."""

from conftest import make_batch
from dit4dit_policy.model.config import COSMOS_FEATURE_FLOW_TIME, ObjectiveConfig
from dit4dit_policy.model.flow_matching import euler_schedule, euler_timesteps, time_sampler
import pytest
import torch


def test_action_time_is_beta_1p5_1_over_0p999():
    torch.manual_seed(0)
    tau = time_sampler('beta', ObjectiveConfig())(200_000)
    s = 0.999
    mean, var = 1.5 / 2.5, 1.5 * 1.0 / (2.5 ** 2 * 3.5)    # Beta(1.5, 1) moments
    assert tau.mean().item() == pytest.approx(mean / s, abs=3e-3)
    assert tau.var().item() == pytest.approx(var / s ** 2, abs=2e-3)
    assert tau.min() >= 0 and tau.max() < 1.0 / s
    # density ~ u^0.5 rises toward noise: P(tau > 0.5) = 1 - 0.5^1.5
    assert (tau * s > 0.5).float().mean().item() == pytest.approx(1 - 0.5 ** 1.5, abs=5e-3)


def test_video_time_is_uniform():
    torch.manual_seed(0)
    tau = time_sampler('uniform', ObjectiveConfig())(200_000)
    assert tau.mean().item() == pytest.approx(0.5, abs=3e-3)
    assert tau.var().item() == pytest.approx(1 / 12, abs=2e-3)
    assert 0 <= tau.min() and tau.max() < 1


def test_unknown_sampler_lists_the_valid_ones():
    with pytest.raises(ValueError, match='valid: beta, logit_normal, uniform'):
        time_sampler('cosine', ObjectiveConfig())


def _record_video_times(model, monkeypatch):
    seen = {'features': [], 'full': []}
    feats, full = model.video.features, model.video.forward

    def features(x, mask, t, text, tap_block=None):
        seen['features'].append(t.detach().clone())
        return feats(x, mask, t, text, tap_block)

    def forward(x, mask, t, text):
        seen['full'].append(t.detach().clone())
        return full(x, mask, t, text)
    monkeypatch.setattr(model.video, 'features', features)
    monkeypatch.setattr(model.video, 'forward', forward)
    return seen


def test_feature_pass_at_fixed_tau_f_and_video_pass_at_tau_v(tiny_model, monkeypatch):
    seen = _record_video_times(tiny_model, monkeypatch)
    torch.manual_seed(1)
    tiny_model.compute_loss(*make_batch(tiny_model.config, batch=3))
    (tf,), (tv,) = seen['features'], seen['full']   # exactly two video passes per step
    assert tf.shape == (3, 1, 3, 1, 1)
    assert torch.allclose(tf[:, :, 0], torch.tensor(1e-4))          # conditioning frame
    assert torch.allclose(tf[:, :, 1:], torch.tensor(COSMOS_FEATURE_FLOW_TIME))
    assert COSMOS_FEATURE_FLOW_TIME == pytest.approx(0.99502, abs=1e-5)
    assert torch.allclose(tv[:, :, 0], torch.tensor(1e-4))
    per_sample = tv[:, 0, 1:, 0, 0]
    assert torch.all(per_sample == per_sample[:, :1])               # one tau_v per sample
    assert len(set(per_sample[:, 0].tolist())) == 3


def test_no_video_loss_ablation_runs_one_video_pass(tiny_model, monkeypatch):
    tiny_model.config.objective.video_loss = False
    seen = _record_video_times(tiny_model, monkeypatch)
    out = tiny_model.compute_loss(*make_batch(tiny_model.config))
    assert len(seen['features']) == 1 and not seen['full'] and out['video_loss'] == 0


def _video_grads(model):
    return [p.grad for p in model.video.parameters() if p.requires_grad]


def test_action_loss_does_not_reach_the_video_dit_by_default(tiny_model):
    tiny_model.config.objective.video_loss = False
    tiny_model.compute_loss(*make_batch(tiny_model.config))['loss'].backward()
    assert all(g is None or not g.any() for g in _video_grads(tiny_model))
    assert any(p.grad is not None and p.grad.any() for p in tiny_model.action.parameters())


def test_features_grad_variant_lets_action_gradients_through(tiny_model):
    tiny_model.config.objective.video_loss = False
    tiny_model.config.objective.features_grad = True
    tiny_model.compute_loss(*make_batch(tiny_model.config))['loss'].backward()
    assert any(g is not None and g.any() for g in _video_grads(tiny_model))


def test_video_loss_trains_the_video_dit(tiny_model):
    tiny_model.compute_loss(*make_batch(tiny_model.config))['loss'].backward()
    assert any(g is not None and g.any() for g in _video_grads(tiny_model))


def _video_inputs(model, seed=0):
    clip, *_, text = make_batch(model.config, seed=seed)
    cond, mask = model.condition(clip)
    x = mask * cond + (1 - mask) * torch.randn_like(cond)
    t = model.video.frame_timesteps(torch.tensor([0.3, 0.9]), cond.shape[2])
    return x, mask, t, text


@torch.no_grad()
def test_early_exit_equals_the_hooked_full_forward_and_skips_later_blocks(tiny_model):
    model = tiny_model.eval()
    x, mask, t, text = _video_inputs(model)
    _, hooked = model.video.velocity_and_features(x, mask, t, text)
    tap = model.config.video.tap_block
    ran = []
    handles = [b.register_forward_hook(lambda *_, i=i: ran.append(i))
               for i, b in enumerate(model.video.transformer.transformer_blocks)]
    try:
        early = model.video.features(x, mask, t, text)
    finally:
        for h in handles:
            h.remove()
    assert ran == list(range(tap + 1))
    assert early.shape == (2, model.config.video.num_tokens, model.config.video.hidden_size)
    torch.testing.assert_close(early, hooked)


@torch.no_grad()
def test_full_forward_matches_diffusers_own_forward(tiny_model, monkeypatch):
    """Our forward (padding mask built here) equals diffusers' (which needs torchvision)."""
    import diffusers.models.transformers.transformer_cosmos as cosmos

    class _Resize:   # the only torchvision call in diffusers' forward: resizing the zero mask
        InterpolationMode = type('I', (), {'NEAREST': 'nearest'})

        class functional:  # noqa: N801
            @staticmethod
            def resize(mask, size, interpolation=None):
                return torch.nn.functional.interpolate(mask, size=size, mode='nearest')
    monkeypatch.setattr(cosmos, 'transforms', _Resize, raising=False)
    model = tiny_model.eval()
    x, mask, t, text = _video_inputs(model)
    ours = model.video(x, mask, t, text)
    b, _, frames, h, w = x.shape
    theirs = model.video.transformer(
        hidden_states=x, timestep=t, encoder_hidden_states=text, condition_mask=mask,
        padding_mask=torch.zeros(1, 1, h, w), return_dict=False)[0]
    torch.testing.assert_close(ours, theirs)


def test_euler_schedule_and_update(tiny_model, monkeypatch):
    assert euler_schedule(4) == ([1.0, 0.75, 0.5, 0.25], 0.25)
    calls = []

    def fake_action(a, tau, state, features, k=None):
        calls.append((tau.clone(), k.clone()))
        return torch.full_like(a, 0.1)
    monkeypatch.setattr(tiny_model.action, 'forward', fake_action)
    features = torch.zeros(2, 5, tiny_model.config.video.hidden_size)
    state = torch.zeros(2, tiny_model.config.action.state_dim)
    g = torch.Generator().manual_seed(3)
    out = tiny_model.sample_actions(features, state, generator=g)
    assert [c[0][0].item() for c in calls] == [1.0, 0.75, 0.5, 0.25]
    assert [c[1][0].item() for c in calls] == [1000, 750, 500, 250]
    start = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, (start - 4 * 0.25 * 0.1).clamp(-1, 1))


@pytest.mark.parametrize('steps, expected', [
    (4, [1000, 750, 500, 250]),
    (5, [1000, 800, 600, 400, 199]),
    (10, [1000, 900, 800, 700, 600, 500, 400, 300, 199, 99]),
    (3, [1000, 666, 333])])
def test_euler_timesteps_are_the_official_int_of_tau_times_1000(tiny_model, steps, expected):
    # The official sampler: int(tau * 1000) in Python floats at tau = 1 - i/K; a float32 floor
    # of the same tau would give 200 and 100 where it gives 199 and 99.
    assert euler_timesteps(steps) == expected
    seen = []
    action = tiny_model.action
    original = action.forward

    def spy(a, tau, state, features, k=None):
        seen.append(k[0].item())
        return original(a, tau, state, features, k=k)
    action.forward = spy
    features = torch.zeros(1, 5, tiny_model.config.video.hidden_size)
    tiny_model.sample_actions(features, torch.zeros(1, tiny_model.config.action.state_dim),
                              steps=steps)
    assert seen == expected
    # The k handed over is what the DiT conditions on: another k changes its output.
    a = torch.randn(1, tiny_model.config.action.chunk_size, tiny_model.config.action.action_dim)
    tau = torch.full((1,), 1 - 4 / 5)
    st = torch.zeros(1, tiny_model.config.action.state_dim)
    assert not torch.equal(original(a, tau, st, features, k=torch.tensor([199.0])),
                           original(a, tau, st, features))


def test_imagined_future_keeps_the_observed_frame(tiny_model):
    clip, *_, text = make_batch(tiny_model.config, batch=1)
    frames = tiny_model.eval().imagine(clip[:, :, :1], text, steps=3)
    v = tiny_model.config.video
    assert frames.shape == (1, 3, len(v.frame_indices), *v.frame_size)
    assert frames.abs().max() <= 1.0
    torch.testing.assert_close(frames[:, :, 0], clip[:, :, 0])   # pixel patches are lossless
