"""
Typed, validated configuration of the DiT4DiT model, with named presets.

One configuration describes a model at any scale: ``tiny`` trains and infers on a 2-core CPU
(tests, CI, the demo); ``cosmos-predict2.5-2b`` is the paper's configuration (Cosmos-Predict2.5-2B
video DiT, DiT-B action head) for GPU users who hold the weights locally. Every dataclass validates
itself on construction; loading refuses unknown keys and names the valid ones.
"""

import copy
import dataclasses
from dataclasses import dataclass, field
import json
from pathlib import Path
import typing

import yaml

# Flow time of the feature pass: the first sigma of a one-step UniPC schedule with Karras sigmas
# (sigma_max = 200) mapped to a flow time sigma / (1 + sigma). Almost pure noise, by design.
COSMOS_FEATURE_FLOW_TIME = 200.0 / 201.0


# The instruction encoders text_encoder.py implements (the names its registry accepts).
TEXT_ENCODERS = ('bytes', 'bytes_context', 'cosmos_reason1')


class ConfigError(ValueError):
    """A configuration value is invalid or unknown."""


def _require(condition, message):
    if not condition:
        raise ConfigError(message)


@dataclass
class VideoConfig:
    """The video DiT (``diffusers.CosmosTransformer3DModel``), its latents and its input frames."""

    num_layers: int = 28
    num_attention_heads: int = 16
    attention_head_dim: int = 128
    mlp_ratio: float = 4.0
    adaln_lora_dim: int = 256
    patch_size: typing.Tuple[int, int, int] = (1, 2, 2)
    rope_scale: typing.Tuple[float, float, float] = (1.0, 3.0, 3.0)
    max_size: typing.Tuple[int, int, int] = (128, 240, 240)
    extra_pos_embed_type: typing.Optional[str] = None
    # diffusers' learnable embedding has unit RMS and is added again in every block: at small
    # widths it outweighs the content of pixel tokens (see VideoBackbone); 1.0 = diffusers.
    extra_pos_scale: float = 1.0
    # Which tap tokens condition the action DiT: 'all' (the method: every latent frame's) or
    # 'conditioning' (CPU-scale option: the current frame's only). A from-scratch tiny video DiT
    # makes the pure-noise future frames' tokens noise too, and they drown the current frame.
    tap_frames: str = 'all'
    text_embed_dim: int = 1024          # text token width inside the blocks (crossattn_proj out)
    tap_block: int = 17                 # 0-based block whose output conditions the action DiT
    conditional_frame_timestep: float = 1e-4   # flow time of the clean conditioning latent frame
    feature_flow_time: float = COSMOS_FEATURE_FLOW_TIME
    # Latents: 'wan_vae' (AutoencoderKLWan from a local directory) or 'pixel_patches'.
    latent_codec: str = 'wan_vae'
    latent_channels: int = 16
    spatial_compression: int = 8
    temporal_compression: int = 4
    vae_path: str = ''                  # local diffusers-format AutoencoderKLWan directory
    transformer_path: str = ''          # local diffusers-format CosmosTransformer3DModel directory
    # Frames: each view resized to image_size (H, W); views side by side along the width.
    image_size: typing.Tuple[int, int] = (224, 224)
    num_views: int = 1
    frame_indices: typing.Tuple[int, ...] = (0, 2, 4, 6, 8, 10, 12, 14, 16)

    @property
    def hidden_size(self) -> int:
        """Width of the video DiT's residual stream (and of the tapped features)."""
        return self.num_attention_heads * self.attention_head_dim

    @property
    def frame_size(self) -> typing.Tuple[int, int]:
        """(H, W) of one model frame, views concatenated side by side."""
        return self.image_size[0], self.image_size[1] * self.num_views

    @property
    def num_latent_frames(self) -> int:
        """Latent frames: one for the conditioning frame, then one per temporal_compression."""
        return 1 + (len(self.frame_indices) - 1) // self.temporal_compression

    @property
    def latent_size(self) -> typing.Tuple[int, int]:
        """(H, W) of the latents."""
        h, w = self.frame_size
        return h // self.spatial_compression, w // self.spatial_compression

    @property
    def num_tokens(self) -> int:
        """Return the number of tokens in the video DiT's sequence (all latent frames)."""
        h, w = self.latent_size
        pt, ph, pw = self.patch_size
        return (self.num_latent_frames // pt) * (h // ph) * (w // pw)

    @property
    def num_tapped_tokens(self) -> int:
        """Return the number of feature tokens S handed to the action DiT (``tap_frames``)."""
        if self.tap_frames == 'conditioning':
            return self.num_tokens // (self.num_latent_frames // self.patch_size[0])
        return self.num_tokens

    def __post_init__(self):
        """Validate."""
        _require(self.num_layers >= 1, 'video.num_layers must be >= 1')
        _require(0 <= self.tap_block < self.num_layers,
                 f'video.tap_block {self.tap_block} must be in [0, {self.num_layers - 1}]')
        _require(self.patch_size[0] == 1, 'video.patch_size[0] must be 1 (per-frame timesteps)')
        _require(self.latent_codec in ('wan_vae', 'pixel_patches'),
                 f"video.latent_codec {self.latent_codec!r}: valid are 'wan_vae', 'pixel_patches'")
        if self.latent_codec == 'pixel_patches':
            _require(self.latent_channels == 3 * self.spatial_compression ** 2,
                     'video.latent_channels must be 3 * spatial_compression**2 for pixel_patches')
        _require(len(self.frame_indices) >= 1 and self.frame_indices[0] == 0,
                 'video.frame_indices must start with 0 (the current frame)')
        _require(all(b > a for a, b in zip(self.frame_indices, self.frame_indices[1:])),
                 'video.frame_indices must be strictly increasing')
        _require((len(self.frame_indices) - 1) % self.temporal_compression == 0,
                 f'video.frame_indices: {len(self.frame_indices)} frames, need 1 + k * '
                 f'{self.temporal_compression} (one latent frame per {self.temporal_compression})')
        _require(self.num_latent_frames >= 2, 'video needs at least one future latent frame')
        h, w = self.frame_size
        unit = self.spatial_compression * max(self.patch_size[1], self.patch_size[2])
        _require(h % unit == 0 and w % unit == 0,
                 f'video frame size {h}x{w} must be divisible by {unit}')
        lh, lw = self.latent_size
        _require(self.num_latent_frames <= self.max_size[0] and lh <= self.max_size[1]
                 and lw <= self.max_size[2], f'latents exceed video.max_size {self.max_size}')
        _require(0.0 < self.feature_flow_time <= 1.0, 'video.feature_flow_time must be in (0, 1]')
        _require(0.0 <= self.conditional_frame_timestep < 1.0,
                 'video.conditional_frame_timestep must be in [0, 1)')
        _require(self.extra_pos_embed_type in (None, 'learnable'),
                 "video.extra_pos_embed_type must be null or 'learnable'")
        _require(0.0 < self.extra_pos_scale <= 1.0, 'video.extra_pos_scale must be in (0, 1]')
        _require(self.tap_frames in ('all', 'conditioning'),
                 f"video.tap_frames must be 'all' or 'conditioning', got {self.tap_frames!r}")


@dataclass
class TextConfig:
    """Instruction encoder: its kind, its output width and where its embeddings are cached."""

    encoder: str = 'cosmos_reason1'     # 'cosmos_reason1' (Qwen2.5-VL-7B, local), 'bytes*' (CPU)
    embed_dim: int = 100352             # width of the encoder's tokens (crossattn_proj input)
    max_tokens: int = 512
    model_path: str = ''                # local text-encoder directory (cosmos_reason1)
    cache_dir: str = ''                 # on-disk embedding cache ('' = in memory only)

    def __post_init__(self):
        """Validate."""
        _require(self.encoder in TEXT_ENCODERS,
                 f"text.encoder {self.encoder!r}: valid are {', '.join(map(repr, TEXT_ENCODERS))}")
        _require(self.embed_dim >= 1 and self.max_tokens >= 1, 'text dims must be >= 1')


@dataclass
class ActionConfig:
    """The action DiT and the embodiment it serves (padded model dims, real dims, chunk)."""

    hidden_size: int = 768
    num_attention_heads: int = 12
    num_layers: int = 16
    mlp_hidden_size: int = 2560         # state encoder / decoder width and the DiT output width
    ffn_mult: int = 4
    dropout: float = 0.2
    max_positions: int = 1024
    num_timestep_buckets: int = 1000    # the action DiT sees floor(1000 * tau)
    action_dim: int = 32                # model width (zero-padded)
    state_dim: int = 64                 # model width (sin/cos of the raw state, zero-padded)
    real_action_dim: int = 16           # dims that carry a real action (the loss mask)
    real_state_dim: int = 16            # raw state dims before sin/cos
    chunk_size: int = 16
    num_inference_steps: int = 4

    def __post_init__(self):
        """Validate."""
        _require(self.hidden_size % self.num_attention_heads == 0,
                 'action.hidden_size must be divisible by action.num_attention_heads')
        _require(self.num_layers >= 2 and self.num_layers % 2 == 0,
                 'action.num_layers must be even (cross- and self-attention alternate)')
        _require(1 <= self.real_action_dim <= self.action_dim,
                 'action.real_action_dim must be in [1, action.action_dim]')
        _require(1 <= 2 * self.real_state_dim <= self.state_dim,
                 'action.state_dim must hold sin and cos of action.real_state_dim values')
        _require(1 <= self.chunk_size <= self.max_positions, 'action.chunk_size out of range')
        _require(self.num_inference_steps >= 1, 'action.num_inference_steps must be >= 1')
        _require(0.0 <= self.dropout < 1.0, 'action.dropout must be in [0, 1)')


@dataclass
class ObjectiveConfig:
    """The dual flow-matching objective and its ablation switches."""

    action_time_sampler: str = 'beta'   # tau_a = Beta(alpha, beta) / s  (see flow_matching.py)
    action_time_alpha: float = 1.5
    action_time_beta: float = 1.0
    action_time_s: float = 0.999
    video_time_sampler: str = 'uniform'  # tau_v ~ U(0, 1)
    action_repeats: int = 4             # noise/tau draws per sample for the action loss
    video_loss: bool = True             # False: the 'no video loss' ablation
    video_loss_weight: float = 1.0      # lambda in L = L_a + lambda * L_v
    features_grad: bool = False         # True: action gradients reach the video DiT (a variant)

    def __post_init__(self):
        """Validate."""
        _require(self.action_repeats >= 1, 'objective.action_repeats must be >= 1')
        _require(self.video_loss_weight >= 0.0, 'objective.video_loss_weight must be >= 0')
        _require(self.action_time_s > 0 and self.action_time_alpha > 0
                 and self.action_time_beta > 0, 'objective.action_time_* must be > 0')


@dataclass
class DiT4DiTConfig:
    """The whole model."""

    preset: str = 'custom'
    video: VideoConfig = field(default_factory=VideoConfig)
    text: TextConfig = field(default_factory=TextConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def __post_init__(self):
        """Validate what spans sections."""
        _require(self.action.chunk_size >= 1, 'action.chunk_size must be >= 1')
        if self.text.encoder.startswith('bytes'):
            _require(self.text.max_tokens <= 4096, 'text.max_tokens too large for bytes')

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Return plain data (lists for tuples), suitable for JSON or YAML."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> 'DiT4DiTConfig':
        """Build from plain data; unknown keys are refused with the valid ones listed."""
        return _from_dict(cls, data, '')

    def save(self, path) -> None:
        """Write as JSON (.json) or YAML (.yaml/.yml)."""
        path = Path(path)
        text = (yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in ('.yaml', '.yml')
                else json.dumps(self.to_dict(), indent=2) + '\n')
        path.write_text(text)

    @classmethod
    def load(cls, path, overrides=()) -> 'DiT4DiTConfig':
        """Read JSON or YAML, then apply ``section.key=value`` overrides."""
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, dict):
            raise ConfigError(f'{path}: expected a mapping at the top level')
        return cls.from_dict(data).with_overrides(overrides)

    def with_overrides(self, overrides) -> 'DiT4DiTConfig':
        """Return a copy with ``section.key=value`` overrides (values parsed as YAML)."""
        data = self.to_dict()
        for item in overrides:
            key, sep, value = item.partition('=')
            _require(sep == '=', f'override {item!r} must look like section.key=value')
            *parents, leaf = key.strip().split('.')
            node = data
            for part in parents:
                _require(isinstance(node.get(part), dict),
                         f'override {key!r}: no section {part!r}')
                node = node[part]
            _require(leaf in node, f'override {key!r}: unknown key {leaf!r}; valid: '
                     f'{", ".join(sorted(node))}')
            node[leaf] = yaml.safe_load(value)
        return DiT4DiTConfig.from_dict(data)


def _from_dict(cls, data, where):
    if not isinstance(data, dict):
        raise ConfigError(f'{where or "config"}: expected a mapping, got {type(data).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    _require(not unknown, f'{where or "config"}: unknown key(s) {", ".join(unknown)}; '
             f'valid: {", ".join(sorted(fields))}')
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, f'{where}{name}.')
        elif typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f'{where or "config"}: {exc}') from exc


