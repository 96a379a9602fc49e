"""ChunkExecutor: latency-aware, never backwards at chunk boundaries, never stale, always safe."""

import math

from dit4dit_control.chunk_executor import (
    Chunk, ChunkExecutor, ExecutorConfig, make_strategy, STRATEGIES)
from dit4dit_control.safety import JointLimits, SafetyFilter
from hypothesis import given, HealthCheck, settings, strategies as st
from hypothesis.extra.numpy import arrays
import numpy as np
import pytest

TOL = 1e-12

# -- the chunk-boundary acceptance test ---------------------------------------------------------

AMPLITUDE = np.array([0.5, 0.3, 0.4])
PHASE = np.array([0.0, 1.0, 2.0])
FREQUENCY = 0.5                              # Hz
OMEGA = 2 * math.pi * FREQUENCY
ACTION_DT = 1.0 / 30.0
HORIZON = 16
NOISE = 2e-4                                 # uniform +-, rad: 0.04 % of the largest amplitude
WARM_UP = 1.0           # s: the first chunks start the motion from rest; judged after this
BOUNDARY_LIMITS = JointLimits(['a', 'b', 'c'], [-1.5] * 3, [1.5] * 3, [3.0] * 3, [20.0] * 3)


def truth(t):
    """Return the ground-truth positions at times ``t`` [..., 3]."""
    return AMPLITUDE * np.sin(OMEGA * np.asarray(t)[..., None] + PHASE)


def truth_velocity(t):
    """Return the ground-truth velocities at times ``t`` [..., 3]."""
    return AMPLITUDE * OMEGA * np.cos(OMEGA * np.asarray(t)[..., None] + PHASE)


class NaiveExecutor:
    """A peer stack's executor: each chunk starts at its first action when it arrives."""

    def __init__(self):
        """Wrap a 'replace' executor that is told the chunk was observed on arrival."""
        self.inner = ChunkExecutor(3, ExecutorConfig(strategy='replace'))

    def submit(self, chunk, now):
        """Submit ``chunk`` as if it had been computed at ``now`` (ignores its stamp)."""
        return self.inner.submit(Chunk(now, chunk.dt, chunk.positions, chunk.index), now)

    def target(self, now):
        """Return the inner executor's target."""
        return self.inner.target(now)


def simulate(executor, period_actions, latency, rate_hz=250.0, seconds=5.0, seed=0,
             inpaint=False):
    """
    Run a simulated policy and control loop; return times, raw targets, commands, switch ticks.

    The policy observes the commanded pose every ``period_actions`` action periods and answers
    ``latency`` (+-10 ms) later: the ground truth from the observation time on, starting from the
    observed pose (a policy continues from the robot it sees) and converging to the ground truth
    within about 0.2 s, plus noise. With ``inpaint`` it conditions the chunk on the executor's
    ``executing_prefix`` over the latency (rtc).
    """
    rng = np.random.default_rng(seed)
    dt = 1.0 / rate_hz
    times = np.arange(0.0, seconds, dt)
    observations = list(np.arange(0.0, seconds, period_actions * ACTION_DT))
    in_flight, switches, targets, commands = [], [], [], []
    safety = SafetyFilter(BOUNDARY_LIMITS, dt)
    for tick, now in enumerate(times):
        while observations and observations[0] <= now:
            stamp = observations.pop(0)
            offsets = ACTION_DT * np.arange(HORIZON)
            seen = safety.command if safety.command is not None else truth(stamp)
            positions = (truth(stamp + offsets) + (seen - truth(stamp)) * np.exp(
                -offsets / 0.2)[:, None] + rng.uniform(-NOISE, NOISE, (HORIZON, 3)))
            if inpaint:
                prefix = executor.executing_prefix(stamp, latency).positions
                positions[:len(prefix)] = prefix
            arrival = stamp + latency + rng.uniform(-0.01, 0.01)
            in_flight.append((arrival, Chunk(stamp, ACTION_DT, positions, len(switches))))
        while in_flight and in_flight[0][0] <= now:
            arrival, chunk = in_flight.pop(0)
            assert executor.submit(chunk, arrival).startswith('accepted')
            switches.append(tick)
        target = executor.target(now)
        if target is None and safety.command is None:
            targets.append(np.full(3, np.nan))
            commands.append(np.full(3, np.nan))
            continue
        if safety.command is None:
            safety.reset(target)
        targets.append(np.full(3, np.nan) if target is None else target)
        commands.append(safety.apply(target if target is not None else safety.command))
    return times, np.array(targets), np.array(commands), switches


