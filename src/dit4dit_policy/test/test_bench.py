"""The benchmark runs end to end and writes a complete, consistent JSON report."""

import json

from dit4dit_policy import bench


def test_bench_writes_the_breakdown(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert bench.main(['--iters', '3', '--warmup', '1', '--out', str(out),
                       '--override', 'video.num_layers=3', '--override', 'video.tap_block=1',
                       '--camera-height', '120', '--camera-width', '160']) == 0
    report = json.loads(out.read_text())
    stages = ('instruction', 'encode', 'video', 'action')
    assert set(report['query']) == set(stages) | {'total'}
    assert set(report['parts_alone']) == set(stages)
    assert report['batch'] == 1 and report['tap_block'] == 1 and report['video_blocks'] == 3
    assert report['sum_of_parts_p50_ms'] > 0 and report['official_recipe']['p50_ms'] > 0
    ratio = report['query']['total']['p50_ms'] / report['sum_of_parts_p50_ms']
    assert abs(ratio - report['query_over_sum_of_parts']) < 1e-9
    assert '[bench] tiny on cpu: query p50' in capsys.readouterr().out


def test_bench_counts_the_flops_of_the_early_exit_and_the_official_recipe(tmp_path):
    out = tmp_path / 'bench.json'
    assert bench.main(['--iters', '1', '--warmup', '0', '--out', str(out), '--random-weights',
                       '--override', 'video.num_layers=4', '--override', 'video.tap_block=1',
                       '--camera-height', '120', '--camera-width', '160']) == 0
    report = json.loads(out.read_text())
    flops = report['flops']
    assert report['random_weights'] is True
    assert flops['video_all_blocks'] > 2 * flops['video_to_tap'] > 0      # 4 blocks + head vs 2
    assert flops['query'] == flops['encode'] + flops['video_to_tap'] + flops['action']
    assert flops['official'] == (flops['encode_padded_clip'] + flops['video_all_blocks']
                                 + flops['action'])
    assert flops['encode_padded_clip'] >= flops['encode'] and flops['action'] > 0
    assert flops['official_over_query'] > 1.0


def test_2b_preset_real_shapes_with_random_weights_and_few_blocks():
    # The paper's configuration at its real widths and token counts (Wan 2.1 VAE of diffusers'
    # default configuration, 2048-wide video blocks, 100352-wide text tokens, the DiT-B head),
    # with 2 video and 2 action blocks so that it runs in CI: no directory read, no download.
    import numpy as np
    import torch
    from dit4dit_policy.inference import Observation, PolicyRunner
    from dit4dit_policy.model import preset
    from dit4dit_policy.model.normalization import identity_normalizer
    from dit4dit_policy.model.random_weights import random_model
    import pytest

    with pytest.raises(ValueError, match='text.encoder=bytes'):
        random_model(preset('cosmos-predict2.5-2b'))
    cfg = preset('cosmos-predict2.5-2b', ['text.encoder=bytes', 'video.num_layers=2',
                                          'video.tap_block=1', 'action.num_layers=2'])
    model = random_model(cfg)
    assert model.codec.vae.config.z_dim == 16 and model.codec.vae.config.base_dim == 96
    a = cfg.action
    runner = PolicyRunner(model, identity_normalizer(a.action_dim, a.state_dim, a.real_action_dim,
                                                     a.real_state_dim))
    rng = np.random.default_rng(0)
    obs = Observation(images=[rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)],
                      state=np.zeros(a.real_state_dim), instruction='pick up the cup')
    text = runner.instructions.get(obs.instruction)
    assert text.shape == (512, 100352)
    with torch.no_grad():
        frame = runner.model_frames([torch.from_numpy(obs.images[0])[None, None]])
        assert frame.shape == (1, 3, 1, 224, 224)
        cond, mask = model.condition(frame)
        assert cond.shape == (1, 16, 3, 28, 28)      # 9 frames: 1 + 8 / 4 latent frames
        features = model.feature_pass(cond, mask, text[None])
    assert features.shape == (1, 3 * 14 * 14, 2048) and torch.isfinite(features).all()
    prediction = runner.predict(obs, seed=0)
    assert prediction.actions.shape == (16, a.real_action_dim)
    assert np.isfinite(prediction.actions).all()
