"""
The action DiT: denoises an action chunk conditioned on the video DiT's tapped tokens.

As in the official code: tokens are [one state token, H action tokens]; learned positions on the
action tokens only; blocks alternate pure cross-attention to the video tokens (even blocks) and
self-attention (odd blocks); AdaLN (scale, shift) from the action flow time modulates only the
attention input, the feed-forward sees a plain non-affine LayerNorm and there are no gates; the
output norm uses (shift, scale). The flow time enters as the integer floor(1000 * tau).
"""

import math

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from .config import ActionConfig


def sinusoidal(t: torch.Tensor, dim: int, flip_sin_to_cos: bool, downscale_freq_shift: float):
    """Return [N, dim] sinusoidal features of t [N] (diffusers' Timesteps convention)."""
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / (half - downscale_freq_shift))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEncoder(nn.Module):
    """Timesteps(256, flip_sin_to_cos, shift 1) then Linear-SiLU-Linear to the DiT width."""

    def __init__(self, width: int, channels: int = 256):
        """Build."""
        super().__init__()
        self.channels = channels
        self.linear_1 = nn.Linear(channels, width)
        self.linear_2 = nn.Linear(width, width)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        """Encode integer timesteps k [B]."""
        emb = sinusoidal(k, self.channels, flip_sin_to_cos=True, downscale_freq_shift=1)
        return self.linear_2(F.silu(self.linear_1(emb)))


class Attention(nn.Module):
    """Multi-head attention with biased q/k/v/out projections and dropout on the output."""

    def __init__(self, width, heads, context_dim, dropout):
        """Build; ``context_dim`` is the key/value source width."""
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(width, width)
        self.to_k = nn.Linear(context_dim, width)
        self.to_v = nn.Linear(context_dim, width)
        self.to_out = nn.Sequential(nn.Linear(width, width), nn.Dropout(dropout))

    def forward(self, x, context):
        """Attend from x [B, N, W] to context [B, M, C]."""
        b, n, w = x.shape
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, w))


class ActionDiTBlock(nn.Module):
    """One action-DiT block: AdaLN -> (cross- or self-) attention -> LN -> FFN."""

    def __init__(self, cfg: ActionConfig, cross: bool, context_dim: int):
        """Build a cross-attention block (``cross``) or a self-attention block."""
        super().__init__()
        width = cfg.hidden_size
        self.cross = cross
        self.ada = nn.Linear(width, 2 * width)      # -> (scale, shift)
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-5)
        self.attn = Attention(width, cfg.num_attention_heads,
                              context_dim if cross else width, cfg.dropout)
        self.final_dropout = nn.Dropout(cfg.dropout)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-5)
        self.ff = nn.Sequential(
            nn.Linear(width, cfg.ffn_mult * width), nn.GELU(approximate='tanh'),
            nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_mult * width, width),
            nn.Dropout(cfg.dropout))

    def forward(self, x, temb, context):
        """Apply the block to x [B, 1+H, W] given temb [B, W] and the video tokens."""
        scale, shift = self.ada(F.silu(temb)).chunk(2, dim=-1)
        h = self.norm1(x) * (1 + scale[:, None]) + shift[:, None]
        h = self.attn(h, context if self.cross else h)
        x = x + self.final_dropout(h)
        return x + self.ff(self.norm2(x))


class ActionDiT(nn.Module):
    """State/action encoders, the alternating DiT and the action decoder."""

    def __init__(self, cfg: ActionConfig, context_dim: int):
        """Build for video tokens of width ``context_dim``."""
        super().__init__()
        self.cfg = cfg
        width, hidden = cfg.hidden_size, cfg.mlp_hidden_size
        self.state_encoder = nn.Sequential(
            nn.Linear(cfg.state_dim, hidden), nn.ReLU(), nn.Linear(hidden, width))
        self.action_w1 = nn.Linear(cfg.action_dim, width)
        self.action_w2 = nn.Linear(2 * width, width)
        self.action_w3 = nn.Linear(width, width)
        self.positions = nn.Embedding(cfg.max_positions, width)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.timestep_encoder = TimestepEncoder(width)
        self.blocks = nn.ModuleList(
            ActionDiTBlock(cfg, cross=(i % 2 == 0), context_dim=context_dim)
            for i in range(cfg.num_layers))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(width, 2 * width)    # -> (shift, scale)
        self.proj_out = nn.Linear(width, hidden)
        self.decoder = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, cfg.action_dim))

    def discretise(self, tau: torch.Tensor) -> torch.Tensor:
        """Return the integer timestep floor(buckets * tau) the DiT is conditioned on."""
        return torch.floor(tau * self.cfg.num_timestep_buckets)

    def encode_actions(self, actions, k):
        """Per-step action tokens: concat(W1 a, sin(k)) -> W2 -> swish -> W3."""
        b, h, _ = actions.shape
        sin = sinusoidal(k, self.cfg.hidden_size, flip_sin_to_cos=False, downscale_freq_shift=0)
        sin = sin[:, None].expand(b, h, -1)
        x = torch.cat([self.action_w1(actions), sin], dim=-1)
        return self.action_w3(F.silu(self.action_w2(x)))

    def forward(self, noisy_actions, tau, state, context, k=None):
        """
        Predict the flow velocity of the action chunk.

        noisy_actions [B, H, action_dim], tau [B] flow times (1 = noise), state [B, state_dim],
        context [B, S, context_dim] video tokens. Returns [B, H, action_dim]. ``k`` [B]: the
        integer timesteps when the caller computed them (the Euler sampler does, as the
        official code), else floor(buckets * tau).
        """
        k = self.discretise(tau) if k is None else k.to(noisy_actions.dtype)
        h = noisy_actions.shape[1]
        act = self.encode_actions(noisy_actions, k)
        act = act + self.positions(torch.arange(h, device=act.device))[None]
        x = torch.cat([self.state_encoder(state)[:, None], act], dim=1)
        temb = self.timestep_encoder(k)
        context = context.to(x.dtype)
        for block in self.blocks:
            x = block(x, temb, context)
        shift, scale = self.ada_out(F.silu(temb)).chunk(2, dim=-1)
        x = self.norm_out(x) * (1 + scale[:, None]) + shift[:, None]
        return self.decoder(self.proj_out(x))[:, -h:]
