"""SafetyFilter: limits hold whatever it is fed; reachable targets are reached."""

import math

from dit4dit_control.safety import JointLimits, SafetyFilter, stopping_step
from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

TOL = 1e-12
SPECIAL = [math.nan, math.inf, -math.inf, 1e9, -1e9, 1e300, -1e300, 0.0]


@st.composite
def limit_sets(draw, max_joints=6, periods=(0.002, 0.004, 0.005, 0.01, 0.02)):
    """Draw JointLimits and a control period: a few joints, arbitrary but sane ranges."""
    n = draw(st.integers(1, max_joints))
    floats = st.floats
    lower = np.array([draw(floats(-4.0, 3.0)) for _ in range(n)])
    width = np.array([draw(floats(0.05, 5.0)) for _ in range(n)])
    vel = np.array([draw(floats(0.2, 10.0)) for _ in range(n)])
    acc = np.array([draw(floats(0.5, 100.0)) for _ in range(n)])
    dt = draw(st.sampled_from(periods))
    return JointLimits([f'j{i}' for i in range(n)], lower, lower + width, vel, acc), dt


def any_value():
    """Return a strategy for one target value: specials, in range, or anywhere."""
    return st.one_of(st.sampled_from(SPECIAL), st.floats(-6.0, 6.0),
                     st.floats(allow_nan=True, allow_infinity=True))


def check_tick(limits, dt, previous, command, previous_step):
    """Assert one tick's command is inside the limits; return its step."""
    assert command.shape == (limits.size,)
    assert np.all(np.isfinite(command))
    assert np.all(command >= limits.lower) and np.all(command <= limits.upper)
    step = command - previous
    assert np.all(np.abs(step) <= limits.max_velocity * dt + TOL)
    assert np.all(np.abs(step - previous_step) <= limits.max_acceleration * dt * dt + TOL)
    return step


def run_to(flt, target, ticks):
    """Apply a constant target ``ticks`` times; return the last command."""
    for _ in range(ticks):
        command = flt.apply(target)
    return command


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_commands_stay_within_limits_whatever_the_targets(data):
    limits, dt = data.draw(limit_sets())
    n = limits.size
    flt = SafetyFilter(limits, dt)
    flt.reset(np.array(data.draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n))))
    previous, previous_step = flt.command, np.zeros(n)
    right = st.lists(any_value(), min_size=n, max_size=n)
    wrong = st.integers(0, n + 3).filter(lambda k: k != n).flatmap(
        lambda k: st.lists(any_value(), min_size=k, max_size=k))
    targets = data.draw(st.lists(st.one_of(right, right, wrong), min_size=1, max_size=120))
    for target in targets:
        if len(target) != n:
            before = (flt.command, flt.velocity, flt.counters)
            with pytest.raises(ValueError):
                flt.apply(target)
            after = (flt.command, flt.velocity, flt.counters)
            assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
            assert before[2] == after[2]
            continue
        command = flt.apply(np.array(target))
        previous_step = check_tick(limits, dt, previous, command, previous_step)
        previous = command
        assert np.allclose(flt.velocity, previous_step / dt)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_a_reachable_target_is_reached(data):
    limits, dt = data.draw(limit_sets(max_joints=4, periods=(0.004, 0.01, 0.02)))
    n = limits.size
    flt = SafetyFilter(limits, dt)
    fraction = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    start = limits.lower + fraction * (limits.upper - limits.lower)
    # A target anywhere, even outside the limits: the clamped target is what is reachable.
    target = np.array(data.draw(st.lists(st.floats(-8, 8), min_size=n, max_size=n)))
    goal = np.clip(target, limits.lower, limits.upper)
    flt.reset(start)
    distance = np.abs(goal - start)
    seconds = np.max(distance / limits.max_velocity + 2 * limits.max_velocity /
                     limits.max_acceleration + 2 * np.sqrt(distance / limits.max_acceleration))
    previous, previous_step = flt.command, np.zeros(n)
    for _ in range(int(seconds / dt) + 20):
        command = flt.apply(target)
        previous_step = check_tick(limits, dt, previous, command, previous_step)
        previous = command
    np.testing.assert_allclose(command, goal, atol=1e-9)
    np.testing.assert_allclose(flt.velocity, 0.0, atol=1e-6)


def test_reset_clamps_the_measured_pose_and_starts_at_rest():
    limits = JointLimits(['a', 'b', 'c'], [-1, -1, -1], [1, 1, 1], [2, 2, 2], [10, 10, 10])
    flt = SafetyFilter(limits, 0.002)
    assert flt.command is None
    with pytest.raises(RuntimeError):
        flt.apply([0, 0, 0])
    flt.reset([5.0, -7.0, 0.25])
    np.testing.assert_array_equal(flt.command, [1.0, -1.0, 0.25])
    np.testing.assert_array_equal(flt.velocity, 0.0)
    # Holding the clamped pose: no motion at all.
    np.testing.assert_array_equal(flt.apply([5.0, -7.0, 0.25]), [1.0, -1.0, 0.25])
    with pytest.raises(ValueError):
        flt.reset([0.0, 0.0])
    with pytest.raises(ValueError):
        flt.reset([0.0, math.nan, 0.0])


