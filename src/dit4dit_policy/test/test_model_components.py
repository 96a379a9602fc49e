"""Instruction encoding and caching, normalisation, latent codecs, and the 2B preset's shape."""

from dit4dit_policy.model import preset
from dit4dit_policy.model.action_dit import ActionDiT
from dit4dit_policy.model.config import ConfigError, TEXT_ENCODERS
from dit4dit_policy.model.latent_codec import make_codec, PixelPatchCodec, WanVAECodec
from dit4dit_policy.model.normalization import NormalizationError, Normalizer
from dit4dit_policy.model.text_encoder import (
    ByteEncoder, ContextualByteEncoder, ENCODERS, InstructionCache, make_text_encoder,
    standardise_and_concat)
from dit4dit_policy.model.video_backbone import build_transformer
import numpy as np
import pytest
import torch


class CountingEncoder(ByteEncoder):
    def __init__(self, config):
        super().__init__(config)
        self.calls = 0

    def encode(self, text):
        self.calls += 1
        return super().encode(text)


def test_byte_encoder_is_deterministic_and_pads_with_zeros():
    cfg = preset('tiny').text
    a = ByteEncoder(cfg).encode('pick up the cube')
    b = ByteEncoder(cfg).encode('pick up the cube')
    assert a.shape == (cfg.max_tokens, cfg.embed_dim) and torch.equal(a, b)
    assert a[15].any() and not a[16:].any()      # 16 bytes, then zero padding
    assert not torch.equal(a, ByteEncoder(cfg).encode('pick up the ball'))


def test_contextual_byte_encoder_puts_the_instruction_on_every_row():
    cfg = preset('tiny', ['text.encoder=bytes_context']).text
    enc = make_text_encoder(cfg)
    assert isinstance(enc, ContextualByteEncoder)
    red, green = enc.encode('reach the red cube'), enc.encode('reach the green cube')
    assert torch.equal(red, ContextualByteEncoder(cfg).encode('reach the red cube'))
    plain = ByteEncoder(cfg).encode('reach the red cube')
    bag = red - plain                      # the same bag-of-words vector on every row
    torch.testing.assert_close(bag, bag[:1].expand_as(bag))
    assert bag[0].std() == pytest.approx(1.0, abs=0.35) and red[40].any()   # padding too
    # one changed word moves every row, not only the word's own bytes as with plain bytes
    moved = (red - green).norm(dim=-1)
    assert moved.min() > 0.3 * moved.max()
    bytes_moved = (plain - ByteEncoder(cfg).encode('reach the green cube')).norm(dim=-1)
    assert not bytes_moved[25:].any()
    assert torch.equal(enc.word_vector('Red'), enc.word_vector('red'))
    assert enc.identity != ByteEncoder(cfg).identity    # distinct cache keys
    assert set(ENCODERS) == set(TEXT_ENCODERS)           # the config accepts what exists


def test_instruction_cache_encodes_each_instruction_once_and_persists(tmp_path):
    cfg = preset('tiny').text
    enc = CountingEncoder(cfg)
    cache = InstructionCache(enc, tmp_path)
    first = cache.get('open the drawer')
    for _ in range(5):
        assert torch.equal(cache.get('open the drawer'), first)
    assert enc.calls == 1 and (cache.hits, cache.misses) == (5, 1)
    assert len(list(tmp_path.glob('*.safetensors'))) == 1
    enc2 = CountingEncoder(cfg)
    again = InstructionCache(enc2, tmp_path).get('open the drawer')   # a new process, warm disk
    assert enc2.calls == 0 and torch.equal(again, first)
    assert cache.batch(['a', 'open the drawer']).shape == (2, cfg.max_tokens, cfg.embed_dim)


def test_corrupt_cache_file_is_recomputed(tmp_path):
    cfg = preset('tiny').text
    InstructionCache(ByteEncoder(cfg), tmp_path).get('wave')
    (path,) = tmp_path.glob('*.safetensors')
    path.write_bytes(b'garbage')
    enc = CountingEncoder(cfg)
    fresh = InstructionCache(enc, tmp_path).get('wave')
    assert torch.equal(fresh, ByteEncoder(cfg).encode('wave'))
    assert enc.calls == 1


