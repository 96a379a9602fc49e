"""
DiT4DiT: the video DiT's tapped features condition the action DiT; dual flow-matching training.

Every tensor here is in model space (frames in [-1, 1], normalised states and actions); the
``Normalizer`` and the inference runtime convert raw robot data.

Training, per sample (the pitfalls the method warns about are the comments below):
  1. feature pass: conditioning latent pinned (mask 1, flow time 1e-4), future latents FRESH noise,
     flow time tau_f ~ 0.995, output of the tap block DETACHED (no action gradient reaches the
     video DiT unless ``objective.features_grad``);
  2. video pass, a SECOND forward: future latents are the ground truth noised at tau_v ~ U(0, 1);
     L_v = mean (v - (eps - x0))^2 over the future latent frames;
  3. action loss: each sample repeated R times with its own noise and tau_a = Beta(1.5, 1) / 0.999;
     L_a = masked mean over the real action dims; L = L_a + lambda L_v.
Inference: one feature pass to the tap block, then K Euler steps (tau = 1, .75, .5, .25 for K = 4;
the DiT sees int(1000 tau) computed as the official sampler does, see ``euler_timesteps``).
"""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from .action_dit import ActionDiT
from .config import DiT4DiTConfig
from .flow_matching import euler_schedule, euler_timesteps, interpolate, time_sampler
from .latent_codec import make_codec
from .video_backbone import load_pretrained_transformer, VideoBackbone


# The resize rules a policy contract names (contract.RESIZE_RULES): F.interpolate arguments.
RESIZE = {'bilinear': {'mode': 'bilinear', 'antialias': False, 'align_corners': False},
          'bilinear_antialias': {'mode': 'bilinear', 'antialias': True, 'align_corners': False}}


def to_model_frames(views, image_size, resize):
    """
    Resize each view by the rule ``resize`` and put them side by side: the model's frames.

    ``views``: list of [B, T, H, W, 3] uint8 (or float in [0, 1]) tensors, one per camera.
    ``resize``: a key of ``RESIZE``, the checkpoint's contract's (training and deployment read
    the same one). Returns [B, 3, T, image_h, image_w * len(views)] float in [-1, 1].
    """
    try:
        how = RESIZE[resize]
    except KeyError:
        raise ValueError(f'unknown resize rule {resize!r}; valid: '
                         f'{", ".join(sorted(RESIZE))}') from None
    out = []
    for view in views:
        b, t = view.shape[:2]
        x = view.flatten(0, 1).permute(0, 3, 1, 2).float()
        if view.dtype == torch.uint8:
            x = x / 255.0
        if tuple(x.shape[-2:]) != tuple(image_size):
            x = F.interpolate(x, size=tuple(image_size), **how)
        out.append(x.clamp(0, 1).unflatten(0, (b, t)))
    frames = torch.cat(out, dim=-1)                     # [B, T, 3, H, W*V]
    return frames.permute(0, 2, 1, 3, 4) * 2.0 - 1.0


def _first_frame_mask(latents):
    """Return the conditioning mask [B, 1, T, h, w] of ``latents``: 1 on latent frame 0."""
    mask = torch.zeros_like(latents[:, :1])
    mask[:, :, 0] = 1.0
    return mask


