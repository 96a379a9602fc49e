"""
The video DiT: ``diffusers.CosmosTransformer3DModel`` with the feature tap DiT4DiT needs.

diffusers' own ``forward`` builds the padding-mask channel through torchvision and always runs all
blocks. This wrapper runs the same submodules in the same order with the (all-zero) padding mask
built here, so the weights stay diffusers-compatible, and can stop after the tapped block: at
inference nothing after it can change the features, so those blocks are never run.
"""

import torch
from torch import nn

from .config import TextConfig, VideoConfig


def build_transformer(video: VideoConfig, text: TextConfig, device=None):
    """Return a randomly initialised CosmosTransformer3DModel shaped by the configuration."""
    from diffusers import CosmosTransformer3DModel

    with torch.device(device or 'cpu'):
        return CosmosTransformer3DModel(**build_kwargs(video, text))


def build_kwargs(video: VideoConfig, text: TextConfig) -> dict:
    """Return the CosmosTransformer3DModel arguments that the configuration implies."""
    return {
        'in_channels': video.latent_channels + 1,       # + the conditioning-mask channel
        'out_channels': video.latent_channels,
        'num_attention_heads': video.num_attention_heads,
        'attention_head_dim': video.attention_head_dim,
        'num_layers': video.num_layers,
        'mlp_ratio': video.mlp_ratio,
        'text_embed_dim': video.text_embed_dim,
        'adaln_lora_dim': video.adaln_lora_dim,
        'max_size': tuple(video.max_size),
        'patch_size': tuple(video.patch_size),
        'rope_scale': tuple(video.rope_scale),
        'concat_padding_mask': True,
        'extra_pos_embed_type': video.extra_pos_embed_type,
        'use_crossattn_projection': True,
        'crossattn_proj_in_channels': text.embed_dim,
        'encoder_hidden_states_channels': video.text_embed_dim,
    }


def load_pretrained_transformer(video: VideoConfig, text: TextConfig, dtype=None):
    """
    Load a diffusers-format CosmosTransformer3DModel from ``video.transformer_path``.

    The directory's own config must describe the configured architecture (e.g. the 2B preset and
    Cosmos-Predict2.5-2B's ``transformer/`` folder); a mismatch is refused naming each field.
    """
    from diffusers import CosmosTransformer3DModel

    expected = build_kwargs(video, text)
    found = CosmosTransformer3DModel.load_config(video.transformer_path)
    diffs = [f'{k}: directory has {found.get(k)!r}, configuration needs {v!r}'
             for k, v in expected.items()
             if k in found and _norm(found[k]) != _norm(v)]
    if diffs:
        raise ValueError(f'{video.transformer_path} does not match the video configuration:\n  '
                         + '\n  '.join(diffs))
    return CosmosTransformer3DModel.from_pretrained(video.transformer_path, torch_dtype=dtype)


def _norm(value):
    return list(value) if isinstance(value, (list, tuple)) else value


