"""
The graph description: one source for g1.launch.py and run_graph, checked before anything starts.

The checkpoint's contract is checked against the G1 description; the bridge and executor get
their tables from the description; the per-node YAML and the arguments fill in the rest.
"""

import subprocess
import sys

from dit4dit_bringup.graph import (
    collect_graph, CollectArguments, config_dir, g1_graph, G1_PARAMS, G1Arguments,
    libero_graph, LiberoArguments, node_parameters, sim_graph, SIM_TASKS, SimArguments)
from dit4dit_bringup.run_graph import main as run_graph_main
from dit4dit_common.node_spec import (
    launch_arguments, launch_default, parse_name_value, ros_arguments)
from dit4dit_g1.description import description_path, load_description
from dit4dit_policy.testing import make_tiny_checkpoint
import pytest
import yaml

G1 = load_description()
POLICY_JOINTS = list(G1.profile.policy_joints)
ARMS = POLICY_JOINTS[:14]


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('ckpts')
    return {
        'full': make_tiny_checkpoint(root / 'full', POLICY_JOINTS),
        'arms': make_tiny_checkpoint(root / 'arms', ARMS, fps=15, cameras=[('head', 96, 96)]),
        # a leg is measured but not the policy's to command; a tail is nowhere
        'misfit': make_tiny_checkpoint(root / 'misfit', ARMS[:13] + ['left_knee_joint'],
                                       state_joints=ARMS[:13] + ['tail_joint']),
    }


def _graph(checkpoint, **kw):
    return {s.name: s for s in g1_graph(G1Arguments(checkpoint=str(checkpoint), **kw))}


def test_g1_graph_derives_every_node_from_the_description_and_the_contract(checkpoints):
    g = _graph(checkpoints['full'], control_mode='lowcmd', hardware='sim')
    assert list(g) == ['policy_node', 'action_executor', 'g1_bridge', 'g1_twin']
    ex, br, policy = g['action_executor'], g['g1_bridge'], g['policy_node']
    assert ex.parameters['profile'] == br.parameters['description'] == str(description_path())
    assert ex.parameters['joints'] == POLICY_JOINTS             # both arms and both Dex3 hands
    assert 'auto_enable' not in ex.parameters        # the operator enables, sim or not
    assert br.parameters['hands'] == 'both' and br.parameters['control_mode'] == 'lowcmd'
    assert br.stop_budget_s == pytest.approx(G1.ramp_down_s + 1.0)     # from the description
    assert not any(r for s in g.values() for r in s.remappings)  # topics are the registry's
    assert 'camera_topics' not in policy.parameters              # the contract's view
    assert policy.parameters['rtc_inpainting'] is False
    yaml_params = node_parameters(G1_PARAMS)
    assert ex.parameters['max_observation_age_s'] == yaml_params['action_executor'][
        'max_observation_age_s']
    real = _graph(checkpoints['full'], strategy='rtc', camera_topic='/head/color')
    assert 'g1_twin' not in real
    assert real['policy_node'].parameters['rtc_inpainting'] is True
    assert real['policy_node'].parameters['camera_topics'] == ['/head/color']


def test_hardware_sim_adds_the_twin_with_the_contracts_camera(checkpoints):
    g = _graph(checkpoints['arms'], hardware='sim', task='push')
    twin = g['g1_twin']
    assert (twin.package, twin.executable) == ('dit4dit_sim', 'sim_bridge')
    p = twin.parameters
    assert p['environment'] == 'g1_twin' and p['task'] == 'push' and p['split'] == 'held_out'
    assert (p['render_height'], p['render_width'], p['camera_fps']) == (96, 96, 15.0)
    assert p['stamp_clock'] == 'wall' and p['auto_reset'] is False     # a robot: real time
    assert node_parameters(G1_PARAMS)['g1_twin']['lowstate_rate_hz'] == 500.0
    with pytest.raises(ValueError, match='valid are reach, push'):
        G1Arguments(checkpoint='/c', task='stack')
    from dit4dit_sim.envs.g1_tabletop import TASKS
    assert SIM_TASKS == tuple(TASKS)                  # the launch argument's choices, one source


