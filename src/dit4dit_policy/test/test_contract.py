"""The policy contract: validated, round-tripped through JSON, checked against a robot."""

from dit4dit_policy.contract import (
    Camera, check_fits, ContractError, PolicyContract)
import pytest

ARMS = ['left_elbow_joint', 'right_elbow_joint']
HANDS = ['left_hand_thumb_0_joint']


def contract(**kw):
    values = {'fps': 15, 'state_joints': ARMS, 'action_joints': ARMS,
              'cameras': [Camera('head', 96, 96)], 'robot_type': 'g1'}
    values.update(kw)
    return PolicyContract(**values)


def test_round_trip_and_derived_values():
    c = contract()
    assert PolicyContract.loads(c.dumps()) == c
    assert c.action_period_s == pytest.approx(1 / 15) and c.camera_names == ['head']
    assert PolicyContract.from_dict({**c.to_dict(), 'cameras': [
        {'name': 'head', 'height': 96, 'width': 96}]}) == c


@pytest.mark.parametrize('kw, message', [
    ({'fps': 0}, 'fps must be a number > 0'),
    ({'fps': float('nan')}, 'fps must be a number > 0'),
    ({'state_joints': []}, 'state_joints must name at least one joint'),
    ({'action_joints': ARMS + ARMS[:1]}, 'action_joints names left_elbow_joint more than once'),
    ({'cameras': []}, 'cameras must list at least one view'),
    ({'cameras': [Camera('head', 96, 96), Camera('head', 64, 64)]}, 'must be unique'),
    ({'cameras': [Camera('head', 0, 96)]}, 'size 0x96 is not an image size'),
])
def test_invalid_contracts_are_refused(kw, message):
    with pytest.raises(ContractError, match=message):
        contract(**kw)


def test_unknown_keys_and_versions_are_refused():
    data = contract().to_dict()
    with pytest.raises(ContractError, match=r'unknown key\(s\) colour'):
        PolicyContract.from_dict({**data, 'colour': 'red'})
    with pytest.raises(ContractError, match='version 2'):
        PolicyContract.from_dict({**data, 'version': 2})
    with pytest.raises(ContractError, match='not JSON'):
        PolicyContract.loads('{')


def test_fit_against_a_robot_names_every_joint_that_does_not_fit():
    measured, commandable = ARMS + HANDS + ['waist_yaw_joint'], ARMS + HANDS
    check_fits(contract(), measured, commandable)                     # arms only: fits
    check_fits(contract(action_joints=ARMS + HANDS), measured, commandable)
    with pytest.raises(ContractError) as info:
        check_fits(contract(state_joints=ARMS + ['tail_joint'],
                            action_joints=ARMS + ['waist_yaw_joint', 'tail_joint']),
                   measured, commandable, robot='the G1')
    text = str(info.value)
    assert 'state joints the G1 does not measure: tail_joint' in text
    assert 'action joints the G1 does not let a policy command: waist_yaw_joint, tail_joint' \
        in text


def test_model_widths():
    contract().check_model(2, 2, 1)
    with pytest.raises(ContractError, match='2 action joints for 3 action values'):
        contract().check_model(2, 3, 1)
