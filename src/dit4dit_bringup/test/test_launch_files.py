"""
The launch files with stand-ins for ``launch`` / ``launch_ros`` (not installable here).

What ``ros2 launch`` would start, and what it refuses to: nothing starts when an executable is
missing or the checkpoint does not fit; every node gets its stop budget as SIGTERM timeout; a
required process that exits ends the launch (non-zero unless it is the scenario's normal end).
"""

from pathlib import Path
import types

from dit4dit_bringup.graph import (
    CollectArguments, G1Arguments, LIBERO_DESCRIPTIONS, LiberoArguments, SimArguments)
from dit4dit_bringup.launch_support import (
    executable_installed, on_exit, preflight, RequiredProcessExited)
from dit4dit_common.node_spec import NodeSpec
from dit4dit_g1.description import load_description
from dit4dit_policy.testing import make_tiny_checkpoint
from dit4dit_train import recording
import pytest
import yaml

SRC = Path(__file__).resolve().parents[2]
G1_LAUNCH = SRC / 'dit4dit_bringup' / 'launch' / 'g1.launch.py'
SIM_LAUNCH = SRC / 'dit4dit_bringup' / 'launch' / 'sim.launch.py'
LIBERO_LAUNCH = SRC / 'dit4dit_bringup' / 'launch' / 'libero.launch.py'
COLLECT_LAUNCH = SRC.parent / 'launch' / 'collect_demos.launch.py'
RECORD_LAUNCH = SRC.parent / 'launch' / 'record_demos.launch.py'
G1 = load_description()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'c',
                                list(G1.profile.policy_joints)[:14], fps=15,
                                cameras=[('head', 96, 96)])


def test_g1_launch_declares_every_argument_and_starts_the_graph(launch, checkpoint):
    run = launch(G1_LAUNCH, checkpoint=checkpoint)
    assert set(run.declared) == set(G1Arguments.__dataclass_fields__)
    assert run.declared['control_mode']['choices'] == ['arm_sdk', 'lowcmd']
    assert run.declared['rviz']['default_value'] == 'false'
    assert all(kw['description'] for kw in run.declared.values())
    names = [a.kwargs['name'] for a in run.actions]
    assert names == ['policy_node', 'action_executor', 'g1_bridge']
    bridge = run.actions[2].kwargs
    assert float(bridge['sigterm_timeout']) == pytest.approx(G1.ramp_down_s + 1.0)
    assert all(callable(a.kwargs['on_exit']) for a in run.actions)      # all required


def test_g1_launch_starts_nothing_when_an_executable_is_missing(
        launch, checkpoint, tmp_path, monkeypatch):
    from dit4dit_bringup import launch_support
    real = launch_support.executable_installed
    monkeypatch.setattr(launch_support, 'executable_installed', lambda package, exe: (
        'package robot_state_publisher is not installed' if package == 'robot_state_publisher'
        else real(package, exe)))
    monkeypatch.setattr(launch_support.shutil, 'which', lambda cmd: None)
    urdf = tmp_path / 'g1.urdf'
    urdf.write_text('<robot name="g1"/>')
    with pytest.raises(RuntimeError) as info:
        launch(G1_LAUNCH, checkpoint=checkpoint, urdf=urdf, rviz='true')
    text = str(info.value)
    assert text.startswith('cannot start the launch (nothing was started)')
    assert 'robot_state_publisher: package robot_state_publisher is not installed' in text
    assert 'rviz2: not on PATH' in text


def test_g1_launch_refuses_a_checkpoint_that_does_not_fit(launch, tmp_path):
    misfit = make_tiny_checkpoint(tmp_path / 'm', ['tail_joint'])
    with pytest.raises(ValueError, match='does not let a policy command: tail_joint'):
        launch(G1_LAUNCH, checkpoint=misfit)


def test_sim_launch_ends_with_the_simulator_and_knows_lockstep(launch, checkpoint):
    run = launch(SIM_LAUNCH, checkpoint=checkpoint, episodes=3, lockstep='true')
    assert set(run.declared) == set(SimArguments.__dataclass_fields__)
    assert [a.kwargs['name'] for a in run.actions] == ['sim_bridge', 'policy_node',
                                                       'action_executor']
    sim = run.actions[0].kwargs['parameters'][0]
    assert sim['max_episodes'] == 3 and sim['lockstep'] is True
    context = types.SimpleNamespace(is_shutdown=False)
    finished = run.actions[0].kwargs['on_exit'](types.SimpleNamespace(returncode=0), context)
    assert type(finished[0]).__name__ == 'Shutdown'
    with pytest.raises(RequiredProcessExited, match='policy_node exited with code 0'):
        run.actions[1].kwargs['on_exit'](types.SimpleNamespace(returncode=0), context)


def test_a_required_process_ends_the_launch_non_zero():
    handler = on_exit('g1_bridge', finishes=False)
    running = types.SimpleNamespace(is_shutdown=False)
    with pytest.raises(RequiredProcessExited, match='required process g1_bridge exited with '
                       'code -9'):
        handler(types.SimpleNamespace(returncode=-9), running)
    stopping = types.SimpleNamespace(is_shutdown=True)     # Ctrl-C: exits are expected
    assert handler(types.SimpleNamespace(returncode=1), stopping) is None
    finishing = on_exit('sim_bridge', finishes=True)
    with pytest.raises(RequiredProcessExited, match='sim_bridge exited with code 1'):
        finishing(types.SimpleNamespace(returncode=1), running)


