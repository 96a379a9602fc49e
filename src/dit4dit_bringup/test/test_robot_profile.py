"""The shipped G1 profile is valid and matches Unitree's joint table; bad profiles are refused."""

from pathlib import Path

from dit4dit_policy.runtime.robot_profile import load_profile, profile_from_dict, ProfileError
import pytest
import yaml

G1 = Path(__file__).resolve().parents[1] / 'config' / 'g1_29dof_dex3.yaml'


def test_g1_profile_matches_the_unitree_joint_table():
    p = load_profile(G1)
    body = [j for j in p.joints if not j.hand]
    assert [j.motor for j in body] == list(range(29))
    assert p.joint('left_shoulder_pitch_joint').motor == 15
    assert p.joint('right_wrist_yaw_joint').motor == 28
    assert p.joint('left_knee_joint').lower == pytest.approx(-0.087267)
    assert p.joint('right_shoulder_roll_joint').upper == pytest.approx(1.5882)
    hands = [j for j in p.joints if j.hand == 'left']
    assert [j.motor for j in hands] == list(range(7))
    assert p.joint('right_hand_thumb_2_joint').upper == 0.0
    assert len(p.policy_joints) == 28
    vel, acc = p.execution_limits()
    assert vel.max() <= 1.0 and acc.min() > 0
    a = p.arrays(['left_elbow_joint', 'left_hand_thumb_0_joint'])
    assert list(a['kp']) == [80.0, 1.5] and list(a['motor']) == [18, 0]


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['joints'][1].update(motor=0), 'share a motor slot'),
    (lambda d: d['joints'][2].update(lower=3.0), 'lower 3.0 >= upper'),
    (lambda d: d['joints'][0].update(group='torso'), "no gains for group 'torso'"),
    (lambda d: d['policy_joints'].append('tail_joint'), 'unknown joints: tail_joint'),
    (lambda d: d.update(home={'left_knee_joint': -1.0}), 'home left_knee_joint=-1.0 outside'),
    (lambda d: d.update(colour='red'), r'unknown key\(s\) colour'),
    (lambda d: d['joints'][0].update(torque=5), r'joints\[0\]'),
])
def test_invalid_profiles_are_refused(edit, message):
    data = yaml.safe_load(G1.read_text())
    edit(data)
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(data)
