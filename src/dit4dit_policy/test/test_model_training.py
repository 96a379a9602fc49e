"""A tiny DiT4DiT overfits a small synthetic video + action set: both losses fall at least 10x."""

from dit4dit_policy.model import DiT4DiT, preset
import torch

# Smaller frames and fewer blocks than the tiny preset keep this under a minute on two cores.
OVERRIDES = ['video.image_size=[32, 32]', 'video.frame_indices=[0, 1, 2, 3, 4]',
             'video.num_layers=2', 'video.tap_block=0', 'action.num_layers=2',
             'objective.action_repeats=2', 'text.max_tokens=16']


def _dataset(cfg, n=2, seed=1):
    """Clips that blend image A into image B, and smooth action chunks, one per sample."""
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.video.frame_size

    def image():
        coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
        return torch.nn.functional.interpolate(coarse, size=(h, w), mode='bilinear')
    a, b = image(), image()
    blend = torch.linspace(0, 1, len(cfg.video.frame_indices))[None, None, :, None, None]
    clip = (1 - blend) * a[:, :, None] + blend * b[:, :, None]
    act = cfg.action
    t = torch.linspace(0, 1, act.chunk_size)[None, :, None]
    phase = torch.rand(n, 1, act.real_action_dim, generator=g) * 6
    actions = torch.zeros(n, act.chunk_size, act.action_dim)
    actions[..., : act.real_action_dim] = 0.8 * torch.sin(3 * t + phase)
    mask = torch.zeros_like(actions, dtype=torch.bool)
    mask[..., : act.real_action_dim] = True
    state = torch.randn(n, act.state_dim, generator=g)
    text = torch.randn(n, cfg.text.max_tokens, cfg.text.embed_dim, generator=g)
    return clip, state, actions, mask, text


@torch.no_grad()
def _eval_losses(model, batch, draws=6):
    """Losses averaged over fixed noise and time draws, so start and end are comparable."""
    model.eval()
    torch.manual_seed(1234)
    outs = [model.compute_loss(*batch) for _ in range(draws)]
    model.train()
    return (sum(o['action_loss'].item() for o in outs) / draws,
            sum(o['video_loss'].item() for o in outs) / draws)


def test_tiny_model_overfits_both_losses():
    cfg = preset('tiny', OVERRIDES)
    torch.manual_seed(0)
    model = DiT4DiT(cfg)
    batch = _dataset(cfg)
    start = _eval_losses(model, batch)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000, eta_min=1e-4)
    for _ in range(1000):
        loss = model.compute_loss(*batch)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    end = _eval_losses(model, batch)
    print(f'action loss {start[0]:.3f} -> {end[0]:.3f}, video loss {start[1]:.3f} -> {end[1]:.3f}')
    assert end[0] * 10 <= start[0], f'action loss {start[0]:.3f} -> {end[0]:.3f}'
    assert end[1] * 10 <= start[1], f'video loss {start[1]:.3f} -> {end[1]:.3f}'