def backward_at_switches(times, trajectory, switches, span=1, window=10):
    """
    Return (switch ticks where ``trajectory`` moves against the ground truth, switches checked).

    A switch is checked where some joint moves fast (30 % of its peak velocity): over each of the
    first ``window`` ticks from the switch, the motion over ``span`` ticks must have the ground
    truth's sign.
    """
    bad, checked = [], []
    for s in switches:
        if times[s] < WARM_UP:
            continue
        ticks = range(s, min(s + window, len(times) - span + 1))
        fast = [np.abs(truth_velocity(times[t])) > 0.3 * AMPLITUDE * OMEGA for t in ticks]
        if not np.any(fast):
            continue
        checked.append(s)
        for tick, moving in zip(ticks, fast):
            step = trajectory[tick + span - 1] - trajectory[tick - 1]
            if np.any(moving & (np.sign(step) != np.sign(truth_velocity(times[tick])))):
                bad.append(s)
                break
    return bad, checked


@pytest.mark.parametrize('strategy', sorted(STRATEGIES))
@pytest.mark.parametrize('period_actions, latency', [(6, 0.3), (8, 0.25)])
def test_chunk_boundaries_never_move_backward(strategy, period_actions, latency):
    executor = ChunkExecutor(3, ExecutorConfig(strategy=strategy))
    times, targets, commands, switches = simulate(executor, period_actions, latency,
                                                  inpaint=strategy == 'rtc')
    started, settled = switches[0], int(WARM_UP / (times[1] - times[0]))
    assert not np.isnan(targets[started:]).any()            # never stalls once started
    # The executed commands: every tick moves with the ground truth around every switch.
    bad, checked = backward_at_switches(times, commands, switches)
    assert bad == [] and len(checked) >= 10
    # The executor's raw targets, over 12 ms: with 'replace', a chunk that lands in the
    # extrapolated last period of its predecessor differs from it by the prediction error (here
    # up to about 1 % of the amplitude): a one-tick wobble that the safety filter absorbs.
    bad, checked = backward_at_switches(times, targets, switches, span=3)
    assert bad == [] and len(checked) >= 10
    for trajectory in (targets, commands):
        error = np.abs(trajectory[settled:] - truth(times[settled:]))
        assert np.all(error.max(axis=0) < 0.02 * AMPLITUDE)    # < 2 % of the amplitude
    steps = np.abs(np.diff(targets[started:], axis=0))
    assert steps.max() <= 3.0 * (times[1] - times[0])       # no step above the velocity limit
    assert executor.dropped_actions >= (len(switches) - 1) * int(latency / ACTION_DT - 0.5)


def test_a_naive_executor_jumps_backward_at_chunk_boundaries():
    times, targets, commands, switches = simulate(NaiveExecutor(), 6, 0.3)
    started = switches[0]
    for trajectory, span in ((commands, 1), (targets, 3)):
        bad, checked = backward_at_switches(times, trajectory, switches, span)
        assert len(checked) >= 10 and len(bad) >= 0.9 * len(checked)
    steps = np.abs(np.diff(targets[started:], axis=0))
    assert steps.max() > 10 * 3.0 * (times[1] - times[0])
    settled = int(WARM_UP / (times[1] - times[0]))
    error = np.abs(commands[settled:] - truth(times[settled:]))
    assert np.all(error.max(axis=0) > 0.2 * AMPLITUDE)


def test_late_chunks_leave_a_hold_never_a_replay():
    # 8 actions between observations and 300 ms latency: each chunk (16 actions, the last held
    # one period) runs out about one action period before the next arrives.
    executor = ChunkExecutor(3, ExecutorConfig(strategy='crossfade'))
    times, targets, commands, switches = simulate(executor, 8, 0.3)
    started = switches[0]
    held = np.isnan(targets[started:, 0])
    assert held.any()
    assert held.sum() * (times[1] - times[0]) < len(switches) * 1.6 * ACTION_DT
    valid = ~np.isnan(targets[:, 0])
    error = np.abs(targets[valid] - truth(times[valid]))
    assert np.all(error.max(axis=0) < 0.02 * AMPLITUDE)    # what runs is never stale
    assert backward_at_switches(times, commands, switches)[0] == []


