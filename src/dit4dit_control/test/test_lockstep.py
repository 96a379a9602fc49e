"""LockstepExecutor: one action per observation, open loop, nothing when none is due."""

from dit4dit_control.lockstep import LockstepExecutor
import numpy as np
import pytest

JOINTS = ['osc_x', 'osc_y', 'gripper']
DT = 0.05


def _chunk(h=4, start=0.0):
    return np.array([[start + k, -start - k, 1.0] for k in range(h)]) * 0.1


def test_each_observation_gets_the_action_due_and_the_used_up_chunk_waits():
    ex = LockstepExecutor(JOINTS, -1.0, 1.0)
    assert ex.on_observation(1.0) is None                 # no chunk yet: the simulation waits
    command = ex.on_chunk(JOINTS, _chunk(), stamp=1.0, dt=DT)
    np.testing.assert_allclose(command, [0.0, 0.0, 0.1])  # the waiting observation is answered
    assert ex.on_observation(1.0) is None                 # ... once
    for k in range(1, 4):
        np.testing.assert_allclose(ex.on_observation(1.0 + k * DT), _chunk()[k])
    assert ex.on_observation(1.0 + 4 * DT) is None        # used up: wait for the next chunk
    assert ex.executed == 4
    # the next chunk, computed from that observation, answers it with its first action
    np.testing.assert_allclose(ex.on_chunk(JOINTS, _chunk(start=5), 1.0 + 4 * DT, DT),
                               _chunk(start=5)[0])


def test_columns_are_reordered_by_name_and_values_clipped():
    ex = LockstepExecutor(JOINTS, -1.0, 1.0)
    ex.on_observation(0.0)
    command = ex.on_chunk(['gripper', 'osc_y', 'osc_x'], [[3.0, -0.5, 0.25]], 0.0, DT)
    np.testing.assert_allclose(command, [0.25, -0.5, 1.0])
    assert ex.clipped == 1


@pytest.mark.parametrize('names, rows, stamp, why', [
    (JOINTS[:2], [[0.0, 0.0]], 1.0, 'needs exactly'),
    (JOINTS, [[0.0, np.nan, 0.0]], 1.0, 'NaN'),
    (JOINTS, [[0.0, 0.0]], 1.0, 'do not fit'),
    (JOINTS, [[0.0, 0.0, 0.0]], 0.5, 'before the episode'),
    (JOINTS, [[0.0, 0.0, 0.0]], 2.0, 'not after the current chunk'),
])
def test_bad_chunks_are_refused_with_the_reason_and_the_current_one_kept(
        names, rows, stamp, why):
    ex = LockstepExecutor(JOINTS)
    ex.episode_started(1.0)
    ex.on_chunk(JOINTS, _chunk(), 2.0, DT)
    assert ex.on_chunk(names, rows, stamp, DT) is None
    assert why in ex.last_refusal and ex.refused == 1
    np.testing.assert_allclose(ex.on_observation(2.0 + DT), _chunk()[1])


def test_an_episode_start_forgets_the_chunk_and_an_old_observation_is_not_answered():
    ex = LockstepExecutor(JOINTS)
    ex.on_chunk(JOINTS, _chunk(), 1.0, DT)
    ex.on_observation(1.0)
    assert ex.on_observation(0.95) is None                # older than the newest: never
    ex.episode_started(1.5)
    assert ex.on_observation(1.5) is None                 # the old chunk does not carry over
    ex.episode_ended()
    assert ex.chunk is None


def test_observations_between_actions_are_not_answered():
    ex = LockstepExecutor(JOINTS)
    ex.on_chunk(JOINTS, _chunk(), 1.0, DT)
    assert ex.on_observation(1.0 + DT / 2) is None


def test_invalid_construction():
    with pytest.raises(ValueError, match='unique'):
        LockstepExecutor(['a', 'a'])
    with pytest.raises(ValueError, match='below'):
        LockstepExecutor(['a'], 1.0, -1.0)


def test_an_observation_that_overtook_its_episode_start_is_still_answered():
    ex = LockstepExecutor(JOINTS)
    ex.on_chunk(JOINTS, _chunk(), 1.0, DT)
    assert ex.on_observation(2.0) is None                 # the new episode's first state ...
    ex.episode_started(2.0)                               # ... before its START event
    np.testing.assert_allclose(ex.on_chunk(JOINTS, _chunk(), 2.0, DT), _chunk()[0])
