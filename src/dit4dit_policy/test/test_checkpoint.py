"""Checkpoints: save -> load gives identical actions; damaged or mismatched ones are refused."""

import dataclasses
import hashlib
import json

from dit4dit_policy.contract import Camera, ContractError, PolicyContract
from dit4dit_policy.inference import Observation, PolicyRunner
from dit4dit_policy.model import (
    CheckpointError, load_checkpoint, Normalizer, save_checkpoint)
from dit4dit_policy.model.checkpoint import read_contract, write_contract
import numpy as np
import pytest


@pytest.fixture
def normalizer(tiny_config):
    a = tiny_config.action
    rng = np.random.default_rng(0)
    return Normalizer.from_data(rng.uniform(-2, 2, (100, a.real_action_dim)),
                                state_keys=[('left_arm', 7), ('right_arm', 7), ('grippers', 2)],
                                action_dim=a.action_dim, state_dim=a.state_dim)


@pytest.fixture
def contract(tiny_config):
    a = tiny_config.action
    return PolicyContract(fps=15, state_joints=[f's{i}' for i in range(a.real_state_dim)],
                          action_joints=[f'a{i}' for i in range(a.real_action_dim)],
                          cameras=[Camera('head', 48, 80)])


@pytest.fixture
def saved(tmp_path, tiny_model, normalizer, contract):
    return save_checkpoint(tmp_path / 'ckpt', tiny_model, normalizer, contract,
                           extra={'step': 7})


def _obs(seed=0):
    rng = np.random.default_rng(seed)
    return Observation(images=[rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)],
                       state=rng.uniform(-1, 1, 16), instruction='put the red cube in the bowl')


def test_save_then_load_gives_identical_actions(saved, tiny_model, normalizer):
    before = PolicyRunner(tiny_model, normalizer).predict(_obs(), seed=5).actions
    runner = PolicyRunner.from_checkpoint(saved)
    after = runner.predict(_obs(), seed=5).actions
    np.testing.assert_array_equal(before, after)
    assert runner.contract.fps == 15 and runner.contract.camera_names == ['head']
    assert after.shape == (16, 16) and np.all(np.isfinite(after))
    again = runner.predict(_obs(), seed=5).actions
    np.testing.assert_array_equal(after, again)              # deterministic under a seed
    assert not np.array_equal(after, runner.predict(_obs(), seed=6).actions)


def test_directory_layout_and_manifest(saved):
    assert sorted(p.name for p in saved.iterdir()) == [
        'config.json', 'contract.json', 'manifest.json', 'model.safetensors',
        'normalization.json']
    manifest = json.loads((saved / 'manifest.json').read_text())
    assert manifest['extra'] == {'step': 7} and manifest['num_tensors'] > 10
    assert not list(saved.parent.glob('.ckpt.tmp-*'))       # no temporary left behind


def test_overwrite_is_atomic_and_leaves_a_valid_checkpoint(saved, tiny_model, normalizer,
                                                           contract):
    save_checkpoint(saved, tiny_model, normalizer, contract, extra={'step': 8})
    _, _, manifest, _ = load_checkpoint(saved)
    assert manifest['extra'] == {'step': 8}
    assert sorted(p.name for p in saved.parent.iterdir()) == ['ckpt']


def test_truncated_weights_are_refused(saved):
    weights = saved / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match='model.safetensors: .* bytes.*truncated'):
        load_checkpoint(saved)


def test_corrupted_weights_are_refused(saved):
    weights = saved / 'model.safetensors'
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='sha256 does not match'):
        load_checkpoint(saved)


def test_missing_manifest_or_file_is_refused(saved, tmp_path):
    (saved / 'normalization.json').unlink()
    with pytest.raises(CheckpointError, match='normalization.json is missing'):
        load_checkpoint(saved)
    with pytest.raises(CheckpointError, match='manifest.json is missing'):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match='no such checkpoint directory'):
        load_checkpoint(tmp_path / 'nope')


def test_weights_that_do_not_fit_the_configuration_are_refused(saved, tmp_path, normalizer):
    config = json.loads((saved / 'config.json').read_text())
    config['video']['num_layers'] = 4                         # one block more than the weights
    (saved / 'config.json').write_text(json.dumps(config))
    # keep the manifest consistent with the edited config so only the weights disagree
    manifest = json.loads((saved / 'manifest.json').read_text())
    data = (saved / 'config.json').read_bytes()
    manifest['files']['config.json'] = {'bytes': len(data),
                                        'sha256': hashlib.sha256(data).hexdigest()}
    (saved / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match='weights do not match.*\n  missing: video.'):
        load_checkpoint(saved)


def test_action_width_mismatch_between_statistics_and_model_is_refused(tmp_path, tiny_model):
    a = tiny_model.config.action
    wrong = Normalizer(action_min=[0.0] * 4, action_max=[1.0] * 4, action_dim=a.action_dim + 1,
                       state_dim=a.state_dim, state_keys=[('s', 4)])
    contract = PolicyContract(15, ['s0', 's1', 's2', 's3'], ['a0', 'a1', 'a2', 'a3'],
                              [Camera('head', 48, 80)])
    path = save_checkpoint(tmp_path / 'c', tiny_model, wrong, contract)
    with pytest.raises(CheckpointError, match='normalisation is for action/state widths'):
        load_checkpoint(path)


