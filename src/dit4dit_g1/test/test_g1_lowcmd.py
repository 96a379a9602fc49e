"""
The ROS-free G1 command builder: limits, refusal of non-finite targets, CRC, weight, ramp, damping.

Messages are real ``unitree_hg/LowCmd`` / ``HandCmd`` objects (the builder only sees their fields);
one test imports the module with rclpy and unitree_hg blocked to prove it stays ROS-free.
"""

import dataclasses
import json
import math
import subprocess
import sys
import types


from dit4dit_g1.crc import lowcmd_crc
from dit4dit_g1.description import load_description
from dit4dit_g1.lowcmd import (
    ARM_SDK_MOTORS, ARM_SDK_WEIGHT_INDEX, clamp_weight, fill_hand, G1CommandBuilder,
    rate_limit, stop_hand, WeightRamp)
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from unitree_hg.msg import HandCmd, LowCmd, MotorCmd

G1 = load_description()
ARMS = list(range(15, 29))
TOL = 1e-6   # float32 rounding of a limit
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
SPECIAL = [math.nan, math.inf, -math.inf, 1e300, -1e300, 1e39, 0.0]
WILD = st.one_of(ANY_FLOAT, st.sampled_from(SPECIAL))


def arm_builder(mode='arm_sdk', description=G1, **kwargs):
    builder = G1CommandBuilder(description, mode, ARMS, **kwargs)
    builder.set_hold_pose(np.linspace(-0.1, 0.1, 29))
    return builder


def body_q(msg):
    return np.array([msg.motor_cmd[i].q for i in range(29)])


def assert_within_urdf_limits(msg):
    q = body_q(msg)
    assert np.all(np.isfinite(q))
    assert np.all(q >= G1.lower - TOL) and np.all(q <= G1.upper + TOL)


def test_arm_sdk_fill_writes_targets_weight_and_crc():
    builder = arm_builder()
    msg = LowCmd()
    q = np.linspace(-0.5, 0.5, 14)
    assert builder.fill(msg, q, mode_machine=5, weight=0.4)
    for k, slot in enumerate(ARMS):
        cmd = msg.motor_cmd[slot]
        assert (cmd.mode, cmd.dq, cmd.tau) == (1, 0.0, 0.0)
        assert cmd.q == pytest.approx(q[k])
        assert cmd.kp == G1.kp[slot] and cmd.kd == G1.kd[slot]
    assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q == pytest.approx(0.4)
    # waist (arm_sdk blends it too) holds the latched pose; legs and spare slots stay zero
    for slot in (12, 13, 14):
        assert msg.motor_cmd[slot].mode == 1 and msg.motor_cmd[slot].kp > 0
        assert msg.motor_cmd[slot].q == pytest.approx(builder.hold_pose[slot])
    for slot in list(range(12)) + list(range(30, 35)):
        assert (msg.motor_cmd[slot].mode, msg.motor_cmd[slot].kp) == (0, 0.0)
    assert (msg.mode_pr, msg.mode_machine) == (0, 5)
    assert msg.crc == lowcmd_crc(msg)


def test_lowcmd_mode_holds_every_other_joint_stiffly():
    builder = arm_builder('lowcmd')
    msg = LowCmd()
    assert builder.fill(msg, np.zeros(14), mode_machine=7)
    for slot in range(15):
        cmd = msg.motor_cmd[slot]
        assert cmd.mode == 1 and cmd.q == pytest.approx(builder.hold_pose[slot])
        assert cmd.kp == G1.kp[slot] >= 40.0 and cmd.kd > 0
    assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q == 0.0     # no weight on /lowcmd
    assert (msg.mode_pr, msg.mode_machine) == (0, 7) and msg.crc == lowcmd_crc(msg)


def test_lowcmd_needs_a_hold_pose():
    builder = G1CommandBuilder(G1, 'lowcmd', ARMS, kp=50.0, kd=1.0)
    with pytest.raises(ValueError, match='set_hold_pose'):
        builder.fill(LowCmd(), np.zeros(14))


def test_all_body_joints_need_no_hold_pose():
    builder = G1CommandBuilder(G1, 'lowcmd', range(29))
    msg = LowCmd()
    assert builder.fill(msg, np.zeros(29), mode_machine=5)
    assert_within_urdf_limits(msg)


