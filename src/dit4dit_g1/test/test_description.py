"""
The one G1 description against Unitree's documented tables, and its refusal of non-G1 profiles.

The expected values are Unitree's (the g1_29dof motor order of unitree_sdk2 / unitree_ros2, the
g1_body29_hand14 URDF limits, the Dex3-1 wire order of Unitree's retargeting code): an
independent source, so a drifted description fails here.
"""

import copy

from dit4dit_common.robot_profile import ProfileError
from dit4dit_g1.description import (
    description_path, G1Description, load_description, NUM_BODY_MOTORS)
from dit4dit_g1.lowcmd import ARM_SDK_MOTORS
import numpy as np
import pytest
import yaml

UNITREE_ORDER = (
    'left_hip_pitch', 'left_hip_roll', 'left_hip_yaw', 'left_knee', 'left_ankle_pitch',
    'left_ankle_roll', 'right_hip_pitch', 'right_hip_roll', 'right_hip_yaw', 'right_knee',
    'right_ankle_pitch', 'right_ankle_roll', 'waist_yaw', 'waist_roll', 'waist_pitch',
    'left_shoulder_pitch', 'left_shoulder_roll', 'left_shoulder_yaw', 'left_elbow',
    'left_wrist_roll', 'left_wrist_pitch', 'left_wrist_yaw', 'right_shoulder_pitch',
    'right_shoulder_roll', 'right_shoulder_yaw', 'right_elbow', 'right_wrist_roll',
    'right_wrist_pitch', 'right_wrist_yaw')
DEX3_ORDER = ('thumb_0', 'thumb_1', 'thumb_2', 'middle_0', 'middle_1', 'index_0', 'index_1')

G1 = load_description()


def test_body_slots_follow_unitrees_motor_order():
    assert G1.body_names == tuple(f'{n}_joint' for n in UNITREE_ORDER)
    assert len(G1.body_names) == NUM_BODY_MOTORS
    assert G1.slot('left_shoulder_pitch_joint') == 15 and G1.slot('right_wrist_yaw_joint') == 28
    assert [G1.body_names[s] for s in ARM_SDK_MOTORS][:3] == [
        'waist_yaw_joint', 'waist_roll_joint', 'waist_pitch_joint']
    with pytest.raises(ProfileError, match='not a body joint'):
        G1.slot('left_hand_thumb_0_joint')


def test_limits_and_gains_are_the_urdfs_and_mirror_left_and_right():
    assert np.all(G1.lower < G1.upper)
    assert (G1.lower[16], G1.upper[16]) == (-1.5882, 2.2515)     # left shoulder roll
    assert (G1.lower[23], G1.upper[23]) == (-2.2515, 1.5882)     # mirrored on the right
    assert G1.lower[3] == pytest.approx(-0.087267)               # left knee
    assert G1.kp[18] == 80.0 and G1.kp[20] == 40.0               # elbow, wrist
    assert list(G1.effort[[0, 1, 3, 4, 12, 13, 15, 19, 20]]) == [88, 139, 139, 50, 88, 50, 25,
                                                                 25, 5]   # N.m, Unitree's table
    assert G1.max_velocity <= 1.0                                # far below the URDF's
    assert (G1.ramp_up_s, G1.ramp_down_s) == (1.0, 3.0)


def test_dex3_hands_follow_the_wire_order_with_mirrored_limits():
    for side, hand in G1.hands.items():
        assert hand.names == tuple(f'{side}_hand_{f}_joint' for f in DEX3_ORDER)
        assert G1.hand_of(hand.names[5]) == (side, 5)
    left, right = G1.hands['left'], G1.hands['right']
    assert left.lower[1] == -0.7243 and right.upper[1] == 0.7243
    assert left.upper[2] == 1.7453 and right.lower[2] == -1.7453
    assert np.all(left.upper[3:] == 0.0) and np.all(right.lower[3:] == 0.0)
    assert np.all(left.kp == 1.5) and np.all(left.kd == 0.2)
    assert list(right.effort) == [2.45] + [1.4] * 6
    assert G1.policy_sides() == ('left', 'right')
    assert len(G1.profile.policy_joints) == 28


def _variant(tmp_path, edit):
    data = yaml.safe_load(description_path().read_text())
    edit(data)
    path = tmp_path / 'variant.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['joints'].pop(3), r'missing slots \[3\]'),
    (lambda d: d['execution'].pop('arm_sdk_ramp_down_s'),
     'needs execution.arm_sdk_ramp_down_s'),
    (lambda d: d['joints'][20].pop('effort'), 'missing for left_wrist_pitch_joint'),
    (lambda d: [d['joints'].remove(j) or d['policy_joints'].remove(j['name'])
                for j in list(d['joints']) if j['name'] == 'right_hand_index_1_joint'],
     r'the right Dex3 hand needs one joint per wire slot 0-6, got \[0, 1, 2, 3, 4, 5\]'),
])
def test_a_profile_that_is_not_a_g1_is_refused(tmp_path, edit, message):
    path = _variant(tmp_path, edit)
    with pytest.raises(ProfileError, match=message):
        load_description(path)


def test_names_and_paths():
    assert description_path() == description_path('g1_29dof_dex3')
    assert description_path('/x/y.yaml').name == 'y.yaml'
    with pytest.raises(ProfileError, match='unknown G1 description'):
        description_path('g1_23dof')
    arms_only = copy.deepcopy(G1.profile)
    arms_only.policy_joints = arms_only.policy_joints[:14]
    assert G1Description.from_profile(arms_only).policy_sides() == ()