# -- arbitrary chunks through the executor and the safety filter --------------------------------

VALUES = st.one_of(st.floats(-3.0, 3.0), st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e9, -1e9, 1e308, -1e308]))


@st.composite
def scenarios(draw):
    """Draw limits, a strategy and chunk submissions (time, chunk), some malformed or stale."""
    n = draw(st.integers(1, 4))
    lower = np.array(draw(st.lists(st.floats(-3.0, 0.0), min_size=n, max_size=n)))
    width = np.array(draw(st.lists(st.floats(0.1, 4.0), min_size=n, max_size=n)))
    vel = np.array(draw(st.lists(st.floats(0.2, 6.0), min_size=n, max_size=n)))
    acc = np.array(draw(st.lists(st.floats(1.0, 60.0), min_size=n, max_size=n)))
    limits = JointLimits([f'j{i}' for i in range(n)], lower, lower + width, vel, acc)
    config = ExecutorConfig(strategy=draw(st.sampled_from(sorted(STRATEGIES))),
                            crossfade_s=draw(st.floats(0.0, 0.3)),
                            interpolate=draw(st.booleans()))
    now, stamps, events = 0.0, [], []
    for index in range(draw(st.integers(1, 6))):
        now += draw(st.floats(0.0, 0.4))
        if stamps and draw(st.integers(0, 4)) == 0:
            stamp = draw(st.sampled_from(stamps))                  # out of order or repeated
        else:
            stamp = now - draw(st.one_of(st.floats(-0.05, 1.5), st.floats(0.05, 0.35)))
        stamps.append(stamp)
        columns = draw(st.sampled_from([n, n, n, n + 1, max(1, n - 1)]))
        positions = draw(arrays(np.float64, (draw(st.integers(1, 20)), columns),
                                elements=VALUES))
        events.append((now, Chunk(stamp, draw(st.floats(0.005, 0.2)), positions, index)))
    return limits, config, events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_command_outside_position_or_velocity_limits(scenario):
    limits, config, events = scenario
    n, dt = limits.size, 0.002                                       # 500 Hz
    executor = ChunkExecutor(n, config)
    safety = SafetyFilter(limits, dt)
    safety.reset((limits.lower + limits.upper) / 2)
    previous, previous_step = safety.command, np.zeros(n)
    latest = None
    for tick in range(int((events[-1][0] + 0.6) / dt)):
        now = tick * dt
        while events and events[0][0] <= now:
            _, chunk = events.pop(0)
            line = executor.submit(chunk, now)
            assert line.startswith(('accepted', 'refused'))
            if chunk.num_joints != n:
                assert 'wrong joint count' in line
            if latest is not None and chunk.stamp <= latest.stamp:
                assert line.startswith('refused')
            if line.startswith('accepted'):
                latest = chunk
        target = executor.target(now)
        assert target is None or (target.shape == (n,) and np.isfinite(target).all())
        assert target is None or now <= latest.end + 1e-9       # nothing stale is replayed
        command = safety.apply(target if target is not None else safety.command)
        assert np.all(command >= limits.lower) and np.all(command <= limits.upper)
        step = command - previous
        assert np.all(np.abs(step) <= limits.max_velocity * dt + TOL)
        assert np.all(np.abs(step - previous_step) <= limits.max_acceleration * dt * dt + TOL)
        previous, previous_step = command, step


# -- behaviour ----------------------------------------------------------------------------------

def ramp(stamp, horizon=16, dt=0.1, index=0, joints=2):
    """Return a chunk whose action k is k (on every joint)."""
    positions = np.repeat(np.arange(float(horizon))[:, None], joints, axis=1)
    return Chunk(stamp, dt, positions, index)


def test_a_late_chunk_starts_at_now_not_at_its_first_action():
    executor = ChunkExecutor(2, ExecutorConfig(strategy='replace'))
    assert executor.target(0.0) is None and executor.current_index == -1
    line = executor.submit(ramp(10.0, index=7), 10.35)
    assert line == 'accepted chunk 7 (replace, 3 of 16 actions already past)'
    assert executor.dropped_actions == 3 and executor.current_index == 7
    np.testing.assert_allclose(executor.target(10.35), [3.5, 3.5])
    np.testing.assert_allclose(executor.target(10.4), [4.0, 4.0])
    np.testing.assert_allclose(executor.target(11.5), [15.0, 15.0])    # the last action,
    np.testing.assert_allclose(executor.target(11.59), [15.9, 15.9])   # its segment continued
    assert executor.target(11.61) is None                              # then hold, no replay
    assert executor.target(12.5) is None


