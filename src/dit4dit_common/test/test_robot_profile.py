"""Robot profiles: loaded by path, validated on load so that a typo cannot reach a motor."""

import copy

from dit4dit_common.robot_profile import load_profile, profile_from_dict, ProfileError
import numpy as np
import pytest
import yaml

PROFILE = {
    'name': 'two_arms',
    'execution': {'max_velocity': 1.0, 'max_acceleration': 8.0, 'ramp_in_s': 2.0},
    'gains': {'arm': {'kp': 80.0, 'kd': 3.0}, 'hand': {'kp': 1.5, 'kd': 0.2}},
    'policy_joints': ['left_elbow', 'right_elbow', 'left_thumb'],
    'joints': [
        {'name': 'left_elbow', 'motor': 0, 'lower': -1.0, 'upper': 2.0, 'velocity': 37,
         'group': 'arm'},
        {'name': 'right_elbow', 'motor': 1, 'lower': -1.0, 'upper': 2.0, 'velocity': 0.5,
         'group': 'arm'},
        {'name': 'waist', 'motor': 2, 'lower': -0.5, 'upper': 0.5, 'velocity': 10,
         'group': 'arm'},
        {'name': 'left_thumb', 'motor': 0, 'hand': 'left', 'lower': 0.0, 'upper': 1.0,
         'velocity': 12, 'group': 'hand'},
    ],
}


def test_a_profile_loads_from_a_path(tmp_path):
    path = tmp_path / 'two_arms.yaml'
    path.write_text(yaml.safe_dump(PROFILE))
    p = load_profile(path)
    assert p.policy_joints == ['left_elbow', 'right_elbow', 'left_thumb']
    a = p.arrays(['left_elbow', 'left_thumb'])
    assert list(a['kp']) == [80.0, 1.5] and list(a['motor']) == [0, 0]
    vel, acc = p.execution_limits(['left_elbow', 'right_elbow'])
    assert list(vel) == [1.0, 0.5] and np.all(acc == 8.0)     # capped by execution and URDF
    with pytest.raises(ProfileError, match='give the path of a YAML file'):
        load_profile('g1_29dof_dex3')
    with pytest.raises(ProfileError, match='missing.yaml'):
        load_profile(tmp_path / 'missing.yaml')


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['joints'][1].update(motor=0), 'share a motor slot'),
    (lambda d: d['joints'][2].update(lower=3.0), 'lower 3.0 >= upper'),
    (lambda d: d['joints'][0].update(group='torso'), "no gains for group 'torso'"),
    (lambda d: d['joints'][3].update(hand='middle'), 'hand must be left or right'),
    (lambda d: d['policy_joints'].append('tail_joint'), 'unknown joints: tail_joint'),
    (lambda d: d.update(home={'waist': -1.0}), 'home waist=-1.0 outside'),
    (lambda d: d.update(colour='red'), r'unknown key\(s\) colour'),
    (lambda d: d['joints'][0].update(torque=5), r'joints\[0\]'),
    (lambda d: d['execution'].update(arm_sdk_ramp_dwn_s=3.0),
     r'execution: unknown key\(s\) arm_sdk_ramp_dwn_s'),
    (lambda d: d['execution'].pop('ramp_in_s'), 'execution: missing ramp_in_s'),
    (lambda d: d['execution'].update(max_velocity=0.0), 'execution.max_velocity must be > 0'),
    (lambda d: d['execution'].update(ramp_in_s=float('nan')), 'execution.ramp_in_s must be'),
])
def test_invalid_profiles_are_refused(edit, message):
    data = copy.deepcopy(PROFILE)
    edit(data)
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(data)