class DiT4DiT(nn.Module):
    """The cascaded policy (model space)."""

    def __init__(self, config: DiT4DiTConfig, transformer=None, codec=None, pretrained=True):
        """
        Build from the configuration.

        With ``pretrained`` and a ``video.transformer_path``, the video DiT starts from those
        weights (e.g. Cosmos-Predict2.5-2B); a checkpoint load passes ``pretrained=False``.
        """
        super().__init__()
        self.config = config
        if transformer is None and pretrained and config.video.transformer_path:
            transformer = load_pretrained_transformer(config.video, config.text)
        self.video = VideoBackbone(config.video, config.text, transformer)
        self.action = ActionDiT(config.action, context_dim=config.video.hidden_size)
        self.codec = codec if codec is not None else make_codec(config.video)
        self.action_time = time_sampler(config.objective.action_time_sampler, config.objective)
        self.video_time = time_sampler(config.objective.video_time_sampler, config.objective)

    # -- parameters ----------------------------------------------------------------------------
    def trainable_state_dict(self):
        """Return the weights a checkpoint holds: the video transformer and the action DiT."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith('codec.')}

    def parameter_groups(self):
        """Return {'video': [...], 'action': [...]} trainable parameters (for optimiser groups)."""
        return {'video': [p for p in self.video.parameters() if p.requires_grad],
                'action': [p for p in self.action.parameters() if p.requires_grad]}

    # -- passes --------------------------------------------------------------------------------
    def condition(self, clip, generator=None):
        """
        Return (conditioning latents, mask) from the first frame of ``clip`` [B, 3, T, H, W].

        The latents have the configured clip's length (one per latent frame, so the token count
        S is the same at training and inference); only latent frame 0 carries the frame, which
        is all the method's zero-padded encoding yields there (``encode_current_frame``).
        """
        cond = self.codec.encode_current_frame(clip[:, :, :1], self.config.video.num_latent_frames,
                                               generator=generator)
        return cond, _first_frame_mask(cond)

    def condition_padded(self, clip, generator=None):
        """
        Return (latents, mask) as the official code makes them.

        Frame 0 zero-padded to the clip length and all of it encoded: the benchmark's reference
        (latent frame 0 is the same as ``condition``'s).
        """
        num_frames = len(self.config.video.frame_indices)
        b, c, _, h, w = clip.shape
        padded = clip.new_zeros(b, c, num_frames, h, w)
        padded[:, :, 0] = clip[:, :, 0]
        cond = self.codec.encode_condition(padded, generator=generator)
        return cond, _first_frame_mask(cond)

    def feature_pass(self, cond, mask, text, generator=None):
        """Return the tap-block tokens [B, S, D] at tau_f, pure-noise futures (``tap_frames``)."""
        noise = torch.randn(cond.shape, generator=generator, device=cond.device, dtype=cond.dtype)
        x = mask * cond + (1 - mask) * noise
        tau = torch.full((cond.shape[0],), self.config.video.feature_flow_time,
                         device=cond.device)
        t = self.video.frame_timesteps(tau, cond.shape[2])
        features = self.video.features(x, mask, t, text)
        # Tokens are frame-major: the conditioning frame's come first.
        return features[:, :self.config.video.num_tapped_tokens]

    def compute_loss(self, clip, state, actions, action_mask, text):
        """
        Return {'loss', 'action_loss', 'video_loss'} for one batch.

        clip [B, 3, T, H, W] ground-truth frames in [-1, 1] (frame 0 = current), state
        [B, state_dim], actions [B, H, action_dim] normalised, action_mask [B, H, action_dim]
        (True on real dims), text [B, L, text.embed_dim].
        """
        obj = self.config.objective
        cond, mask = self.condition(clip)
        with torch.set_grad_enabled(torch.is_grad_enabled() and obj.features_grad):
            features = self.feature_pass(cond, mask, text)
        if not obj.features_grad:
            features = features.detach()

        video_loss = clip.new_zeros(())
        if obj.video_loss:
            with torch.no_grad():
                x0 = self.codec.encode_target(clip)
            tau_v = self.video_time(clip.shape[0], device=clip.device)
            eps = torch.randn_like(x0)
            x_in = mask * cond + (1 - mask) * interpolate(x0, eps, tau_v)
            velocity = self.video(x_in, mask, self.video.frame_timesteps(tau_v, x0.shape[2]), text)
            video_loss = (velocity.float() - (eps - x0)).pow(2)[:, :, 1:].mean()

        r = obj.action_repeats
        features_r = features.repeat_interleave(r, dim=0)
        state_r = state.repeat_interleave(r, dim=0)
        actions_r = actions.repeat_interleave(r, dim=0)
        mask_r = action_mask.repeat_interleave(r, dim=0).to(actions.dtype)
        tau_a = self.action_time(actions_r.shape[0], device=actions.device)
        eta = torch.randn_like(actions_r)
        predicted = self.action(interpolate(actions_r, eta, tau_a), tau_a, state_r, features_r)
        err = (predicted.float() - (eta - actions_r)).pow(2) * mask_r
        action_loss = err.sum() / mask_r.sum().clamp_min(1.0)

        loss = action_loss + (obj.video_loss_weight * video_loss if obj.video_loss else 0.0)
        return {'loss': loss, 'action_loss': action_loss.detach(),
                'video_loss': video_loss.detach()}

    def forward(self, clip, state, actions, action_mask, text):
        """Return the training losses (see ``compute_loss``); DDP wraps this call."""
        return self.compute_loss(clip, state, actions, action_mask, text)

    @torch.no_grad()
    def sample_actions(self, features, state, generator=None, steps=None, guide=None,
                       guide_weights=None):
        """
        Return [B, H, action_dim] actions in [-1, 1] by K Euler steps from noise.

        ``guide`` [B, G, action_dim] (normalised, G <= H) with ``guide_weights`` [G] in [0, 1]
        inpaints the first G actions (real-time chunking): before every step they are pulled to
        the guide's point on the same noise path, x = (1 - tau) guide + tau noise, by their
        weight, and set to it at the end; weight 1 reproduces the guide exactly.
        """
        cfg = self.config.action
        b = features.shape[0]
        a = torch.randn((b, cfg.chunk_size, cfg.action_dim), generator=generator,
                        device=features.device)
        g, w = 0, None
        if guide is not None:
            g = guide.shape[1]
            if guide.shape != (b, g, cfg.action_dim) or not 0 < g <= cfg.chunk_size:
                raise ValueError(f'guide must be [{b}, 1..{cfg.chunk_size}, {cfg.action_dim}], '
                                 f'got {tuple(guide.shape)}')
            w = torch.as_tensor(guide_weights, dtype=a.dtype, device=a.device).flatten()
            if w.numel() != g or not bool(((w >= 0) & (w <= 1)).all()):
                raise ValueError(f'guide_weights must be {g} values in [0, 1]')
            w = w.reshape(1, g, 1)
            guide = guide.to(a.dtype)
            noise = a[:, :g].clone()
        steps = steps or cfg.num_inference_steps
        taus, dt = euler_schedule(steps)
        for tau, k in zip(taus, euler_timesteps(steps, cfg.num_timestep_buckets)):
            if g:
                known = (1 - tau) * guide + tau * noise
                a[:, :g] = w * known + (1 - w) * a[:, :g]
            v = self.action(a, torch.full((b,), tau, device=a.device), state, features,
                            k=torch.full((b,), k, device=a.device))
            a = a - dt * v.float()
        if g:
            a[:, :g] = w * guide + (1 - w) * a[:, :g]
        return a.clamp(-1.0, 1.0)

    @torch.no_grad()
    def predict(self, frame, state, text, generator=None):
        """Return normalised actions [B, H, action_dim] for current frames [B, 3, 1, H, W]."""
        cond, mask = self.condition(frame, generator=generator)
        features = self.feature_pass(cond, mask, text, generator=generator)
        return self.sample_actions(features, state, generator=generator)

    @torch.no_grad()
    def imagine(self, frame, text, steps=10, generator=None):
        """
        Return the imagined clip [B, 3, T, H, W] in [-1, 1]: the full video sampler and decode.

        For visualisation only (rviz, debugging); the control path never calls it.
        """
        cond, mask = self.condition(frame, generator=generator)
        x = torch.randn(cond.shape, generator=generator, device=cond.device)
        taus, dt = euler_schedule(steps)
        for tau in taus:
            x = mask * cond + (1 - mask) * x
            t = self.video.frame_timesteps(torch.full((x.shape[0],), tau, device=x.device),
                                           x.shape[2])
            x = x - dt * self.video(x, mask, t, text).float()
        return self.codec.decode(mask * cond + (1 - mask) * x)