class VideoBackbone(nn.Module):
    """Conditioned Cosmos forward passes: to the tap block (features) or complete (velocity)."""

    def __init__(self, video: VideoConfig, text: TextConfig, transformer=None):
        """Wrap ``transformer`` (built from the configuration when not given)."""
        super().__init__()
        self.config = video
        if transformer is None:
            transformer = build_transformer(video, text)
            pos = transformer.learnable_pos_embed
            if pos is not None:
                # diffusers starts these tables at zero, where the embedding's normalisation
                # has a gradient of 1 / eps: it would swamp gradient clipping for many steps.
                for table in (pos.pos_emb_t, pos.pos_emb_h, pos.pos_emb_w):
                    nn.init.normal_(table, std=0.1)
        self.transformer = transformer
        blocks = len(self.transformer.transformer_blocks)
        if blocks != video.num_layers:
            raise ValueError(f'transformer has {blocks} blocks, configuration says '
                             f'{video.num_layers}')

    def frame_timesteps(self, flow_time: torch.Tensor, num_frames: int, num_cond: int = 1):
        """Return per-latent-frame flow times [B, 1, T, 1, 1]: conditioning frames pinned."""
        flow_time = flow_time.reshape(-1, 1, 1, 1, 1).float()
        t = flow_time.expand(-1, 1, num_frames, 1, 1).clone()
        t[:, :, :num_cond] = self.config.conditional_frame_timestep
        return t

    def _prepare(self, x, cond_mask, timesteps, text):
        tr = self.transformer
        batch, _, frames, height, width = x.shape
        x = torch.cat([x, cond_mask.to(x.dtype)], dim=1)
        # The padding-mask channel: all zeros (no padded pixels), as in DiT4DiT.
        x = torch.cat([x, x.new_zeros(batch, 1, frames, height, width)], dim=1)
        rotary = tr.rope(x, fps=None)
        extra_pos = None
        if tr.learnable_pos_embed is not None:
            # Unit RMS, re-added by every block: with 64x64 pixel tokens at width 256 three
            # blocks of it are ~6x the content's norm and drown the colours and the instruction.
            extra_pos = tr.learnable_pos_embed(x)
            if self.config.extra_pos_scale != 1.0:
                extra_pos = extra_pos * self.config.extra_pos_scale
        pt, ph, pw = tr.config.patch_size
        grid = (frames // pt, height // ph, width // pw)
        hidden = tr.patch_embed(x).flatten(1, 3)
        if timesteps.shape != (batch, 1, frames, 1, 1):
            raise ValueError(f'timesteps must be [B, 1, T, 1, 1] = {(batch, 1, frames, 1, 1)}, '
                             f'got {tuple(timesteps.shape)}')
        temb, embedded = tr.time_embed(hidden, timesteps.flatten().to(hidden.dtype))
        temb, embedded = (
            e.view(batch, grid[0], 1, 1, -1).expand(-1, -1, grid[1], grid[2], -1).flatten(1, 3)
            for e in (temb, embedded))
        context = tr.crossattn_proj(text.to(hidden.dtype))
        return hidden, context, embedded, temb, rotary, extra_pos, grid

    def _blocks(self, state, last):
        hidden, context, embedded, temb, rotary, extra_pos, _ = state
        for block in self.transformer.transformer_blocks[:last + 1]:
            hidden = block(hidden, context, embedded, temb, rotary, extra_pos, None, None)
        return hidden

    def features(self, latents, cond_mask, timesteps, text, tap_block=None):
        """
        Return the output of the tap block, [B, S, hidden]: blocks after it are not run.

        latents [B, C, T, H, W] (conditioning frames already pinned), cond_mask [B, 1, T, H, W],
        timesteps [B, 1, T, 1, 1] flow times, text [B, L, text.embed_dim].
        """
        tap = self.config.tap_block if tap_block is None else tap_block
        return self._blocks(self._prepare(latents, cond_mask, timesteps, text), tap)

    def forward(self, latents, cond_mask, timesteps, text):
        """Return the predicted flow velocity [B, C, T, H, W] (all blocks, output head)."""
        tr = self.transformer
        state = self._prepare(latents, cond_mask, timesteps, text)
        hidden = self._blocks(state, len(tr.transformer_blocks) - 1)
        embedded, temb, grid = state[2], state[3], state[6]
        hidden = tr.proj_out(tr.norm_out(hidden, embedded, temb))
        pt, ph, pw = tr.config.patch_size
        # Same unpatchify as diffusers (its permutation order is deliberate).
        hidden = hidden.unflatten(2, (ph, pw, pt, -1)).unflatten(1, grid)
        hidden = hidden.permute(0, 7, 1, 6, 2, 4, 3, 5)
        return hidden.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    def velocity_and_features(self, latents, cond_mask, timesteps, text, tap_block=None):
        """Return (velocity, tap features) of one full pass (for visualisation and tests)."""
        tap = self.config.tap_block if tap_block is None else tap_block
        captured = {}
        block = self.transformer.transformer_blocks[tap]
        handle = block.register_forward_hook(lambda m, i, o: captured.setdefault('x', o))
        try:
            velocity = self.forward(latents, cond_mask, timesteps, text)
        finally:
            handle.remove()
        return velocity, captured['x']