@pytest.mark.parametrize('kwargs, match', [
    ({'mode': 'walk', 'joint_indices': ARMS}, 'mode'),
    ({'mode': 'arm_sdk', 'joint_indices': [15, 15]}, 'duplicates'),
    ({'mode': 'arm_sdk', 'joint_indices': [29]}, 'body motors'),
    ({'mode': 'arm_sdk', 'joint_indices': []}, 'empty'),
    ({'mode': 'arm_sdk', 'joint_indices': ARMS, 'kp': [1.0, 2.0]}, 'kp'),
    ({'mode': 'arm_sdk', 'joint_indices': ARMS, 'kd': -1.0}, 'kd'),
])
def test_invalid_configuration_is_refused(kwargs, match):
    args = {'kp': 40.0, 'kd': 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        G1CommandBuilder(G1, **args)


def test_non_finite_target_is_refused_whole_and_the_previous_is_kept():
    builder = arm_builder()
    msg = LowCmd()
    assert not builder.fill(msg, np.full(14, np.nan))     # nothing accepted yet: untouched
    assert msg.crc == 0 and body_q(msg).sum() == 0
    good = np.full(14, 0.3)
    assert builder.fill(msg, good, weight=1.0)
    bad = good.copy()
    bad[3] = np.nan
    bad[0] = 2.0
    assert not builder.fill(msg, bad, weight=1.0)
    assert body_q(msg)[ARMS] == pytest.approx(good)
    assert msg.crc == lowcmd_crc(msg)


@settings(max_examples=200, deadline=None)
@given(q=st.lists(WILD, min_size=14, max_size=14), weight=WILD,
       mode=st.sampled_from(['arm_sdk', 'lowcmd']), mode_machine=st.integers(0, 255))
def test_any_target_gives_a_safe_valid_command(q, weight, mode, mode_machine):
    builder = arm_builder(mode)
    msg = LowCmd()
    builder.reset(np.zeros(14))
    accepted = builder.fill(msg, q, mode_machine=mode_machine, weight=weight)
    assert accepted == all(math.isfinite(v) for v in q)
    assert_within_urdf_limits(msg)
    arm_q = body_q(msg)[ARMS]
    assert np.all(arm_q >= builder.lower - TOL) and np.all(arm_q <= builder.upper + TOL)
    if not accepted:
        assert arm_q == pytest.approx(np.zeros(14))
    w = msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q
    assert 0.0 <= w <= 1.0
    if mode == 'lowcmd':
        assert w == 0.0
    for cmd in msg.motor_cmd:
        assert all(math.isfinite(v) for v in (cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd))
    assert msg.mode_machine == mode_machine and msg.mode_pr == 0
    assert msg.crc == lowcmd_crc(msg)


def test_the_description_limits_are_applied():
    tight = dataclasses.replace(G1, lower=np.full(29, -0.2), upper=np.full(29, 0.1))
    builder = arm_builder(description=tight)
    msg = LowCmd()
    builder.fill(msg, np.full(14, 5.0))
    assert body_q(msg)[ARMS] == pytest.approx(np.full(14, 0.1))


@settings(max_examples=100, deadline=None)
@given(w=WILD)
def test_clamp_weight(w):
    out = clamp_weight(w)
    assert 0.0 <= out <= 1.0
    if math.isnan(w):
        assert out == 0.0


def test_damp_sets_kp_zero_and_kd_positive_everywhere():
    builder = arm_builder()
    msg = LowCmd()
    builder.fill(msg, np.full(14, 0.5), mode_machine=5, weight=1.0)
    builder.damp(msg, mode_machine=5, weight=0.7)
    for slot in range(29):
        cmd = msg.motor_cmd[slot]
        assert cmd.mode == 1 and cmd.kp == 0.0 and cmd.kd > 0.0
        assert cmd.dq == 0.0 and cmd.tau == 0.0
    assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q == pytest.approx(0.7)
    assert msg.crc == lowcmd_crc(msg) and msg.mode_machine == 5
    builder.damp(msg, weight=math.nan, q=np.full(29, np.nan))
    assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q == 0.0
    assert_within_urdf_limits(msg)


@settings(max_examples=100, deadline=None)
@given(prev=st.lists(st.floats(-3, 3), min_size=5, max_size=5),
       target=st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=5),
       step=st.floats(0, 1))
def test_rate_limit_bounds_each_joint(prev, target, step):
    out = rate_limit(prev, target, step)
    assert np.all(np.abs(out - np.array(prev)) <= step + 1e-9)
    moved_fully = np.abs(np.array(target) - np.array(prev)) <= step
    assert np.allclose(out[moved_fully], np.array(target)[moved_fully])


def test_ramp_up_and_down_take_their_durations():
    ramp = WeightRamp(duration_up_s=1.0, duration_down_s=2.0)
    assert ramp.weight == 0.0 and ramp.done
    ramp.enable()
    weights = [ramp.step(0.01) for _ in range(150)]
    assert weights[49] == pytest.approx(0.5) and weights[99] == pytest.approx(1.0)
    assert weights[-1] == 1.0 and ramp.done
    ramp.disable()
    weights = [ramp.step(0.01) for _ in range(250)]
    assert weights[99] == pytest.approx(0.5) and weights[199] == pytest.approx(0.0, abs=1e-9)
    assert weights[-1] == 0.0


