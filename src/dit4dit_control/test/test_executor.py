"""The executor's state machine without ROS: enable, ramp, watchdogs, e-stop, subset chunks."""

from dit4dit_control.executor import (
    DISABLED, ESTOP, ExecutorCore, ExecutorSettings, HOLDING, RAMPING_IN, RUNNING)
from dit4dit_control.safety import JointLimits
import numpy as np
import pytest

JOINTS = ['left_elbow_joint', 'right_elbow_joint', 'left_hand_thumb_0_joint']
RATE = 100.0


def core(**settings):
    limits = JointLimits(JOINTS, [-1.0] * 3, [2.0] * 3, [1.0] * 3, [8.0] * 3)
    return ExecutorCore(limits, ExecutorSettings(control_rate_hz=RATE, **{
        'ramp_in_s': 0.0, **settings}))


def chunk(value, n=10, dt=0.05):
    return np.full((n, 1), value)


def feed(c, now, q=(0.5, 0.5, 0.2)):
    assert c.on_joints(JOINTS, list(q), stamp=now, now=now) == ''


def test_disabled_until_enable_then_runs_within_limits():
    c = core()
    feed(c, 0.0)
    assert c.on_chunk(JOINTS, np.full((10, 3), 1.5), 0.0, 0.05, 0.0).startswith('accepted')
    assert c.tick(0.0) is None and c.state == DISABLED
    with pytest.raises(RuntimeError, match='no joint states'):
        core().enable(0.0)
    assert 'ramping in' in c.enable(0.0)
    commands = []
    for k in range(1, 20):
        t = k / RATE
        feed(c, t)
        c.on_chunk(JOINTS, np.full((10, 3), 1.5), t, 0.05, t)
        commands.append(c.tick(t))
    assert c.state == RUNNING
    steps = np.diff(np.array(commands), axis=0)
    assert np.all(steps >= 0) and np.all(steps <= 1.0 / RATE + 1e-9)      # 1 rad/s cap


def test_a_chunk_for_a_subset_holds_the_other_joints():
    c = core()
    feed(c, 0.0, (0.5, 0.5, 0.2))
    c.enable(0.0)
    line = c.on_chunk(JOINTS[:2], np.full((20, 2), 0.9), 0.0, 0.05, 0.0)   # arms only
    assert line.startswith('accepted')
    q = None
    for k in range(1, 40):
        t = k / RATE
        feed(c, t, (0.5, 0.5, 0.2))
        q = c.tick(t)
    assert q[0] > 0.8 and q[1] > 0.8                  # the arms move toward 0.9
    assert q[2] == pytest.approx(0.2)                 # the hand holds where it was


def test_unknown_joints_are_refused_and_the_reason_shows_while_holding():
    c = core(policy_timeout_s=0.05)
    feed(c, 0.0)
    c.enable(0.0)
    line = c.on_chunk(['left_elbow_joint', 'tail_joint'], np.zeros((5, 2)), 0.0, 0.05, 0.0)
    assert line == 'refused: chunk commands joints the executor does not: tail_joint'
    assert c.refused_chunks == 1
    feed(c, 0.1)
    c.tick(0.1)                                   # the (zero-length) ramp-in completes
    c.tick(0.1)
    assert c.state == HOLDING
    assert c.message == ('watchdog: no chunk from the policy (last chunk refused: chunk commands '
                         'joints the executor does not: tail_joint)')
    assert c.on_chunk(JOINTS, np.zeros((5, 2)), 0.1, 0.05, 0.1).startswith('refused')


def test_watchdogs_hold_and_estop_stops_until_enable():
    c = core(policy_timeout_s=0.05, max_observation_age_s=0.05)
    feed(c, 0.0)
    c.enable(0.0)
    c.on_chunk(JOINTS, np.full((40, 3), 0.6), 0.0, 0.05, 0.0)
    c.tick(0.01)
    assert c.state == RUNNING
    assert c.tick(0.2) is not None and c.state == HOLDING
    assert c.message == 'watchdog: joint states too old'
    feed(c, 0.2)
    c.tick(0.2)
    assert c.message.startswith('watchdog: no chunk from the policy')
    assert c.hold() == 'holding' and c.message == 'hold requested'
    assert c.estop() == 'e-stop: commands stopped' and c.tick(0.3) is None
    with pytest.raises(RuntimeError, match='not enabled'):
        c.hold()
    assert c.state == ESTOP
    c.enable(0.3)
    assert c.state == RAMPING_IN


def test_episodes_forget_old_chunks_and_reenable_on_the_new_pose():
    c = core()
    c.auto_enable = True
    feed(c, 0.0)
    assert c.state == RAMPING_IN
    c.episode_started(start=1.0, index=1)
    assert c.state == DISABLED and c.tick(1.0) is None
    feed(c, 0.9)                                  # the previous episode's pose: still disabled
    assert c.state == DISABLED
    feed(c, 1.0, (0.0, 0.0, 0.0))
    assert c.state == RAMPING_IN
    assert c.on_chunk(JOINTS, np.ones((5, 3)), 0.5, 0.05, 1.0).startswith('refused')
    c.episode_ended(1)
    assert c.state == DISABLED and c.tick(1.1) is None


def test_state_values_are_the_status_message_constants():
    from dit4dit_msgs.msg import ExecutorStatus as S
    assert (DISABLED, RAMPING_IN, RUNNING, HOLDING, ESTOP) == (
        S.STATE_DISABLED, S.STATE_RAMPING_IN, S.STATE_RUNNING, S.STATE_HOLDING, S.STATE_ESTOP)


def test_on_a_robot_an_episode_start_waits_for_the_operator():
    c = core()                                    # auto_enable off: a robot
    feed(c, 0.0)
    assert c.state == DISABLED                    # joint states alone never enable
    c.enable(0.0)
    c.episode_started(start=1.0, index=0)
    feed(c, 1.1)
    assert c.state == DISABLED and c.tick(1.1) is None
    c.enable(1.1)
    assert c.state == RAMPING_IN