def _tiny() -> DiT4DiTConfig:
    """
    Return the CPU-scale preset: a few narrow blocks, 64x64 pixel-patch latents, byte text.

    The video width (256) must exceed what one patch token carries (2 x 2 x 48 = 192 latent
    values): a narrower residual stream cannot pass the fresh noise through and the video loss
    stalls at the share it cannot represent.

    CPU-scale options, off here and on in the demo recipe (``g1_tabletop_tiny.yaml``):
    ``video.extra_pos_embed_type=learnable`` (pixel patches, unlike a VAE's zero-padded
    convolutions, carry no cue of where they are and RoPE only shapes attention, so the tapped
    tokens reach the action DiT as a nearly unordered set) and ``text.encoder=bytes_context``
    (instructions that differ in one word reach the video tokens further apart at
    initialisation). At diffusers' scale the embedding drowns the image and the instruction;
    ``video.extra_pos_scale=0.1`` leaves them ~5x more room. ``video.tap_frames=conditioning``
    hands the action DiT the current frame's tokens only: from scratch, the pure-noise future
    frames' tokens are noise as well, and with them in the readout the named cube's colour is
    never bound to its place (see the README).
    """
    return DiT4DiTConfig(
        preset='tiny',
        video=VideoConfig(
            num_layers=4, num_attention_heads=4, attention_head_dim=64, adaln_lora_dim=64,
            rope_scale=(1.0, 1.0, 1.0), max_size=(16, 64, 64), text_embed_dim=128, tap_block=2,
            latent_codec='pixel_patches', latent_channels=48, spatial_compression=4,
            temporal_compression=4, image_size=(64, 64)),
        text=TextConfig(encoder='bytes', embed_dim=64, max_tokens=48),
        action=ActionConfig(hidden_size=128, num_attention_heads=4, num_layers=6,
                            mlp_hidden_size=256, dropout=0.0),
    )


def _cosmos_2b() -> DiT4DiTConfig:
    """Return the paper's G1 configuration: Cosmos-Predict2.5-2B, block 17 tapped, DiT-B head."""
    return DiT4DiTConfig(preset='cosmos-predict2.5-2b')


PRESETS = {'tiny': _tiny, 'cosmos-predict2.5-2b': _cosmos_2b}


def preset(name: str, overrides=()) -> DiT4DiTConfig:
    """Return a named preset, with optional ``section.key=value`` overrides."""
    if name not in PRESETS:
        raise ConfigError(f'unknown preset {name!r}; valid: {", ".join(sorted(PRESETS))}')
    return PRESETS[name]().with_overrides(overrides)


def clone(config: DiT4DiTConfig) -> DiT4DiTConfig:
    """Return a deep copy."""
    return copy.deepcopy(config)