def test_preflight_finds_our_executables_and_names_the_missing_ones():
    assert executable_installed('dit4dit_g1', 'g1_bridge') == ''
    assert executable_installed('dit4dit_g1', 'teleport') == 'dit4dit_g1 has no executable ' \
        'teleport'
    preflight([NodeSpec('dit4dit_control', 'action_executor', 'action_executor', '')])
    with pytest.raises(RuntimeError, match='x: package nowhere_pkg is not installed'):
        preflight([NodeSpec('nowhere_pkg', 'x', 'x', '')])


def test_collect_launch_builds_the_graph_and_requires_its_recorder(launch, tmp_path):
    run = launch(COLLECT_LAUNCH, output=tmp_path / 'b', episodes=5)
    assert set(run.declared) == set(CollectArguments.__dataclass_fields__) | {'use_ros2_bag'}
    assert [a.kwargs['name'] for a in run.actions] == ['sim_bridge', 'scripted_expert',
                                                       'bag_recorder']
    sim, _, recorder = (a.kwargs for a in run.actions)
    assert sim['parameters'][0]['max_episodes'] == 5
    assert sim['parameters'][0]['split'] == 'train'
    assert float(recorder['sigterm_timeout']) == recording.CLOSE_BUDGET_S
    context = types.SimpleNamespace(is_shutdown=False)
    with pytest.raises(RequiredProcessExited, match='bag_recorder exited with code 2'):
        recorder['on_exit'](types.SimpleNamespace(returncode=2), context)
    run = launch(COLLECT_LAUNCH, output=tmp_path / 'b', every_target='true')
    assert run.actions[0].kwargs['parameters'][0]['split'] == 'train_every_target'
    with pytest.raises(ValueError, match='not true or false'):
        launch(COLLECT_LAUNCH, output=tmp_path / 'b', every_target='yes please')


def test_collect_launch_with_ros2_bag_checks_it_is_there(launch, tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match=r'use_ros2_bag:=true but ros2 is not on PATH.*'
                       r'use_ros2_bag:=false records with the bag_recorder node'):
        launch(COLLECT_LAUNCH, output=tmp_path / 'b', use_ros2_bag='true')
    monkeypatch.setattr(recording, 'ros2_bag_available', lambda storage='mcap': '')
    run = launch(COLLECT_LAUNCH, output=tmp_path / 'b', use_ros2_bag='true')
    cmd = run.actions[-1].kwargs['cmd']
    assert cmd[:3] == ['ros2', 'bag', 'record'] and '/dit4dit/action_chunk' in cmd
    assert 'bag_recorder' not in [a.kwargs.get('name') for a in run.actions]
    Path(cmd[8]).unlink()


def test_record_launch_arguments_and_refusals(launch, tmp_path, monkeypatch):
    run = launch(RECORD_LAUNCH, output=tmp_path / 'demo', use_ros2_bag='false',
                 storage='sqlite3')
    assert set(run.declared) == {'output', 'storage', 'preset', 'use_ros2_bag'}
    assert run.declared['storage']['choices'] == ['mcap', 'sqlite3']
    assert all(kw['description'] for kw in run.declared.values())
    (node,) = run.actions
    assert node.kwargs['parameters'] == [recording.recorder_parameters(
        recording.load_preset('g1'), str(tmp_path / 'demo'), 'sqlite3')]
    assert float(node.kwargs['sigterm_timeout']) == recording.CLOSE_BUDGET_S
    with pytest.raises(RequiredProcessExited, match='bag_recorder exited with code 1'):
        node.kwargs['on_exit'](types.SimpleNamespace(returncode=1),
                               types.SimpleNamespace(is_shutdown=False))
    with pytest.raises(RuntimeError, match='nothing was started. Record with the bag_recorder '
                       'node instead: use_ros2_bag:=false'):
        launch(RECORD_LAUNCH, output=tmp_path / 'demo')
    monkeypatch.setattr(recording, 'ros2_bag_available', lambda storage='mcap': '')
    (action,) = launch(RECORD_LAUNCH, output=tmp_path / 'demo', preset='sim').actions
    cmd = action.kwargs['cmd']
    preset = recording.load_preset('sim')
    assert cmd[9:] == [t.name for t in preset.enabled_topics()]
    assert yaml.safe_load(Path(cmd[8]).read_text()) == recording.qos_overrides(preset)
    Path(cmd[8]).unlink()


def test_launch_files_import_without_launch_installed():
    import importlib.util
    for path in (G1_LAUNCH, SIM_LAUNCH, LIBERO_LAUNCH, COLLECT_LAUNCH, RECORD_LAUNCH):
        spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.generate_launch_description)


def test_libero_launch_runs_the_official_states_in_lockstep(launch, tmp_path):
    from dit4dit_sim.envs.libero import COMMAND_NAMES, STATE_8D

    checkpoint = make_tiny_checkpoint(tmp_path / 'c', list(COMMAND_NAMES), fps=20,
                                      state_joints=list(STATE_8D),
                                      cameras=[('head', 64, 64), ('wrist', 64, 64)])
    run = launch(LIBERO_LAUNCH, checkpoint=checkpoint, task='libero_spatial/3', episodes=2,
                 first_index=5)
    assert set(run.declared) == set(LiberoArguments.__dataclass_fields__) == \
        set(LIBERO_DESCRIPTIONS)
    assert [a.kwargs['name'] for a in run.actions] == ['sim_bridge', 'policy_node',
                                                       'lockstep_executor']
    sim = run.actions[0].kwargs['parameters'][0]
    assert (sim['task'], sim['split'], sim['first_index'], sim['max_episodes']) == (
        'libero_spatial/3', 'held_out', 5, 2)
    assert sim['lockstep'] is True
    assert run.actions[1].kwargs['parameters'][0]['actions_per_query'] == 8
