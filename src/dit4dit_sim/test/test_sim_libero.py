"""libero: config checks, the backend's interface, upright cameras, and the scripted oracle."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_sim.envs import make_env  # noqa: E402
from dit4dit_sim.envs.libero import (  # noqa: E402
    all_tasks, COMMAND_NAMES, CONTROL_PERIOD, EEF_NAMES, HELD_OUT_SEEDS, Libero, LiberoConfig,
    STATE_8D, WAIT_STEPS)
from dit4dit_sim.experts.libero_expert import (  # noqa: E402
    LiberoOracle, plan_for_task, run_direct)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope='module')
def env():
    env = make_env('libero', task='libero_spatial/0', render_size=(96, 128))
    yield env
    env.close()


def test_config_refuses_bad_tasks_sizes_and_periods():
    with pytest.raises(ValueError, match='libero_spatial, libero_object, libero_goal, libero_10'):
        LiberoConfig(task='libero_90/0')
    with pytest.raises(ValueError, match='0..9'):
        LiberoConfig(task='libero_spatial/10')
    with pytest.raises(ValueError, match='render_size'):
        LiberoConfig(render_size=(8, 8))
    with pytest.raises(ValueError, match='control period'):
        LiberoConfig(physics_dt=0.002)
    with pytest.raises(ValueError, match='settle_steps'):
        LiberoConfig(settle_steps=-1)
    assert LiberoConfig().physics_dt == CONTROL_PERIOD == 0.05


def test_tasks_cover_the_four_suites_with_their_time_limits():
    tasks = all_tasks()
    assert len(tasks) == 40 and all(name == t.name for name, t in tasks.items())
    limits = {t.suite: t.time_limit_s for t in tasks.values()}
    assert limits == {'libero_spatial': 11.0, 'libero_object': 14.0, 'libero_goal': 15.0,
                      'libero_10': 26.0}
    assert tasks['libero_10/0'].language.startswith('put both the alphabet soup')
    assert all(t.bddl_file.is_file() and t.init_states_file.is_file() for t in tasks.values())


def test_plan_comes_from_the_bddl_goal():
    assert plan_for_task('libero_spatial/3') == ('akita_black_bowl_1', 'plate_1')
    with pytest.raises(ValueError):
        plan_for_task('libero_goal/7')          # turn on the stove: no On/In goal


def test_interface_names_and_a_held_out_reset(env):
    assert isinstance(env, Libero) and env.name == 'libero'
    assert env.joint_names == tuple(f'panda_joint{i}' for i in range(1, 8)) + (
        'panda_finger_joint1', 'panda_finger_joint2') + EEF_NAMES
    assert env.command_names == COMMAND_NAMES and len(COMMAND_NAMES) == 7
    assert env.cameras == ('agentview', 'wrist')
    assert env.held_out_seeds == HELD_OUT_SEEDS and len(HELD_OUT_SEEDS) == 50
    env.reset(HELD_OUT_SEEDS[0])
    assert env.instruction.startswith('pick up the black bowl between the plate')
    assert env.time == 0.0 and not env.success() and env.failure() == ''
    # the objects settled for the protocol's WAIT_STEPS before the first observation
    assert env._env.env.timestep == WAIT_STEPS == 10
    assert env.joint_positions().shape == (15,) and env.joint_velocities().shape == (15,)
    # the 8-D state of LIBERO policies: eef position, axis-angle, fingers, as robosuite's obs
    state = env.joint_positions(list(STATE_8D))
    obs = env._env.env._get_observations(force_update=True)
    from robosuite.utils.transform_utils import quat2axisangle
    np.testing.assert_allclose(state[:3], obs['robot0_eef_pos'], atol=1e-9)
    np.testing.assert_allclose(state[3:6], quat2axisangle(obs['robot0_eef_quat'].copy()),
                               atol=1e-6)
    np.testing.assert_allclose(state[6:], obs['robot0_gripper_qpos'], atol=1e-9)
    fingers = env.joint_positions(['panda_finger_joint1', 'panda_finger_joint2'])
    assert fingers[0] > 0 > fingers[1]
    objects = env.objects()
    assert {'eef', 'akita_black_bowl_1', 'akita_black_bowl_2', 'plate_1', 'cookies_1',
            'glazed_rim_porcelain_ramekin_1'} <= set(objects)
    for position, rgb, size in objects.values():
        assert position.shape == (3,) and len(rgb) == 3 and size > 0
    # Held-out state 0 is LIBERO's: the bowl starts between the plate and the ramekin.
    bowl, plate = objects['akita_black_bowl_1'][0], objects['plate_1'][0]
    ramekin = objects['glazed_rim_porcelain_ramekin_1'][0]
    assert ramekin[1] - 0.03 < bowl[1] < plate[1] + 0.03 and ramekin[0] < bowl[0] < plate[0]


def test_apply_refuses_unknown_names_and_non_finite_values(env):
    env.reset(HELD_OUT_SEEDS[1])
    with pytest.raises(ValueError, match='osc_x'):
        env.apply(['left_elbow_joint'], [0.0])
    with pytest.raises(ValueError, match='non-finite'):
        env.apply(['osc_z'], [float('nan')])
    with pytest.raises(ValueError):
        env.apply(['osc_z', 'gripper'], [0.1])
    env.apply(['osc_z', 'gripper'], [5.0, 1.0])      # a subset; clipped to [-1, 1]
    assert env.action.tolist() == [0, 0, 1, 0, 0, 0, 1]


def test_step_advances_whole_control_periods_and_moves_the_arm(env):
    env.reset(HELD_OUT_SEEDS[2])
    z = env.objects()['eef'][0][2]
    env.apply(['osc_z'], [1.0])
    env.step(0.01)                       # less than a period: still one step
    assert env.time == pytest.approx(CONTROL_PERIOD)
    env.step(0.2)
    assert env.time == pytest.approx(5 * CONTROL_PERIOD)
    assert env.objects()['eef'][0][2] > z + 0.03
    assert not env.timed_out()


def test_cameras_render_upright_images(env):
    env.reset(HELD_OUT_SEEDS[0])
    wrist = env.render('wrist')
    assert wrist.shape == (96, 128, 3) and wrist.dtype == np.uint8
    image = env.render()
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
    # The agent view looks at the robot over the wooden table: upright, the table (red well above
    # blue) fills the lower half and the grey floor behind the robot the upper half.
    warm = image[..., 0].astype(float) - image[..., 2]
    assert warm[48:].mean() > warm[:48].mean() + 8
    with pytest.raises(ValueError, match='agentview, wrist'):
        env.render('head_cam')


def test_rendering_is_refused_outside_the_thread_that_built_the_scene(env):
    # The scene's GL context is current only there: elsewhere robosuite draws noise.
    import threading

    env.reset(HELD_OUT_SEEDS[0])
    errors = []

    def render():
        try:
            env.render()
        except RuntimeError as exc:
            errors.append(str(exc))
    thread = threading.Thread(target=render)
    thread.start()
    thread.join()
    assert errors and 'thread that built its scene' in errors[0]
    fresh = Libero(LiberoConfig(task='libero_spatial/1'))
    with pytest.raises(RuntimeError, match='before the first reset'):
        fresh.render()


def test_the_oracle_solves_a_held_out_episode_without_rendering(env):
    plan = plan_for_task('libero_spatial/0')
    oracle = LiberoOracle(plan)
    objects = {'akita_black_bowl_1': np.zeros(3), 'plate_1': np.array([0.0, 0.2, 0.0]),
               'cookies_1': np.array([0.0, -0.06, 0.0])}
    assert oracle.choose_side(objects) == 1.0          # away from the box beside the bowl
    entries = {n: (tuple(p), (1, 1, 1), 0.1) for n, p in objects.items()}   # tuples: positions
    assert oracle.choose_side(entries) == 1.0
    entries = {n: (p, (1, 1, 1), 0.1) for n, p in objects.items()}         # objects() entries
    entries['wooden_cabinet_1'] = (np.array([0.0, 0.2, 0.0]), (1, 1, 1), 0.4)
    assert oracle.choose_side(entries) == -1.0         # a bulky cabinet on the other side
    action = oracle.act((0.0, 0.0, 0.3), (0.02, -0.02), entries)
    assert action.shape == (7,) and action[6] == -1.0 and action[2] < 0
    steps = []
    assert run_direct('libero_spatial/0', [0], env=env,
                      on_episode=lambda i, ok, n: steps.append(n)) == [True]
    assert 50 < steps[0] < 220
