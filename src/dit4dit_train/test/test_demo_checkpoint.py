"""The shipped demo checkpoint: what `make demo` loads is what the committed recipe trains."""

import json
from pathlib import Path

from dit4dit_policy.inference import Observation, PolicyRunner
from dit4dit_policy.model import preset
from dit4dit_policy.model.checkpoint import load_checkpoint
from dit4dit_train.training import TrainConfig
import numpy as np
import pytest
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / 'demo' / 'g1_tabletop_reach_tiny'
RECIPE = ROOT / 'src' / 'dit4dit_train' / 'config' / 'training' / 'g1_tabletop_tiny.yaml'
FEATURE_MAP = 'g1_tabletop'            # what make demo-train converts its demonstrations with
if not (ROOT / 'colcon.meta').is_file():
    pytest.skip('needs the source tree (demo/ lives beside src/)', allow_module_level=True)


@pytest.fixture(scope='module')
def shipped():
    return load_checkpoint(DEMO)      # verifies every file's size and sha256


def test_demo_checkpoint_is_the_recipe_model_in_float16(shipped):
    from dit4dit_train.feature_map import load_feature_map

    model, normalizer, manifest, contract = shipped
    recipe, fmap = TrainConfig.load(RECIPE), load_feature_map(FEATURE_MAP)
    joints = fmap.action_joints
    expected = preset(recipe.preset, recipe.model).with_overrides([
        f'action.real_action_dim={len(joints)}', f'action.real_state_dim={len(joints)}'])
    assert model.config.to_dict() == expected.to_dict()
    assert manifest['extra']['step'] == recipe.steps
    # the contract is what the demonstrations were: the feature map's joints and rate, the
    # 96 px head camera of scripts/demo_train.sh
    assert contract.fps == fmap.fps and contract.camera_names == list(fmap.cameras)
    assert tuple(contract.action_joints) == tuple(joints) == tuple(fmap.state.joints)
    assert (contract.cameras[0].height, contract.cameras[0].width) == (96, 96)
    assert 'render_size:=96' in (ROOT / 'scripts' / 'demo_train.sh').read_text()
    with safe_open(str(DEMO / 'model.safetensors'), 'pt') as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {'F16'}
    assert normalizer.action_names == list(joints)
    assert (DEMO / 'model.safetensors').stat().st_size < 20 * 2 ** 20
    assert json.loads((DEMO / 'config.json').read_text())['preset'] == 'tiny'


def test_demo_checkpoint_predicts_bounded_arm_targets(shipped):
    runner = PolicyRunner.from_checkpoint(DEMO)
    frame = np.full((96, 96, 3), 180, np.uint8)
    joints = runner.contract.action_joints
    state = np.zeros(len(runner.contract.state_joints))
    result = runner.predict(Observation([frame], state, 'reach the red cube'), seed=0)
    chunk = np.asarray(result.actions)
    assert chunk.shape == (16, len(joints))
    assert np.isfinite(chunk).all()
    normalizer = shipped[1]
    low, high = np.asarray(normalizer.action_min), np.asarray(normalizer.action_max)
    assert ((chunk >= low - 1e-4) & (chunk <= high + 1e-4)).all()


LIBERO = ROOT / 'demo' / 'libero_spatial_tiny'
LIBERO_RECIPE = RECIPE.with_name('libero_spatial_tiny.yaml')


def test_libero_checkpoint_is_its_recipe_on_the_libero_map_in_float16():
    from dit4dit_train.feature_map import load_feature_map

    model, normalizer, manifest, contract = load_checkpoint(LIBERO)
    recipe, fmap = TrainConfig.load(LIBERO_RECIPE), load_feature_map('libero')
    expected = preset(recipe.preset, recipe.model).with_overrides([
        f'action.real_action_dim={len(fmap.action_joints)}',
        f'action.real_state_dim={len(fmap.state.joints)}', 'video.num_views=2'])
    assert model.config.to_dict() == expected.to_dict()
    assert model.config.action.chunk_size == 8      # the official LIBERO chunk, run whole
    assert manifest['extra']['step'] == recipe.steps
    assert contract.fps == fmap.fps == 20 and contract.camera_names == ['head', 'wrist']
    assert tuple(contract.action_joints) == tuple(fmap.action_joints)
    assert tuple(contract.state_joints) == tuple(fmap.state.joints)
    assert {(c.height, c.width) for c in contract.cameras} == {(128, 128)}
    with safe_open(str(LIBERO / 'model.safetensors'), 'pt') as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {'F16'}
    assert normalizer.action_names == list(fmap.action_joints)
    assert (LIBERO / 'model.safetensors').stat().st_size < 20 * 2 ** 20