def test_layer_standardisation_and_concatenation():
    layers = [torch.randn(2, 5, 8) * (i + 1) + i for i in range(3)]
    out = standardise_and_concat(layers)
    assert out.shape == (2, 5, 24)
    for i in range(3):
        part = out[..., 8 * i: 8 * (i + 1)]
        torch.testing.assert_close(part.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
        torch.testing.assert_close(part.std(-1), torch.ones(2, 5), atol=1e-4, rtol=0)


def test_cosmos_text_encoder_needs_a_local_directory():
    with pytest.raises(ValueError, match='text.model_path is empty'):
        make_text_encoder(preset('cosmos-predict2.5-2b').text)


def test_normalizer_round_trip_masks_and_state_layout():
    norm = Normalizer(action_min=[0.0, -2.0, 0.0], action_max=[1.0, 2.0, 1.0], action_dim=8,
                      state_dim=10, state_keys=[('arm', 2), ('gripper', 1)],
                      normalize_mask=[True, True, False])
    raw = np.array([[0.5, 1.0, 0.3], [0.0, -2.0, 1.0]])
    model = norm.normalize_actions(raw)
    assert model.shape == (2, 8) and np.allclose(model[:, 3:], 0)
    assert np.allclose(model[0, :3], [0.0, 0.5, 0.3]) and np.allclose(model[1, :2], [-1, -1])
    np.testing.assert_allclose(norm.unnormalize_actions(model), raw, atol=1e-6)
    assert np.allclose(norm.unnormalize_actions(np.full(8, 5.0)), [1.0, 2.0, 1.0])  # clipped
    s = norm.encode_state(np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(s, [np.sin(.1), np.sin(.2), np.cos(.1), np.cos(.2), np.sin(.3),
                                   np.cos(.3), 0, 0, 0, 0], atol=1e-6)
    assert list(norm.action_mask()) == [True] * 3 + [False] * 5
    assert Normalizer.from_dict(norm.to_dict()) == norm


@pytest.mark.parametrize('bad, message', [
    ({'action_min': [0.0, float('nan')], 'action_max': [1.0, 1.0]}, 'NaN or inf'),
    ({'action_min': [1.0, 0.0], 'action_max': [0.0, 1.0]}, 'below action_min'),
    ({'action_min': [0.0] * 9, 'action_max': [1.0] * 9}, 'do not fit the model width'),
])
def test_normalizer_refuses_bad_statistics(bad, message):
    with pytest.raises(NormalizationError, match=message):
        Normalizer(action_dim=8, state_dim=8, state_keys=[('s', 2)], **bad)


def test_normalizer_refuses_nan_inputs_and_wrong_widths():
    norm = Normalizer([0.0], [1.0], action_dim=2, state_dim=4, state_keys=[('s', 2)])
    with pytest.raises(NormalizationError, match='NaN'):
        norm.encode_state([0.0, np.nan])
    with pytest.raises(NormalizationError, match='expected 1'):
        norm.normalize_actions([[0.0, 1.0]])


def test_pixel_patch_codec_is_lossless_on_piecewise_constant_clips():
    cfg = preset('tiny').video
    codec = make_codec(cfg)
    assert isinstance(codec, PixelPatchCodec)
    frame0 = torch.rand(2, 3, 1, 64, 64) * 2 - 1
    later = torch.rand(2, 3, 2, 64, 64) * 2 - 1
    clip = torch.cat([frame0, later.repeat_interleave(4, dim=2)], dim=2)   # 9 frames
    lat = codec.encode_target(clip)
    assert lat.shape == (2, 48, 3, 16, 16)
    torch.testing.assert_close(codec.decode(lat), clip)


def test_wan_vae_codec_normalises_with_the_vae_config():
    from diffusers import AutoencoderKLWan
    torch.manual_seed(0)
    mean, std = [0.5, -0.25, 0.1, 0.0], [2.0, 0.5, 1.0, 4.0]
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[True, True], latents_mean=mean,
                           latents_std=std)
    cfg = preset('tiny', ['video.latent_codec=wan_vae', 'video.latent_channels=4',
                          'video.spatial_compression=4', 'video.image_size=[32, 32]']).video
    codec = WanVAECodec(cfg, vae=vae)
    clip = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode(clip).latent_dist.mean
        lat = codec.encode_target(clip)
    assert lat.shape == (1, 4, 3, 8, 8)
    expected = (z - torch.tensor(mean).view(1, 4, 1, 1, 1)) / torch.tensor(std).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(lat, expected)
    with pytest.raises(ValueError, match='vae_path is empty'):
        WanVAECodec(preset('cosmos-predict2.5-2b').video)


def test_the_current_frame_alone_gives_the_padded_clips_conditioning_latent():
    # The Wan VAE is causal: latent frame 0 of frame 0 zero-padded to the clip is the latent of
    # frame 0 alone, bit for bit; encoding the frame alone is 1/17 of the work (17 frames).
    from diffusers import AutoencoderKLWan
    from dit4dit_policy.model import DiT4DiT
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[True, True], latents_mean=[0.0] * 4,
                           latents_std=[1.0] * 4)
    frame = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    padded = torch.zeros(1, 3, 9, 32, 32)
    padded[:, :, :1] = frame
    with torch.no_grad():
        alone = vae.encode(frame).latent_dist.mean
        full = vae.encode(padded).latent_dist.mean
    assert alone.shape[2] == 1 and full.shape[2] == 3
    assert torch.equal(alone[:, :, 0], full[:, :, 0])

    cfg = preset('tiny', ['video.latent_codec=wan_vae', 'video.latent_channels=4',
                          'video.spatial_compression=4', 'video.image_size=[32, 32]',
                          'video.frame_indices=[0, 1, 2, 3, 4, 5, 6, 7, 8]',
                          'video.num_layers=2', 'video.tap_block=1'])
    model = DiT4DiT(cfg, codec=WanVAECodec(cfg.video, vae=vae)).eval()
    with torch.no_grad():
        cond, mask = model.condition(padded, generator=torch.Generator().manual_seed(1))
        ref, ref_mask = model.condition_padded(padded, generator=torch.Generator().manual_seed(1))
    assert cond.shape == ref.shape == (1, 4, 3, 8, 8) and torch.equal(mask, ref_mask)
    assert not cond[:, :, 1:].any()           # masked frames: the model puts noise there
    # cond is a posterior sample of latent 0 (diffusers: mean + std * noise); the posterior
    # of the frame alone is the padded clip's frame 0 (mean above, std here)
    with torch.no_grad():
        post, post_full = vae.encode(frame).latent_dist, vae.encode(padded).latent_dist
    assert torch.equal(post.std[:, :, 0], post_full.std[:, :, 0])
    noise = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cond[:, :, :1], post.mean + post.std * noise)