def test_zero_duration_jumps_and_bad_dt_does_nothing():
    ramp = WeightRamp(0.0, 0.0)
    ramp.enable()
    assert ramp.step(math.nan) == 0.0 and ramp.step(-1.0) == 0.0
    assert ramp.step(0.001) == 1.0
    with pytest.raises(ValueError):
        WeightRamp(-1.0, 1.0)


@settings(max_examples=150, deadline=None)
@given(up=st.floats(0.01, 5), down=st.floats(0.01, 5),
       events=st.lists(st.tuples(st.sampled_from(['enable', 'disable', 'step']),
                                 st.one_of(st.floats(-1, 1), WILD)), max_size=80))
def test_ramp_is_bounded_rate_limited_and_monotone_between_target_changes(up, down, events):
    ramp = WeightRamp(up, down)
    direction = 0
    for action, dt in events:
        before = ramp.weight
        if action != 'step':
            getattr(ramp, action)()
            direction = 1 if action == 'enable' else -1
            continue
        after = ramp.step(dt)
        assert 0.0 <= after <= 1.0
        if not math.isfinite(dt) or dt <= 0:
            assert after == before
            continue
        rate = 1.0 / (up if direction > 0 else down)
        assert abs(after - before) <= dt * rate + 1e-12
        if direction > 0:
            assert after >= before
        elif direction < 0:
            assert after <= before


@pytest.mark.parametrize('side', ['left', 'right'])
def test_fill_hand_modes_gains_and_limits(side):
    msg = HandCmd()
    builder = arm_builder()
    q = np.array([5.0, -5.0, 5.0, -5.0, 5.0, -5.0, 0.0])
    assert builder.fill_hand(msg, q, side, motor_cmd_factory=MotorCmd)
    assert len(msg.motor_cmd) == 7
    hand = G1.hands[side]
    expected = np.clip(q, hand.lower, hand.upper)
    for i, cmd in enumerate(msg.motor_cmd):
        assert cmd.mode == i | (1 << 4)
        assert (cmd.kp, cmd.kd, cmd.dq, cmd.tau) == (hand.kp[i], pytest.approx(hand.kd[i]),
                                                     0.0, 0.0)
        assert cmd.q == pytest.approx(expected[i])
    assert not builder.fill_hand(msg, [math.nan] * 7, side)   # refused: previous kept
    assert [c.q for c in msg.motor_cmd] == pytest.approx(expected)


def test_stateless_fill_hand_and_stop():
    msg = HandCmd()
    with pytest.raises(ValueError):
        fill_hand(msg, [0.0] * 7, G1.hands['left'])         # no entries and no factory
    fill_hand(msg, [0.1] * 7, G1.hands['right'], motor_cmd_factory=MotorCmd)
    assert [c.mode for c in msg.motor_cmd] == [i | 0x10 for i in range(7)]
    with pytest.raises(ValueError):
        fill_hand(msg, [math.inf] + [0.0] * 6, G1.hands['right'])
    with pytest.raises(ValueError, match='has Dex3 hands left, right'):
        arm_builder().fill_hand(msg, [0.0] * 7, 'middle')
    stop_hand(msg)
    assert all(c.kp == c.kd == c.q == 0.0 and c.mode & 0x80 for c in msg.motor_cmd)


def test_duck_typed_message():
    motors = [types.SimpleNamespace(mode=0, q=0.0, dq=0.0, tau=0.0, kp=0.0, kd=0.0, reserve=0)
              for _ in range(35)]
    msg = types.SimpleNamespace(mode_pr=0, mode_machine=0, motor_cmd=motors, reserve=[0] * 4,
                                crc=0)
    builder = arm_builder()
    assert builder.fill(msg, np.zeros(14), mode_machine=3, weight=1.0)
    assert msg.crc == lowcmd_crc(msg) and msg.motor_cmd[29].q == 1.0


def test_arm_sdk_motor_set():
    assert ARM_SDK_MOTORS == tuple(range(12, 29))


def test_module_imports_without_ros():
    probe = (
        'import sys, json\n'
        'for name in ("rclpy", "unitree_hg", "unitree_hg.msg"):\n'
        '    sys.modules[name] = None\n'
        'import dit4dit_g1.lowcmd, dit4dit_g1.crc, dit4dit_g1.bridge, dit4dit_g1.description\n'
        'print(json.dumps(sorted(m for m in sys.modules if m.startswith(("rclpy", "rosidl")) '
        'and sys.modules[m] is not None)))\n')
    res = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
