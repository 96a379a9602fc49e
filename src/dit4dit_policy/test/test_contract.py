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
    ({'resize': 'nearest'}, "resize 'nearest': valid are 'bilinear', 'bilinear_antialias'"),
])
def test_invalid_contracts_are_refused(kw, message):
    with pytest.raises(ContractError, match=message):
        contract(**kw)


def test_resize_rule_travels_in_the_contract_and_version_1_reads_as_antialiased():
    c = contract()
    assert c.resize == 'bilinear' and c.to_dict()['version'] == 2
    assert PolicyContract.loads(contract(resize='bilinear_antialias').dumps()).resize == \
        'bilinear_antialias'
    old = {k: v for k, v in c.to_dict().items() if k != 'resize'}
    old['version'] = 1           # contracts before the rule was stored: trained antialiased
    assert PolicyContract.from_dict(old).resize == 'bilinear_antialias'
    with pytest.raises(ContractError, match='version 1 has no resize'):
        PolicyContract.from_dict({**old, 'resize': 'bilinear'})


def test_resize_rules_are_the_ones_the_model_implements():
    import torch
    from dit4dit_policy.contract import RESIZE_RULES
    from dit4dit_policy.model.dit4dit import RESIZE, to_model_frames
    assert set(RESIZE) == set(RESIZE_RULES)
    view = torch.randint(0, 256, (1, 1, 96, 128, 3), dtype=torch.uint8)
    official = to_model_frames([view], (48, 64), 'bilinear')
    smooth = to_model_frames([view], (48, 64), 'bilinear_antialias')
    # The official rule is plain bilinear (no antialias) at half size: the mean of each 2x2
    # block's centre pixels, exactly.
    x = view[0, 0].permute(2, 0, 1).float() / 255
    expected = torch.nn.functional.avg_pool2d(x[None], 2)[0] * 2 - 1
    torch.testing.assert_close(official[0, :, 0], expected)
    assert (official - smooth).abs().max() > 0.05
    with pytest.raises(ValueError, match="unknown resize rule 'area'"):
        to_model_frames([view], (48, 64), 'area')


def test_unknown_keys_and_versions_are_refused():
    data = contract().to_dict()
    with pytest.raises(ContractError, match=r'unknown key\(s\) colour'):
        PolicyContract.from_dict({**data, 'colour': 'red'})
    with pytest.raises(ContractError, match='version 3'):
        PolicyContract.from_dict({**data, 'version': 3})
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