def test_pixel_patch_conditioning_is_unchanged_by_encoding_one_frame(tiny_model):
    clip = torch.rand(2, 3, 17, 64, 64) * 2 - 1
    for got, want in zip(tiny_model.condition(clip), tiny_model.condition_padded(clip)):
        assert torch.equal(got, want)


def test_2b_preset_builds_on_meta_with_the_papers_shape():
    cfg = preset('cosmos-predict2.5-2b')
    transformer = build_transformer(cfg.video, cfg.text, device='meta')
    blocks = transformer.transformer_blocks
    assert len(blocks) == 28 and cfg.video.tap_block == 17
    assert blocks[0].attn1.to_q.weight.shape == (2048, 2048)
    n = sum(p.numel() for p in transformer.parameters())
    assert 1.9e9 < n < 2.2e9, n
    assert transformer.crossattn_proj[0].weight.shape == (1024, 100352)
    assert transformer.patch_embed.proj.weight.shape[1] == (16 + 1 + 1) * 4   # + cond + padding
    with torch.device('meta'):
        head = ActionDiT(cfg.action, context_dim=cfg.video.hidden_size)
    assert 0.14e9 < sum(p.numel() for p in head.parameters()) < 0.18e9
    assert head.blocks[0].attn.to_k.weight.shape == (768, 2048)      # cross-attention to video
    assert head.blocks[1].attn.to_k.weight.shape == (768, 768)       # self-attention


def test_pretrained_transformer_loads_from_a_local_diffusers_directory(tmp_path, tiny_config):
    from dit4dit_policy.model import DiT4DiT
    torch.manual_seed(3)
    source = build_transformer(tiny_config.video, tiny_config.text)
    source.save_pretrained(tmp_path / 'transformer')
    cfg = tiny_config.with_overrides([f'video.transformer_path={tmp_path / "transformer"}'])
    model = DiT4DiT(cfg)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(model.video.transformer.state_dict()[name], value)
    wrong = cfg.with_overrides(['video.num_layers=4'])
    with pytest.raises(ValueError, match='num_layers: directory has 3, configuration needs 4'):
        DiT4DiT(wrong)


