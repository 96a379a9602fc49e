"""Configurations: presets, validation with clear messages, JSON/YAML round trips, overrides."""

from dit4dit_policy.model.config import ConfigError, DiT4DiTConfig, preset, PRESETS
import pytest


def test_presets_exist_and_validate():
    assert set(PRESETS) == {'tiny', 'cosmos-predict2.5-2b'}
    big = preset('cosmos-predict2.5-2b')
    assert (big.video.num_layers, big.video.hidden_size, big.video.tap_block) == (28, 2048, 17)
    assert big.video.num_tokens == 588            # 3 latent frames x 14 x 14 (G1, 224x224)
    assert big.text.embed_dim == 28 * 3584
    assert (big.action.chunk_size, big.action.action_dim, big.action.state_dim) == (16, 32, 64)
    tiny = preset('tiny')
    assert tiny.video.latent_codec == 'pixel_patches' and tiny.text.encoder == 'bytes'


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match='valid: cosmos-predict2.5-2b, tiny'):
        preset('huge')


@pytest.mark.parametrize('suffix', ['.json', '.yaml'])
def test_round_trip_through_files(tmp_path, suffix):
    cfg = preset('tiny', ['action.chunk_size=8', 'video.num_views=2'])
    cfg.save(tmp_path / f'c{suffix}')
    back = DiT4DiTConfig.load(tmp_path / f'c{suffix}')
    assert back == cfg and back.video.frame_size == (64, 128)


def test_overrides_parse_values_and_refuse_unknown_keys():
    cfg = preset('tiny', ['objective.video_loss=false', 'video.frame_indices=[0, 4, 8, 12, 16]'])
    assert cfg.objective.video_loss is False and cfg.video.frame_indices == (0, 4, 8, 12, 16)
    with pytest.raises(ConfigError, match='unknown key .tap_blok.; valid: .*tap_block'):
        preset('tiny', ['video.tap_blok=1'])
    with pytest.raises(ConfigError, match='section.key=value'):
        preset('tiny', ['video.tap_block'])


def test_unknown_keys_in_files_are_refused(tmp_path):
    data = preset('tiny').to_dict()
    data['action']['chunk'] = 3
    with pytest.raises(ConfigError, match=r'action\.: unknown key\(s\) chunk'):
        DiT4DiTConfig.from_dict(data)


@pytest.mark.parametrize('override, message', [
    ('video.tap_block=9', 'tap_block 9 must be in'),
    ('video.frame_indices=[0, 2, 4]', 'need 1 \\+ k \\* 4'),
    ('video.frame_indices=[1, 2, 3, 4, 5]', 'must start with 0'),
    ('video.image_size=[60, 64]', 'must be divisible by 8'),
    ('action.num_layers=5', 'must be even'),
    ('action.real_action_dim=40', 'real_action_dim'),
    ('text.encoder=clip', "valid are 'bytes'"),
    ('video.latent_codec=vqgan', "valid are 'wan_vae', 'pixel_patches'"),
])
def test_invalid_values_are_refused_with_the_reason(override, message):
    with pytest.raises(ConfigError, match=message):
        preset('tiny', [override])
