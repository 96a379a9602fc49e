"""One graph description drives g1.launch.py and run_graph; arguments are declared and checked."""

import importlib.util
from pathlib import Path
import sys
import types

from dit4dit_bringup.graph import g1_graph, G1Arguments
from dit4dit_bringup.run_graph import main as run_graph_main, parse_arguments, ros_arguments
import pytest
import yaml

PKG = Path(__file__).resolve().parents[1]
PROFILE = str(PKG / 'config' / 'g1_29dof_dex3.yaml')


def _graph(**kw):
    return {s.name: s for s in g1_graph(G1Arguments(checkpoint='/ckpt', profile=PROFILE, **kw))}


def test_graph_wires_policy_executor_and_bridge():
    g = _graph(control_mode='lowcmd', hardware='sim')
    assert list(g) == ['policy_node', 'action_executor', 'g1_bridge']
    ex, br = g['action_executor'], g['g1_bridge']
    assert ('action_chunk', '/policy_node/action_chunk') in ex.remappings
    assert dict(ex.remappings)['joint_command'] == dict(br.remappings)['joint_command']
    assert ex.parameters['auto_enable'] is True            # sim only
    assert len(ex.parameters['joints']) == 28                # both arms and both Dex3 hands
    assert br.parameters['hands'] == 'both'
    assert br.parameters['control_mode'] == 'lowcmd'
    assert br.parameters['motor_indices'] == list(range(29))
    assert br.parameters['joint_names'][15] == 'left_shoulder_pitch_joint'
    assert max(br.parameters['upper']) < 3.0 and br.parameters['max_velocity'] <= 1.0
    assert _graph()['action_executor'].parameters['auto_enable'] is False   # real robot
    assert g['policy_node'].parameters['rtc_inpainting'] is False
    assert _graph(strategy='rtc')['policy_node'].parameters['rtc_inpainting'] is True


def test_profile_hand_joints_must_match_the_dex3_wire(tmp_path):
    profile = yaml.safe_load(Path(PROFILE).read_text())
    for joint in profile['joints']:       # swap two left-hand wire indices
        if joint['name'] in ('left_hand_thumb_0_joint', 'left_hand_thumb_1_joint'):
            joint['motor'] = 1 - joint['motor']
    path = tmp_path / 'swapped.yaml'
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ValueError, match='left Dex3 joints must be'):
        g1_graph(G1Arguments(checkpoint='/c', profile=str(path)))
    arms_only = yaml.safe_load(Path(PROFILE).read_text())
    arms_only['policy_joints'] = arms_only['policy_joints'][:14]
    path.write_text(yaml.safe_dump(arms_only))
    g = {s.name: s for s in g1_graph(G1Arguments(checkpoint='/c', profile=str(path)))}
    assert g['g1_bridge'].parameters['hands'] == 'none'


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


def test_run_graph_parses_launch_style_arguments(capsys):
    args = parse_arguments(['checkpoint:=/c', 'control_rate_hz:=500', 'rviz:=true'])
    assert args.control_rate_hz == 500 and args.rviz is True
    with pytest.raises(ValueError, match='use name:=value'):
        parse_arguments(['speed:=3'])
    assert run_graph_main(['checkpoint:=/c', f'profile:={PROFILE}', '--print']) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert [n['name'] for n in printed] == ['policy_node', 'action_executor', 'g1_bridge']
    spec = _graph()['action_executor']
    assert ros_arguments(spec, 'p.yaml')[-2:] == ['--params-file', 'p.yaml']


def test_launch_file_declares_every_argument(monkeypatch):
    """Import g1.launch.py with a stand-in `launch` package (not installable here)."""
    declared = {}

    class Declare:
        def __init__(self, name, default_value=None, description='', choices=None):
            declared[name] = (default_value, description, choices)

    class Description:
        def __init__(self, entities):
            self.entities = entities

    launch = types.ModuleType('launch')
    launch.LaunchDescription = Description
    actions = types.ModuleType('launch.actions')
    actions.DeclareLaunchArgument = Declare
    actions.OpaqueFunction = lambda function: ('opaque', function)
    monkeypatch.setitem(sys.modules, 'launch', launch)
    monkeypatch.setitem(sys.modules, 'launch.actions', actions)
    spec = importlib.util.spec_from_file_location('g1_launch', PKG / 'launch' / 'g1.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    fields = set(G1Arguments.__dataclass_fields__)
    assert set(declared) == fields
    assert declared['control_mode'][2] == ['arm_sdk', 'lowcmd']
    assert declared['hardware'][2] == ['real', 'sim']
    assert declared['strategy'][2] == ['replace', 'crossfade', 'rtc']
    assert declared['rviz'][0] == 'false' and all(d[1] for d in declared.values())
    assert description.entities[-1][0] == 'opaque'


def test_strategy_choices_match_the_executor_registry():
    from dit4dit_bringup.graph import STRATEGIES
    from dit4dit_policy.runtime.chunk_executor import STRATEGIES as REGISTRY
    assert set(STRATEGIES) == set(REGISTRY)


def test_urdf_adds_the_measured_robot_and_the_commanded_ghost(tmp_path):
    urdf = tmp_path / 'g1.urdf'
    urdf.write_text('<robot name="g1"><link name="pelvis"/></robot>')
    g = _graph(urdf=str(urdf))
    assert g['robot_state_publisher'].parameters['robot_description'].startswith('<robot')
    assert g['robot_state_publisher'].node_class == ''          # C++: launch / ros2 run only
    ghost = g['robot_state_publisher_commanded']
    assert ghost.namespace == 'commanded' and ghost.parameters['frame_prefix'] == 'commanded/'
    assert ros_arguments(ghost)[3:5] == ['-r', '__ns:=/commanded']
    assert dict(g['command_ghost'].remappings)['commanded_joint_states'] == \
        '/commanded/joint_states'
    with pytest.raises(ValueError, match='is not a file'):
        _graph(urdf=str(tmp_path / 'missing.urdf'))


def test_ghost_merges_commanded_joints_into_the_measured_state():
    from dit4dit_bringup.nodes.command_ghost import merge
    from sensor_msgs.msg import JointState
    measured = JointState(name=['a', 'b', 'c'], position=[1.0, 2.0, 3.0])
    out = merge(measured, JointState(name=['c', 'a'], position=[30.0, 10.0]))
    assert list(out.name) == ['a', 'b', 'c'] and list(out.position) == [10.0, 2.0, 30.0]
