"""
A model of any preset with random weights and nothing downloaded: benchmarks and checks.

The 2B preset's parts come from local directories (``video.transformer_path``, ``video.vae_path``,
``text.model_path``). ``random_model`` builds the same architecture without them: the video DiT
from the configuration (as a fresh training run does), the Wan VAE from diffusers' default
``AutoencoderKLWan`` configuration (Wan 2.1, the one Cosmos-Predict2.5 uses: z_dim 16, spatial 8,
temporal 4) and the action head. Speed and memory are those of the real model; the outputs mean
nothing. The 7B text encoder is not built: its output is cached per instruction and never part
of a query (use ``text.encoder=bytes``, which keeps the 100352-wide text tokens).
"""

import torch

from .config import DiT4DiTConfig
from .dit4dit import DiT4DiT
from .latent_codec import make_codec, WanVAECodec


def random_wan_vae(video, seed: int = 0):
    """Return a randomly initialised Wan 2.1 ``AutoencoderKLWan`` for ``video``'s latents."""
    from diffusers import AutoencoderKLWan

    z = video.latent_channels
    stats = {} if z == 16 else {'latents_mean': [0.0] * z, 'latents_std': [1.0] * z}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLWan(z_dim=z, **stats)
    cfg = vae.config
    if (cfg.scale_factor_spatial, cfg.scale_factor_temporal) != (
            video.spatial_compression, video.temporal_compression):
        raise ValueError(f'the Wan VAE compresses {cfg.scale_factor_spatial}x spatially and '
                         f'{cfg.scale_factor_temporal}x in time; the configuration says '
                         f'{video.spatial_compression} and {video.temporal_compression}')
    return vae


def random_model(config: DiT4DiTConfig, seed: int = 0) -> DiT4DiT:
    """Return ``DiT4DiT(config)`` with random weights: no local directory is read."""
    if config.text.encoder == 'cosmos_reason1' and not config.text.model_path:
        raise ValueError('random weights build no 7B text encoder (its embeddings are cached '
                         'per instruction, outside the query): add --override '
                         'text.encoder=bytes, or give text.model_path')
    if config.video.latent_codec == 'wan_vae':
        codec = WanVAECodec(config.video, vae=random_wan_vae(config.video, seed))
    else:
        codec = make_codec(config.video)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DiT4DiT(config, codec=codec, pretrained=False)