def test_without_interpolation_each_action_holds_its_period():
    executor = ChunkExecutor(2, ExecutorConfig(interpolate=False))
    executor.submit(ramp(0.0), 0.25)
    np.testing.assert_array_equal(executor.target(0.25), [2.0, 2.0])
    np.testing.assert_array_equal(executor.target(0.39), [3.0, 3.0])


def test_non_finite_actions_are_skipped():
    chunk = ramp(0.0)
    positions = chunk.positions.copy()
    positions[5] = [math.nan, 5.0]
    positions[6, 1] = math.inf
    positions[9:] = math.nan
    executor = ChunkExecutor(2, ExecutorConfig(strategy='replace'))
    executor.submit(Chunk(0.0, 0.1, positions), 0.41)
    np.testing.assert_allclose(executor.target(0.45), [4.5, 4.5])      # across rows 5 and 6
    np.testing.assert_allclose(executor.target(0.75), [7.5, 7.5])
    assert executor.target(0.85) is None                               # nothing after row 8
    assert executor.target(0.8) is not None


def test_huge_actions_never_make_a_non_finite_target():
    executor = ChunkExecutor(1, ExecutorConfig(strategy='replace'))
    executor.submit(Chunk(0.0, 0.1, [[-1e308], [1e308]]), 0.0)
    assert executor.target(0.05)[0] == pytest.approx(0.0)
    assert executor.target(0.15) is None                 # the extrapolation overflows: hold


def test_stale_out_of_order_and_malformed_chunks_are_refused():
    executor = ChunkExecutor(2, ExecutorConfig(max_chunk_age_s=1.0))
    assert executor.submit(ramp(5.0, index=1), 5.3).startswith('accepted')
    before = executor.target(5.5)
    refusals = {
        'older than': (ramp(3.0, index=2, dt=0.5), 4.5),
        'out of order': (ramp(4.9, index=3), 5.4),
        'wrong joint count': (ramp(5.2, index=4, joints=3), 5.4),
        'in the future': (ramp(6.0, index=5), 5.4),
        'already past': (ramp(5.1, index=6, horizon=2), 5.4),
        'no finite action': (Chunk(5.3, 0.1, np.full((4, 2), math.nan), 7), 5.4),
    }
    for reason, (chunk, now) in refusals.items():
        line = executor.submit(chunk, now)
        assert line.startswith(f'refused chunk {chunk.index}: ') and reason in line, line
    assert executor.submit(ramp(5.0, index=8), 5.4).startswith('refused chunk 8: out of order')
    assert executor.refused_chunks == len(refusals) + 1
    assert executor.current_index == 1
    np.testing.assert_array_equal(executor.target(5.5), before)
    assert executor.dropped_actions == 3


def test_crossfade_blends_from_the_old_trajectory_over_crossfade_s():
    executor = ChunkExecutor(1, ExecutorConfig(strategy='crossfade', crossfade_s=0.1))
    executor.submit(Chunk(0.0, 0.05, np.zeros((40, 1))), 0.0)
    assert 'crossfade' in executor.submit(Chunk(0.9, 0.05, np.ones((40, 1))), 1.0)
    assert executor.target(1.0)[0] == pytest.approx(0.0)
    assert executor.target(1.05)[0] == pytest.approx(0.5)
    assert executor.target(1.1)[0] == pytest.approx(1.0)
    # The old chunk has ended: nothing to blend from, the new chunk runs at once.
    executor.submit(Chunk(2.95, 0.05, np.full((10, 1), 2.0)), 3.0)
    assert executor.target(3.0)[0] == pytest.approx(2.0)


def test_a_blend_finishes_when_the_old_chunk_runs_out():
    executor = ChunkExecutor(1, ExecutorConfig(strategy='crossfade', crossfade_s=0.2))
    executor.submit(Chunk(0.0, 0.05, np.zeros((10, 1))), 0.0)          # ends at 0.5
    executor.submit(Chunk(0.35, 0.05, np.ones((10, 1))), 0.4)
    assert executor.target(0.45)[0] == pytest.approx(0.5)
    values = [executor.target(t)[0] for t in np.arange(0.4, 0.6, 0.002)]
    assert np.max(np.abs(np.diff(values))) < 0.03                       # no jump at 0.5


