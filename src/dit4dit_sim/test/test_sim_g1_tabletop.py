"""g1_tabletop: the scene, reproducible episodes, safe actuation, and the scripted experts."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_sim.envs import Environment  # noqa: E402
from dit4dit_sim.envs.g1_tabletop import (  # noqa: E402
    ARM_JOINTS, COLOURS, G1Tabletop, HELD_OUT_SEEDS, InitialState, SLOTS_Y, TabletopConfig,
    task)
from dit4dit_sim.experts.g1_tabletop_expert import TabletopExpert  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope='module')
def env():
    env = G1Tabletop(TabletopConfig(render_size=(96, 128)))
    yield env
    env.close()


def test_scene_is_an_environment_with_the_g1_joints(env):
    # The names are compared with the G1 description in dit4dit_system_tests.
    assert isinstance(env, Environment) and env.cameras == ('head',)
    assert len(env.joint_names) == 43                         # 29 body + 2 x 7 Dex3
    assert set(ARM_JOINTS) <= set(env.joint_names)
    assert env.model.vis.quality.shadowsize == 0 and env.model.vis.quality.offsamples == 0
    assert env.model.nu == 43
    with pytest.raises(ValueError, match='g1_tabletop has head'):
        env.render('wrist')


def test_head_camera_sees_the_table_and_the_cubes(env):
    env.reset(HELD_OUT_SEEDS[0])
    image = env.render()
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8
    for rgb in COLOURS.values():     # each cube colour is visible (a dominant-channel pixel)
        channel = int(np.argmax(rgb))
        others = [c for c in range(3) if c != channel]
        mask = (image[..., channel] > 120) & np.all(image[..., others] < 90, axis=-1)
        assert mask.sum() > 3


def test_initial_states_are_reproducible_and_held_out_states_are_set_apart():
    a, b = InitialState.sample(7), InitialState.sample(7)
    assert a == b and InitialState.sample(8) != a
    assert min(HELD_OUT_SEEDS) >= 1_000_000 and len(set(HELD_OUT_SEEDS)) == 20
    ys = sorted(y for _, y in a.cubes.values())
    assert all(abs(y - slot) <= 0.025 + 1e-9 for y, slot in zip(ys, SLOTS_Y))
    targets = {InitialState.sample(s).target for s in range(30)}
    assert targets == set(COLOURS)


def test_reset_places_the_cubes_and_sets_the_instruction(env):
    state = env.reset(HELD_OUT_SEEDS[3])
    assert env.instruction == f'reach the {state.target} cube' and env.time == 0.0
    for colour, (x, y) in state.cubes.items():
        assert env.cube_position(colour)[:2] == pytest.approx((x, y), abs=1e-9)
    env.step(0.5)
    assert not env.success()                  # nothing happens on its own
    for colour, (x, y) in state.cubes.items():
        assert env.cube_position(colour)[:2] == pytest.approx((x, y), abs=2e-3)


def test_reset_can_name_each_cube_of_the_same_scene(env):
    drawn = env.reset(7)
    for colour in env.targets:
        state = env.reset(7, colour)
        assert state.target == colour and env.instruction == f'reach the {colour} cube'
        assert state.cubes == drawn.cubes                 # same scene, another cube named
    assert env.reset(7).target == drawn.target            # the seed's own draw is unchanged
    with pytest.raises(ValueError, match='valid: red, green, blue'):
        env.reset(7, 'purple')


def test_apply_clips_to_joint_ranges_and_refuses_bad_targets(env):
    env.reset(0)
    env.apply(['left_elbow_joint'], [50.0])
    assert env.data.ctrl[env.model.actuator('left_elbow_joint').id] == pytest.approx(2.0944)
    with pytest.raises(ValueError, match='non-finite'):
        env.apply(['left_elbow_joint'], [float('nan')])
    with pytest.raises(ValueError, match='unknown joints'):
        env.apply(['tail_joint'], [0.0])
    with pytest.raises(ValueError, match='1 positions for 2 joints'):
        env.apply(['left_elbow_joint', 'right_elbow_joint'], [0.0])


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ValueError, match='valid: reach, push'):
        task('stack')
    with pytest.raises(ValueError, match='render_size'):
        TabletopConfig(render_size=(4, 4))


def _run_expert(name, seeds):
    env = G1Tabletop(TabletopConfig(task=name))
    expert = TabletopExpert(env)
    wins, speeds = 0, []
    for seed in seeds:
        env.reset(seed)
        expert.reset()
        previous = expert.target.copy()
        while not env.timed_out() and not env.success():
            target = expert.act(1 / 30)
            speeds.append(np.abs(target - previous).max() * 30)
            previous = target
            env.apply(expert.joints, target)
            env.step(1 / 30)
        wins += env.success()
    env.close()
    return wins, max(speeds)


def test_reach_expert_solves_held_out_episodes_within_the_speed_cap():
    wins, speed = _run_expert('reach', HELD_OUT_SEEDS[:6])
    assert wins == 6 and speed <= 0.5 + 1e-9


def test_push_expert_solves_most_held_out_episodes():
    wins, _ = _run_expert('push', HELD_OUT_SEEDS[:6])
    assert wins >= 4


def test_environment_registry_names_the_valid_backends():
    from dit4dit_sim.envs import make_env
    with pytest.raises(ValueError, match='valid: g1_tabletop'):
        make_env('gazebo')
    env = make_env('g1_tabletop', task='push', render_size=(32, 32))
    assert env.task.name == 'push'
    env.close()