def _uniform_features(cfg):
    """Tap features of a clip whose every latent token has the same content."""
    from dit4dit_policy.model import DiT4DiT
    torch.manual_seed(0)
    model = DiT4DiT(cfg).eval()
    h, w = cfg.video.latent_size
    latents = torch.full((1, cfg.video.latent_channels, cfg.video.num_latent_frames, h, w), 0.3)
    mask = torch.zeros_like(latents[:, :1])
    mask[:, :, 0] = 1.0
    t = model.video.frame_timesteps(torch.tensor([0.5]), latents.shape[2])
    text = torch.zeros(1, cfg.text.max_tokens, cfg.text.embed_dim)
    with torch.no_grad():
        feats = model.video.features(latents, mask, t, text)[0]
    frame = feats[:cfg.video.num_tokens // cfg.video.num_latent_frames]
    # how much the conditioning frame's tokens differ from each other, relative to their size
    spread = (frame - frame.mean(0)).norm(dim=-1).mean() / frame.norm(dim=-1).mean()
    return model, float(spread)


def test_tap_frames_conditioning_hands_over_the_current_frame_tokens_only():
    # The same forward pass; only the current frame's tokens (the first latent frame: tokens are
    # frame-major) reach the action DiT, and the policy samples a chunk from them.
    from dit4dit_policy.model import DiT4DiT

    cfg = preset('tiny', ['video.tap_frames=conditioning'])
    assert cfg.video.num_tapped_tokens == cfg.video.num_tokens // cfg.video.num_latent_frames
    torch.manual_seed(0)
    model = DiT4DiT(cfg).eval()
    full = DiT4DiT(preset('tiny')).eval()
    full.load_state_dict(model.state_dict())
    clip = torch.rand(2, 3, len(cfg.video.frame_indices), *cfg.video.image_size) * 2 - 1
    cond, mask = model.condition(clip)
    text = torch.randn(2, cfg.text.max_tokens, cfg.text.embed_dim)
    with torch.no_grad():
        tapped = model.feature_pass(cond, mask, text, generator=torch.Generator().manual_seed(1))
        every = full.feature_pass(cond, mask, text, generator=torch.Generator().manual_seed(1))
        chunk = model.predict(clip[:, :, :1], torch.zeros(2, cfg.action.state_dim), text)
    assert tapped.shape == (2, cfg.video.num_tapped_tokens, cfg.video.hidden_size)
    assert every.shape[1] == cfg.video.num_tokens
    assert torch.equal(tapped, every[:, :tapped.shape[1]])
    assert chunk.shape == (2, cfg.action.chunk_size, cfg.action.action_dim)
    assert torch.isfinite(chunk).all()
    with pytest.raises(ConfigError, match="'all' or 'conditioning'"):
        preset('tiny', ['video.tap_frames=future'])


def test_learnable_position_makes_tapped_tokens_know_where_they_are():
    # Pixel patches have no positional cue and RoPE only shapes attention: without the learnable
    # absolute embedding, tokens of equal content are (almost) equal and the action DiT cannot
    # tell where the named cube is.
    cfg = preset('tiny', ['video.extra_pos_embed_type=learnable'])
    model, spread = _uniform_features(cfg)
    assert spread > 0.3
    for table in ('pos_emb_t', 'pos_emb_h', 'pos_emb_w'):
        # not diffusers' zeros: the embedding's normalisation has a 1 / eps gradient there
        std = getattr(model.video.transformer.learnable_pos_embed, table).std().item()
        assert 0.05 < std < 0.2, (table, std)
    _, plain = _uniform_features(cfg.with_overrides(['video.extra_pos_embed_type=null']))
    assert plain < 0.02          # measured 0.005 (RoPE mixes frames unevenly near the edges)
    # A tenth of diffusers' scale still tells the tokens apart (measured 0.59) ...
    _, scaled = _uniform_features(cfg.with_overrides(['video.extra_pos_scale=0.1']))
    assert scaled > 0.3


def test_scaled_learnable_position_leaves_room_for_the_image_and_the_instruction():
    # ... while at full scale the embedding, re-added by every block, is most of each tapped
    # token: two different frames, or two instructions, barely move the tokens.
    from dit4dit_policy.model import DiT4DiT
    from dit4dit_policy.model.text_encoder import InstructionCache, make_text_encoder

    def sensitivity(scale):
        cfg = preset('tiny', ['video.extra_pos_embed_type=learnable', 'text.encoder=bytes_context',
                              f'video.extra_pos_scale={scale}'])
        torch.manual_seed(0)
        model = DiT4DiT(cfg).eval()
        texts = InstructionCache(make_text_encoder(cfg.text))
        clip = torch.rand(2, 3, len(cfg.video.frame_indices), *cfg.video.image_size) * 2 - 1
        cond, mask = model.condition(clip)
        n = cfg.video.num_tokens // cfg.video.num_latent_frames
        with torch.no_grad():
            red, blue = (model.feature_pass(cond, mask, texts.batch([f'reach the {c} cube'] * 2),
                                            generator=torch.Generator().manual_seed(0))[:, :n]
                         for c in ('red', 'blue'))
        rel = (red - blue).norm() / red.norm()
        image = (red[0] - red[1]).norm() / red[0].norm()
        return float(rel), float(image)

    full_text, full_image = sensitivity(1.0)
    text, image = sensitivity(0.1)
    assert text > 3 * full_text and image > 3 * full_image, (text, full_text, image, full_image)
    with pytest.raises(ConfigError, match='extra_pos_scale'):
        preset('tiny', ['video.extra_pos_scale=0'])