def test_non_finite_target_holds_a_resting_command_and_brakes_a_moving_one():
    limits = JointLimits(['a', 'b'], [-3, -3], [3, 3], [1.0, 1.0], [5.0, 5.0])
    dt = 0.004
    flt = SafetyFilter(limits, dt)
    flt.reset([0.0, 0.0])
    assert np.array_equal(flt.apply([math.nan, 0.5]), [0.0, 0.0])   # at rest: exact hold, all
    assert flt.counters['non_finite'] == 1
    run_to(flt, [2.5, -2.5], 200)                                     # now at full speed
    assert np.allclose(np.abs(flt.velocity), 1.0)
    speeds = [np.abs(flt.velocity)]
    position = flt.command
    for _ in range(100):
        flt.apply([math.inf, 0.0])
        speeds.append(np.abs(flt.velocity))
    speeds = np.array(speeds)
    assert np.all(np.diff(speeds, axis=0) <= 1e-12)                  # decelerates, never reverses
    assert np.all(speeds[-1] == 0.0)
    travelled = np.abs(flt.command - position)
    np.testing.assert_allclose(travelled, 1.0 ** 2 / (2 * 5.0), rtol=0.05)   # v^2 / 2a
    assert flt.counters['non_finite'] == 101


def test_holding_the_current_command_brakes_without_reversing():
    # What the executor node does when it has no target: apply(command).
    limits = JointLimits(['a'], [-3.0], [3.0], [1.0], [5.0])
    flt = SafetyFilter(limits, 0.004)
    flt.reset([0.0])
    run_to(flt, [2.5], 300)
    speeds = []
    for _ in range(100):
        flt.apply(flt.command)
        speeds.append(flt.velocity[0])
    assert np.all(np.diff(speeds) <= 1e-12) and min(speeds) >= 0.0 and speeds[-1] == 0.0


def test_braking_before_a_limit_respects_the_acceleration_limit():
    limits = JointLimits(['a'], [-1.0], [1.0], [1.5], [4.0])
    dt = 0.002
    flt = SafetyFilter(limits, dt)
    flt.reset([-1.0])
    previous, previous_step, peak = flt.command, np.zeros(1), 0.0
    for _ in range(2000):           # a target far beyond the upper limit, at full speed
        command = flt.apply([1e9])
        previous_step = check_tick(limits, dt, previous, command, previous_step)
        previous, peak = command, max(peak, float(flt.velocity[0]))
    assert command[0] == pytest.approx(1.0, abs=1e-12)
    assert peak == pytest.approx(1.5)
    assert flt.counters['position_clamped'] == 2000
    assert flt.counters['velocity_limited'] > 0 and flt.counters['acceleration_limited'] > 0


def test_a_smooth_target_is_tracked_without_lag():
    limits = JointLimits(['a'], [-2.0], [2.0], [3.0], [20.0])
    dt = 0.002
    flt = SafetyFilter(limits, dt)
    t = np.arange(0.0, 4.0, dt)
    q = 0.5 * np.cos(2 * np.pi * 0.5 * t)             # starts at rest, within the limits
    flt.reset(q[:1])
    out = np.array([flt.apply(q[i:i + 1])[0] for i in range(len(t))])
    assert np.max(np.abs(out - q)) < 1e-9


def test_stopping_step_is_an_exact_braking_curve():
    c = 0.01
    for distance in (0.0, 0.004, 0.01, 0.0301, 0.06, 1.2345):
        s = stopping_step(np.array([distance]), np.array([c]))[0]
        steps = np.arange(s, 0.0, -c)        # brake by c per tick until rest
        assert steps.sum() <= distance + 1e-12
        assert s <= max(distance, 0.0) + 1e-12
        bigger = np.arange(s + 1e-6, 0.0, -c)
        assert bigger.sum() > distance or distance == 0.0


@pytest.mark.parametrize('kwargs, match', [
    ({'lower': [0, 0], 'upper': [1, 1]}, 'shape'),
    ({'upper': [-1.0]}, 'lower >= upper'),
    ({'lower': [math.nan]}, 'finite'),
    ({'max_velocity': [0.0]}, 'max_velocity'),
    ({'max_acceleration': [-1.0]}, 'max_acceleration'),
    ({'lower': ['x']}, 'lower'),
    ({'names': []}, 'no joints'),
])
def test_joint_limits_are_validated(kwargs, match):
    base = {'names': ['a'], 'lower': [-1.0], 'upper': [1.0], 'max_velocity': [1.0],
            'max_acceleration': [1.0]}
    with pytest.raises(ValueError, match=match):
        JointLimits(**{**base, **kwargs})


def test_filter_arguments_are_validated():
    limits = JointLimits(['a'], [-1.0], [1.0], [1.0], [1.0])
    for dt in (0.0, -0.1, math.nan, math.inf, True):
        with pytest.raises(ValueError):
            SafetyFilter(limits, dt)
    with pytest.raises(TypeError):
        SafetyFilter({'lower': [-1]}, 0.01)