def test_an_arms_only_checkpoint_drives_the_28_joint_profile(checkpoints):
    g = _graph(checkpoints['arms'])
    assert g['action_executor'].parameters['joints'] == POLICY_JOINTS     # it holds the hands
    assert g['g1_bridge'].parameters['hands'] == 'both'


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_joints(checkpoints, capsys):
    with pytest.raises(ValueError) as info:
        _graph(checkpoints['misfit'])
    text = str(info.value)
    assert 'does not fit the G1 (unitree_g1_29dof_dex3)' in text
    assert 'state joints the G1 (unitree_g1_29dof_dex3) does not measure: tail_joint' in text
    assert 'does not let a policy command: left_knee_joint' in text
    assert run_graph_main([f'checkpoint:={checkpoints["misfit"]}', '--print']) == 2
    assert 'tail_joint' in capsys.readouterr().err


def test_run_graph_exits_at_start_up_on_a_misfit_checkpoint_as_a_process(checkpoints):
    """The same through the command line: nothing starts, exit 2, the joints named."""
    res = subprocess.run([sys.executable, '-m', 'dit4dit_bringup.run_graph',
                          f'checkpoint:={checkpoints["misfit"]}'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert 'left_knee_joint' in res.stderr and 'Traceback' not in res.stderr


def test_profiles_whose_hands_are_not_the_policys_leave_the_bridge_handless(
        checkpoints, tmp_path):
    data = yaml.safe_load(description_path().read_text())
    data['policy_joints'] = ARMS
    path = tmp_path / 'arms_only.yaml'
    path.write_text(yaml.safe_dump(data))
    g = _graph(checkpoints['arms'], description=str(path))
    assert g['g1_bridge'].parameters['hands'] == 'none'
    with pytest.raises(ValueError, match='does not let a policy command: left_hand'):
        _graph(checkpoints['full'], description=str(path))


@pytest.mark.parametrize('kw, message', [
    ({'control_mode': 'position'}, 'valid are arm_sdk, lowcmd'),
    ({'hardware': 'gazebo'}, 'valid are real, sim'),
    ({'strategy': 'blend'}, 'valid are replace, crossfade, rtc'),
])
def test_invalid_arguments_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        G1Arguments(checkpoint='/c', **kw)
    with pytest.raises(ValueError, match='checkpoint is required'):
        G1Arguments()


def test_run_graph_parses_launch_style_arguments(checkpoints, capsys):
    args = parse_name_value(['checkpoint:=/c', 'control_rate_hz:=500', 'rviz:=true'],
                            G1Arguments)
    assert args.control_rate_hz == 500 and args.rviz is True
    with pytest.raises(ValueError, match='use name:=value'):
        parse_name_value(['speed:=3'], G1Arguments)
    assert run_graph_main([f'checkpoint:={checkpoints["full"]}', '--print']) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert [n['name'] for n in printed] == ['policy_node', 'action_executor', 'g1_bridge']
    assert printed[2]['stop_budget_s'] == pytest.approx(4.0)
    spec = _graph(checkpoints['full'])['action_executor']
    assert ros_arguments(spec, 'p.yaml')[-2:] == ['--params-file', 'p.yaml']


def test_launch_argument_text_is_converted_by_field_type():
    values = launch_arguments(G1Arguments, {f: launch_default(v) for f, v in
                                            G1Arguments(checkpoint='/c').__dict__.items()})
    assert values['rviz'] is False and values['control_rate_hz'] == 250.0
    bad = {f: launch_default(v) for f, v in G1Arguments(checkpoint='/c').__dict__.items()}
    bad['rviz'] = 'yes'
    with pytest.raises(ValueError, match="rviz: 'yes' is not true or false"):
        launch_arguments(G1Arguments, bad)


def test_urdf_adds_the_measured_robot_and_the_commanded_ghost(checkpoints, tmp_path):
    urdf = tmp_path / 'g1.urdf'
    urdf.write_text('<robot name="g1"><link name="pelvis"/></robot>')
    g = _graph(checkpoints['full'], urdf=str(urdf))
    assert g['robot_state_publisher'].parameters['robot_description'].startswith('<robot')
    assert g['robot_state_publisher'].node_class == ''          # C++: launch / ros2 run only
    ghost = g['robot_state_publisher_commanded']
    assert ghost.namespace == 'commanded' and ghost.parameters['frame_prefix'] == 'commanded/'
    assert ros_arguments(ghost)[3:5] == ['-r', '__ns:=/commanded']
    assert dict(ghost.remappings)['joint_states'] == '/commanded/joint_states'
    assert g['command_ghost'].parameters['rate_hz'] == 30.0      # from g1_params.yaml
    with pytest.raises(ValueError, match='is not a file'):
        _graph(checkpoints['full'], urdf=str(tmp_path / 'missing.urdf'))
    assert run_graph_main([f'checkpoint:={checkpoints["full"]}', f'urdf:={urdf}']) == 2


def test_ghost_merges_commanded_joints_into_the_measured_state():
    from dit4dit_control.nodes.command_ghost import merge
    from sensor_msgs.msg import JointState
    measured = JointState(name=['a', 'b', 'c'], position=[1.0, 2.0, 3.0])
    out = merge(measured, JointState(name=['c', 'a'], position=[30.0, 10.0]))
    assert list(out.name) == ['a', 'b', 'c'] and list(out.position) == [10.0, 2.0, 30.0]


def test_strategy_choices_match_the_executor_registry():
    from dit4dit_bringup.graph import STRATEGIES
    from dit4dit_control.chunk_executor import STRATEGIES as REGISTRY
    assert set(STRATEGIES) == set(REGISTRY)


def test_sim_graph_takes_size_and_rate_from_the_contract(checkpoints):
    specs = {s.name: s for s in sim_graph(SimArguments(checkpoint=str(checkpoints['arms']),
                                                       strategy='rtc', lockstep=True))}
    assert set(specs) == {'sim_bridge', 'policy_node', 'action_executor'}
    sim = specs['sim_bridge'].parameters
    assert (sim['render_height'], sim['render_width'], sim['camera_fps']) == (96, 96, 15.0)
    assert sim['lockstep'] is True and sim['split'] == 'held_out'
    assert specs['action_executor'].parameters['joints'] == ARMS
    assert specs['action_executor'].parameters['episode_events'] is True   # sim_params.yaml
    assert specs['policy_node'].parameters['follow_task'] is True
    assert specs['policy_node'].parameters['rtc_inpainting'] is True
    with pytest.raises(ValueError, match='does not fit the simulated G1'):
        sim_graph(SimArguments(checkpoint=str(checkpoints['misfit'])))
    with pytest.raises(ValueError, match='checkpoint is required'):
        SimArguments()


def test_collect_graph_records_the_sim_preset_on_sim_time():
    specs = {s.name: s for s in collect_graph(CollectArguments(output='/tmp/x', episodes=3))}
    assert set(specs) == {'sim_bridge', 'scripted_expert', 'bag_recorder'}
    assert specs['sim_bridge'].parameters['split'] == 'train'
    assert specs['scripted_expert'].parameters['use_sim_time'] is True
    assert specs['bag_recorder'].parameters['preset'] == 'sim'
    assert specs['bag_recorder'].stop_budget_s == 30.0
    with pytest.raises(ValueError, match='output is required'):
        CollectArguments()
    every = collect_graph(CollectArguments(output='/tmp/x', episodes=3, every_target=True))
    assert every[0].parameters['split'] == 'train_every_target'


def test_libero_collect_graph_runs_the_libero_expert_in_lockstep_with_both_cameras():
    args = CollectArguments(output='/tmp/x', episodes=3, environment='libero',
                            task='libero_spatial/2', render_size=128)
    specs = {s.name: s for s in collect_graph(args)}
    assert set(specs) == {'sim_bridge', 'libero_expert', 'bag_recorder'}
    bridge = specs['sim_bridge'].parameters
    assert (bridge['environment'], bridge['task'], bridge['split']) == (
        'libero', 'libero_spatial/2', 'train')        # official initial states stay held out
    assert bridge['lockstep'] is True and bridge['camera_fps'] == 20.0
    assert specs['bag_recorder'].parameters['preset'] == 'libero'
    for bad, message in (({'task': 'libero_goal/1'}, 'solves libero_spatial tasks'),
                         ({'task': 'reach'}, 'unknown LIBERO suite'),
                         ({'every_target': True}, 'LIBERO has no targets'),
                         ({'environment': 'robocasa'}, 'valid are g1_tabletop, libero')):
        with pytest.raises(ValueError, match=message):
            CollectArguments(**{'output': '/tmp/x', 'environment': 'libero',
                                'task': 'libero_spatial/0', **bad})
    with pytest.raises(ValueError, match='valid g1_tabletop tasks are reach, push'):
        CollectArguments(output='/tmp/x', task='libero_spatial/0')


def _libero_checkpoint(path, **kw):
    from dit4dit_sim.envs.libero import COMMAND_NAMES, STATE_8D

    args = {'joints': list(COMMAND_NAMES), 'fps': 20, 'state_joints': list(STATE_8D),
            'cameras': [('head', 64, 64), ('wrist', 64, 64)], **kw}
    return make_tiny_checkpoint(path, **args)


def test_libero_graph_runs_official_states_in_lockstep_with_the_contracts_views(tmp_path):
    checkpoint = _libero_checkpoint(tmp_path / 'c')
    specs = {s.name: s for s in libero_graph(LiberoArguments(
        checkpoint=str(checkpoint), task='libero_spatial/2', episodes=3, first_index=4))}
    bridge = specs['sim_bridge'].parameters
    assert (bridge['environment'], bridge['split'], bridge['first_index'],
            bridge['max_episodes']) == ('libero', 'held_out', 4, 3)
    assert bridge['lockstep'] is True and bridge['lockstep_period_s'] == 0.05
    assert bridge['camera_fps'] == 20.0 and bridge['render_height'] == 64
    assert bridge['success_hold_s'] == 0.0         # LIBERO ends on the first step of success
    policy = specs['policy_node'].parameters
    assert policy['actions_per_query'] == 8 and policy['follow_task'] is True
    executor = specs['lockstep_executor'].parameters
    assert executor['joints'][0] == 'osc_x' and (executor['lower'], executor['upper']) == (-1, 1)


@pytest.mark.parametrize('kw, message', [
    ({'joints': ARMS}, 'does not let a policy command: left_shoulder_pitch_joint'),
    ({'state_joints': ['robot0_joint1']}, 'does not measure: robot0_joint1'),
    ({'fps': 15}, 'LIBERO steps at 20 Hz'),
    ({'cameras': [('head', 64, 64), ('wrist', 96, 96)]}, 'different sizes'),
    ({'cameras': [('side', 64, 64)]}, "camera view 'side' has no registry topic"),
    ({'chunk_size': 4}, 'exceeds the checkpoint'),
])
def test_libero_graph_refuses_checkpoints_that_do_not_fit_naming_why(tmp_path, kw, message):
    checkpoint = _libero_checkpoint(tmp_path / 'c', **kw)
    with pytest.raises(ValueError, match=message):
        libero_graph(LiberoArguments(checkpoint=str(checkpoint)))


@pytest.mark.parametrize('kw, message', [
    ({'task': 'libero_90/1'}, 'unknown LIBERO suite'),
    ({'first_index': 45, 'episodes': 10}, 'LIBERO has 50 official ones'),
    ({'actions_per_query': 0}, 'actions_per_query must be >= 1'),
    ({'checkpoint': ''}, 'checkpoint is required'),
])
def test_libero_arguments_are_validated(kw, message):
    with pytest.raises(ValueError, match=message):
        LiberoArguments(**{'checkpoint': '/c', **kw})


def test_config_files_are_installed_with_the_package():
    assert (config_dir() / 'dit4dit.rviz').is_file()
    assert set(node_parameters(G1_PARAMS)) == {'policy_node', 'action_executor', 'g1_bridge',
                                               'command_ghost', 'g1_twin'}