def test_replace_switches_at_once_and_rtc_within_one_action_period():
    for strategy, settle in (('replace', 0.0), ('rtc', 0.05)):
        executor = ChunkExecutor(1, ExecutorConfig(strategy=strategy))
        assert executor.strategy == strategy
        executor.submit(Chunk(0.0, 0.05, np.zeros((40, 1))), 0.0)
        executor.submit(Chunk(0.9, 0.05, np.ones((40, 1))), 1.0)
        if settle:
            assert executor.target(1.0 + settle / 2)[0] == pytest.approx(0.5)
        assert executor.target(1.0 + settle)[0] == pytest.approx(1.0)


def test_executing_prefix_is_what_runs_during_the_next_inference():
    executor = ChunkExecutor(2, ExecutorConfig(strategy='rtc'))
    empty = executor.executing_prefix(1.0, 0.3)
    assert empty.positions.shape == (0, 2) and empty.dt == 0.0
    executor.submit(ramp(0.0), 0.22)
    stamp, dt, positions = executor.executing_prefix(0.25, 0.3)
    assert (stamp, dt) == (0.25, 0.1)
    np.testing.assert_allclose(positions[:, 0], [2.5, 3.5, 4.5, 5.5])
    for k, row in enumerate(positions):
        np.testing.assert_allclose(row, executor.target(0.25 + 0.1 * k))
    near_end = executor.executing_prefix(1.45, 0.5).positions
    np.testing.assert_allclose(near_end[:, 0], [14.5, 15.5])        # stops where the chunk does


def test_a_flood_of_chunks_stays_continuous():
    executor = ChunkExecutor(1, ExecutorConfig(strategy='crossfade', crossfade_s=0.3))
    values = []
    for tick in range(1000):
        now = tick * 0.002
        if tick % 5 == 0:              # a new chunk every 10 ms, each offset a little
            offset = 0.01 * ((tick // 5) % 3)
            executor.submit(Chunk(now - 0.05, 0.02, now - 0.05 + offset +
                                  0.02 * np.arange(20)[:, None]), now)
        values.append(executor.target(now)[0])
    assert np.max(np.abs(np.diff(values))) < 0.02


@pytest.mark.parametrize('kwargs', [
    {'stamp': math.nan}, {'dt': 0.0}, {'dt': -0.1}, {'positions': np.zeros(3)},
    {'positions': np.zeros((0, 2))}, {'positions': [[1.0], [1.0, 2.0]]}, {'stamp': 'now'}])
def test_chunks_are_validated(kwargs):
    with pytest.raises(ValueError):
        Chunk(**{**{'stamp': 0.0, 'dt': 0.1, 'positions': np.zeros((2, 2))}, **kwargs})


def test_chunk_keeps_non_finite_rows_and_its_own_copy():
    source = np.zeros((3, 2))
    source[1] = math.nan
    chunk = Chunk(1.0, 0.5, source, index=4)
    source[0] = 9.0
    assert chunk.positions[0, 0] == 0.0 and math.isnan(chunk.positions[1, 0])
    assert chunk.time_of(2) == 2.0 and chunk.horizon == 3 and chunk.num_joints == 2
    with pytest.raises(ValueError):
        chunk.positions[0, 0] = 1.0


def test_strategies_come_from_a_registry_with_a_helpful_error():
    assert set(STRATEGIES) == {'replace', 'crossfade', 'rtc'}
    assert make_strategy('rtc').name == 'rtc'
    with pytest.raises(ValueError, match='crossfade, replace, rtc'):
        ExecutorConfig(strategy='blend')
    for kwargs in ({'crossfade_s': -0.1}, {'max_chunk_age_s': 0.0}, {'interpolate': 1},
                   {'max_future_s': math.inf}):
        with pytest.raises(ValueError):
            ExecutorConfig(**kwargs)
    with pytest.raises(ValueError):
        ChunkExecutor(0, ExecutorConfig())
    executor = ChunkExecutor(2)
    assert executor.strategy == 'crossfade'
    with pytest.raises(ValueError):
        executor.target(math.nan)
