"""The bridge's state machine on its own: explicit time, real unitree_hg messages, no DDS."""

from dit4dit_g1.bridge import (
    BridgeConfig, BridgeCore, DISABLED, DISABLING, ENABLED, ESTOP, shutdown_budget_s)
from dit4dit_g1.description import load_description
from dit4dit_g1.lowcmd import ARM_SDK_WEIGHT_INDEX
import numpy as np
import pytest
from unitree_hg.msg import HandCmd, LowCmd, MotorCmd

G1 = load_description()
RATE = 250.0


def core(mode='arm_sdk', hands='none', **config):
    return BridgeCore(G1, BridgeConfig(mode=mode, rate_hz=RATE, hands=hands, **config))


def run(c, start, seconds, lowstate=True):
    """Tick for ``seconds`` from ``start``; return (end time, weights of published LowCmds)."""
    msg, hands = LowCmd(), {s: HandCmd(motor_cmd=[MotorCmd() for _ in range(7)])
                            for s in c.hands}
    weights, t = [], start
    for _ in range(int(round(seconds * RATE))):
        t += 1.0 / RATE
        if lowstate:
            c.on_lowstate(np.zeros(29), 5, t)
        publish, _ = c.tick(t, msg, hands)
        if publish:
            weights.append(msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q)
    return t, weights


def test_shutdown_ramps_the_weight_to_zero_within_the_budget():
    c = core()
    c.on_lowstate(np.zeros(29), 5, 0.0)
    c.enable(0.0)
    t, up = run(c, 0.0, 1.2)
    assert up[-1] == 1.0 and len(up) == pytest.approx(1.2 * RATE, abs=1)
    c.request_shutdown(t)
    assert c.state == DISABLING
    t2, down = run(c, t, shutdown_budget_s(G1.ramp_down_s))
    assert down[-1] == 0.0 and c.finished and c.state == DISABLED
    assert all(b <= a for a, b in zip(down, down[1:]))
    assert len(down) == pytest.approx(G1.ramp_down_s * RATE, abs=2)   # the description's 3 s
    with pytest.raises(RuntimeError, match='shutting down'):
        c.enable(t2)


def test_a_lost_lowstate_ramps_down_and_estop_damps_without_raising_the_weight():
    c = core(lowstate_timeout_s=0.1)
    c.on_lowstate(np.zeros(29), 5, 0.0)
    c.enable(0.0)
    t, _ = run(c, 0.0, 0.5)
    t, weights = run(c, t, 0.2, lowstate=False)
    assert c.state == DISABLING and weights[-1] < max(weights)        # ramping down
    c.estop()
    assert c.state == ESTOP
    msg = LowCmd()
    c.tick(t + 0.01, msg, {})
    assert all(msg.motor_cmd[i].kp == 0.0 and msg.motor_cmd[i].kd > 0 for i in range(29))
    assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q <= weights[-1]
    with pytest.raises(RuntimeError, match='e-stopped'):
        c.disable(t)


def test_commands_for_joints_the_mode_does_not_drive_are_refused():
    c = core()                                   # arm_sdk: waist and arms only
    c.on_lowstate(np.zeros(29), 5, 0.0)
    assert c.on_command(['left_knee_joint'], [0.3]) == ''       # not enabled: ignored
    c.enable(0.0)
    assert c.state == ENABLED
    assert c.on_command(['left_knee_joint'], [0.3]) == \
        "joints not driven in arm_sdk mode: ['left_knee_joint']"
    assert c.on_command(['left_hand_thumb_0_joint'], [0.3]).startswith('joints not driven')
    assert core('lowcmd').name_to_slot['left_knee_joint'] == 3
    assert core(hands='left').name_to_slot['left_hand_thumb_0_joint'] == ('left', 0)


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="hands 'three'"):
        BridgeConfig(hands='three')
    with pytest.raises(ValueError, match='rate_hz'):
        BridgeConfig(rate_hz=0.0)
    assert shutdown_budget_s(3.0) == 4.0
