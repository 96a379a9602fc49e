"""
Latent codecs: pixel frames to the video DiT's latents and back.

Frames arrive as [B, 3, T, H, W] in [-1, 1], T = 1 + k * temporal_compression. Latent frame 0
depends only on pixel frame 0 (the conditioning frame); each later latent frame covers
temporal_compression pixel frames, as in the causal Wan2.1 VAE.

- ``wan_vae``: ``diffusers.AutoencoderKLWan`` from a local directory (the 2B preset). Latents are
  normalised per channel as ``(z - mean) / std`` with mean and std read from the VAE's own config,
  explicitly: diffusers changed what its pipelines store in ``latents_std`` (std vs 1/std).
- ``pixel_patches``: for CPU scale. Each latent frame is the average of its pixel frames, folded
  into channels by space-to-depth (``pixel_unshuffle``). It is lossless at the latent resolution,
  needs no training and no download, so the video loss stays an honest prediction of future
  pixels; a small trained VAE would add a training stage and its own errors to every CPU test.
"""

import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812

from .config import VideoConfig


class LatentCodec(nn.Module):
    """Interface: encode for conditioning (stochastic), encode targets (deterministic), decode."""

    def encode_condition(self, frames: torch.Tensor, generator=None) -> torch.Tensor:
        """Return latents of the conditioning frame(s), [B, C, T_lat, h, w] (all T_lat frames)."""
        raise NotImplementedError

    def encode_current_frame(self, frame: torch.Tensor, num_latent_frames: int,
                             generator=None) -> torch.Tensor:
        """
        Return the conditioning latents [B, C, T_lat, h, w] of one frame [B, 3, 1, H, W].

        Latent frame 0 equals ``encode_condition`` of the frame zero-padded to the clip (the
        codecs are causal: latent 0 reads pixel frame 0 only; the Wan VAE's is bit-identical,
        see the tests), so only that frame is encoded: 1/17 of the VAE's work for a 17-frame
        clip. The other latent frames are zero: the model masks them out (fresh noise there).
        """
        latent = self.encode_condition(frame, generator=generator)
        out = latent.new_zeros(*latent.shape[:2], num_latent_frames, *latent.shape[3:])
        out[:, :, :1] = latent[:, :, :1]
        return out

    def encode_target(self, frames: torch.Tensor) -> torch.Tensor:
        """Return the deterministic latents of a ground-truth clip, [B, C, T_lat, h, w]."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Return pixel frames [B, 3, T, H, W] in [-1, 1]."""
        raise NotImplementedError


class PixelPatchCodec(LatentCodec):
    """Space-to-depth of temporally averaged frames (see the module docstring)."""

    def __init__(self, video: VideoConfig):
        """Use the configuration's compression factors."""
        super().__init__()
        self.spatial = video.spatial_compression
        self.temporal = video.temporal_compression

    def _encode(self, frames):
        b, c, t, h, w = frames.shape
        if (t - 1) % self.temporal:
            raise ValueError(f'{t} frames: need 1 + k * {self.temporal}')
        groups = [frames[:, :, :1]]
        if t > 1:
            rest = frames[:, :, 1:].unflatten(2, ((t - 1) // self.temporal, self.temporal))
            groups.append(rest.mean(dim=3))
        clip = torch.cat(groups, dim=2)                       # [B, 3, T_lat, H, W]
        lat = F.pixel_unshuffle(clip.transpose(1, 2).flatten(0, 1), self.spatial)
        return lat.unflatten(0, (b, -1)).transpose(1, 2)      # [B, 3*s*s, T_lat, h, w]

    def encode_condition(self, frames, generator=None):
        """Encode (deterministic for this codec)."""
        return self._encode(frames)

    def encode_target(self, frames):
        """Encode."""
        return self._encode(frames)

    def decode(self, latents):
        """Depth-to-space; each later latent frame is repeated over its pixel frames."""
        b = latents.shape[0]
        px = F.pixel_shuffle(latents.transpose(1, 2).flatten(0, 1), self.spatial)
        px = px.unflatten(0, (b, -1)).transpose(1, 2)         # [B, 3, T_lat, H, W]
        rest = px[:, :, 1:].repeat_interleave(self.temporal, dim=2)
        return torch.cat([px[:, :, :1], rest], dim=2).clamp(-1, 1)


class WanVAECodec(LatentCodec):
    """AutoencoderKLWan (frozen) with explicit per-channel latent normalisation."""

    def __init__(self, video: VideoConfig, vae=None):
        """Load the VAE from ``video.vae_path`` unless one is given."""
        super().__init__()
        if vae is None:
            if not video.vae_path:
                raise ValueError('video.vae_path is empty: the wan_vae codec needs a local '
                                 'diffusers-format AutoencoderKLWan directory')
            from diffusers import AutoencoderKLWan
            vae = AutoencoderKLWan.from_pretrained(video.vae_path)
        vae.requires_grad_(False).eval()
        self.vae = vae
        cfg = vae.config
        if cfg.z_dim != video.latent_channels:
            raise ValueError(f'VAE has {cfg.z_dim} latent channels, configuration says '
                             f'{video.latent_channels}')
        shape = (1, cfg.z_dim, 1, 1, 1)
        self.register_buffer('mean', torch.tensor(cfg.latents_mean).view(shape), persistent=False)
        self.register_buffer('std', torch.tensor(cfg.latents_std).view(shape), persistent=False)

    def _dist(self, frames):
        return self.vae.encode(frames.to(self.vae.dtype)).latent_dist

    def encode_condition(self, frames, generator=None):
        """Encode frame 0 zero-padded to the clip length, with a posterior sample."""
        padded = torch.zeros_like(frames)
        padded[:, :, :1] = frames[:, :, :1]
        z = self._dist(padded).sample(generator=generator)
        return (z.float() - self.mean) / self.std

    def encode_target(self, frames):
        """Encode the clip with the posterior mean."""
        z = self._dist(frames).mean
        return (z.float() - self.mean) / self.std

    def decode(self, latents):
        """Un-normalise and decode."""
        z = latents * self.std + self.mean
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)


CODECS = {'pixel_patches': PixelPatchCodec, 'wan_vae': WanVAECodec}


def make_codec(video: VideoConfig, **kwargs) -> LatentCodec:
    """Return the codec named by ``video.latent_codec``."""
    try:
        cls = CODECS[video.latent_codec]
    except KeyError:
        raise ValueError(f'unknown latent codec {video.latent_codec!r}; valid: '
                         f'{", ".join(sorted(CODECS))}') from None
    return cls(video, **kwargs)
