"""
Keep every DDS participant of these tests on loopback and off the default domain.

`make test` already exports both variables (and a domain held for the run); this covers a plain
`pytest` run by a developer, which must never multicast on the machine's network.
"""

from dit4dit_common.testing import context, loopback  # noqa: F401 (context: a fixture)

loopback()

import pytest  # noqa: E402


ARM_AND_HAND = {
    'name': 'arm_and_hand',
    'execution': {'max_velocity': 1.0, 'max_acceleration': 8.0, 'ramp_in_s': 2.0},
    'gains': {'arm': {'kp': 80.0, 'kd': 3.0}, 'hand': {'kp': 1.5, 'kd': 0.2}},
    'policy_joints': ['left_elbow_joint', 'right_elbow_joint', 'left_hand_thumb_0_joint'],
    'joints': [
        {'name': 'left_elbow_joint', 'motor': 18, 'lower': -1.0472, 'upper': 2.0944,
         'velocity': 37, 'group': 'arm'},
        {'name': 'right_elbow_joint', 'motor': 25, 'lower': -1.0472, 'upper': 2.0944,
         'velocity': 37, 'group': 'arm'},
        {'name': 'left_hand_thumb_0_joint', 'motor': 0, 'hand': 'left', 'lower': -1.0472,
         'upper': 1.0472, 'velocity': 6.857, 'group': 'hand'},
    ],
}


@pytest.fixture
def profile_path(tmp_path):
    """Return the path of a small robot profile: two elbows and one hand joint."""
    import yaml
    path = tmp_path / 'arm_and_hand.yaml'
    path.write_text(yaml.safe_dump(ARM_AND_HAND))
    return str(path)
