"""
Keep every DDS participant of these tests on loopback and off the default domain.

`make test` already exports both variables (and a domain held for the run); this covers a plain
`pytest` run by a developer, which must never multicast on the machine's network.
"""

from dit4dit_common.testing import context, loopback  # noqa: F401 (context: a fixture)

loopback()

import pytest  # noqa: E402


ARMS = list(range(15, 29))


@pytest.fixture
def variant(tmp_path):
    """
    Return ``make(ramp_down_s=0.4, max_velocity=2.0)``: the path of a test G1 description.

    The shipped description with arm limits of +-1 rad, arm and wrist gains kp 60 / kd 1.5, the
    given velocity cap and ramps of 0.2 s up and ``ramp_down_s`` down: values a test can see
    applied.
    """
    import yaml

    from dit4dit_g1.description import description_path, load_description

    arm_names = [load_description().body_names[i] for i in ARMS]

    def make(ramp_down_s=0.4, max_velocity=2.0):
        data = yaml.safe_load(description_path().read_text())
        data['execution'].update(max_velocity=max_velocity, arm_sdk_ramp_up_s=0.2,
                                 arm_sdk_ramp_down_s=ramp_down_s)
        data['gains'].update(arm={'kp': 60.0, 'kd': 1.5}, wrist={'kp': 60.0, 'kd': 1.5})
        for joint in data['joints']:
            if joint['name'] in arm_names:
                joint.update(lower=-1.0, upper=1.0)
        path = tmp_path / f'g1_test_{ramp_down_s}_{max_velocity}.yaml'
        path.write_text(yaml.safe_dump(data))
        return str(path)
    return make