def test_a_contract_that_does_not_fit_the_model_is_refused(tmp_path, tiny_model, normalizer,
                                                           contract):
    short = PolicyContract(15, contract.state_joints[:-1], contract.action_joints,
                           contract.cameras)
    with pytest.raises(ContractError, match='15 state joints for 16 state values'):
        save_checkpoint(tmp_path / 'c', tiny_model, normalizer, short)
    two_views = PolicyContract(15, contract.state_joints, contract.action_joints,
                               [Camera('head', 48, 80), Camera('wrist', 48, 80)])
    with pytest.raises(ContractError, match='2 cameras for a 1-view model'):
        save_checkpoint(tmp_path / 'c', tiny_model, normalizer, two_views)
    assert not (tmp_path / 'c').exists()


def test_a_checkpoint_without_a_contract_says_how_to_add_one(saved, contract, capsys):
    from dit4dit_policy.contract import main as contract_main
    manifest = json.loads((saved / 'manifest.json').read_text())
    del manifest['files']['contract.json']
    (saved / 'manifest.json').write_text(json.dumps(manifest))
    (saved / 'contract.json').unlink()
    with pytest.raises(CheckpointError, match='no policy contract.*python -m dit4dit_policy'):
        load_checkpoint(saved)
    with pytest.raises(CheckpointError, match='no policy contract'):
        read_contract(saved)
    with pytest.raises(ContractError, match='15 state joints'):
        write_contract(saved, PolicyContract(15, contract.state_joints[:-1],
                                             contract.action_joints, contract.cameras))
    assert contract_main([str(saved), '--write', '--fps', '15', '--camera', 'head:48x80',
                          '--state-joints', ','.join(contract.state_joints),
                          '--action-joints', ','.join(contract.action_joints)]) == 0
    # A checkpoint older than contracts was trained with the antialiased resize: the default.
    older = dataclasses.replace(contract, resize='bilinear_antialias')
    assert read_contract(saved) == older
    _, _, _, loaded = load_checkpoint(saved)
    assert loaded == older
    capsys.readouterr()
    assert contract_main([str(saved)]) == 0
    assert '"fps": 15' in capsys.readouterr().out


def test_failed_save_leaves_no_partial_directory(tmp_path, tiny_model, normalizer, contract,
                                                 monkeypatch):
    import safetensors.torch

    def boom(*_, **__):
        raise OSError('disk full')
    monkeypatch.setattr(safetensors.torch, 'save_file', boom)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(tmp_path / 'c', tiny_model, normalizer, contract)
    assert list(tmp_path.iterdir()) == []


def test_runner_refuses_bad_observations(tiny_model, normalizer):
    from dit4dit_policy.inference import ObservationError
    runner = PolicyRunner(tiny_model, normalizer)
    bad_state = _obs()
    bad_state.state[3] = np.nan
    with pytest.raises(ObservationError, match='NaN'):
        runner.predict(bad_state)
    with pytest.raises(ObservationError, match='expected \\(16,\\)'):
        runner.predict(Observation(_obs().images, np.zeros(15), 'x'))
    with pytest.raises(ObservationError, match='no task instruction'):
        runner.predict(Observation(_obs().images, np.zeros(16), '  '))
    with pytest.raises(ObservationError, match='2 camera images'):
        runner.predict(Observation(_obs().images * 2, np.zeros(16), 'x'))
    with pytest.raises(ObservationError, match='uint8'):
        runner.predict(Observation([np.zeros((8, 8, 3), np.float32)], np.zeros(16), 'x'))


def test_half_precision_export_halves_the_weights_and_keeps_the_actions(saved, tmp_path):
    from dit4dit_policy.model.checkpoint import main as export_main
    from dit4dit_policy.model.checkpoint import read_normalizer
    assert export_main([str(saved), str(tmp_path / 'half'), '--half']) == 0
    full = (saved / 'model.safetensors').stat().st_size
    half = (tmp_path / 'half' / 'model.safetensors').stat().st_size
    assert half < 0.55 * full
    before = PolicyRunner.from_checkpoint(saved).predict(_obs(), seed=5).actions
    after = PolicyRunner.from_checkpoint(tmp_path / 'half').predict(_obs(), seed=5).actions
    np.testing.assert_allclose(after, before, atol=0.05)     # float16 rounding of the weights
    assert read_normalizer(tmp_path / 'half').dumps() == read_normalizer(saved).dumps()
    assert json.loads((tmp_path / 'half' / 'manifest.json').read_text())['extra'] == {'step': 7}


def test_export_extra_metadata_is_merged_and_a_malformed_one_refused(saved, tmp_path, capsys):
    from dit4dit_policy.model.checkpoint import main as export_main
    assert export_main([str(saved), str(tmp_path / 'x'), '--extra', 'dataset=make demo-train',
                        '--extra', 'held_out_success=0.2']) == 0
    extra = json.loads((tmp_path / 'x' / 'manifest.json').read_text())['extra']
    assert extra == {'step': 7, 'dataset': 'make demo-train', 'held_out_success': 0.2}
    with pytest.raises(SystemExit):
        export_main([str(saved), str(tmp_path / 'y'), '--extra', 'no-equals-sign'])
    assert 'must look like key=value' in capsys.readouterr().err
    assert not (tmp_path / 'y').exists()
