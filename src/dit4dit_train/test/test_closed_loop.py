"""A short closed-loop episode through the ROS graph: sim_bridge -> policy -> executor -> sim."""

import json
import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import av  # noqa: E402
from dit4dit_bringup.graph import sim_graph, SimArguments  # noqa: E402
from dit4dit_bringup.sim.g1_tabletop import ARM_JOINTS  # noqa: E402
from dit4dit_policy.testing import make_tiny_checkpoint  # noqa: E402
from dit4dit_train.evaluate_closed_loop import main as cli  # noqa: E402
from dit4dit_train.nodes.closed_loop import evaluate  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.dds


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'c', list(ARM_JOINTS),
                                chunk_size=16, fps=15)


def test_one_held_out_episode_runs_closed_loop_and_is_reported(checkpoint, tmp_path):
    result = evaluate(SimArguments(checkpoint=str(checkpoint), episodes=1, render_size=64),
                      tmp_path / 'eval', videos='first', timeout_s=240)
    assert result['episodes'] == 1, result
    (row,) = result['rows']
    assert row['instruction'].startswith('reach the ') and row['initial_state'] == 0
    assert row['outcome'] in ('success', 'failure') and row['duration_s'] > 0
    saved = json.loads((tmp_path / 'eval' / 'results.json').read_text())
    assert saved['success_rate'] == result['success_rate']
    assert (tmp_path / 'eval' / 'success.png').stat().st_size > 0
    with av.open(row['video']) as video:
        frames = sum(1 for _ in video.decode(video=0))
    # The camera runs at 15 Hz of simulated time for the whole episode.
    assert frames == pytest.approx(15 * row['duration_s'], rel=0.3)


def test_sim_graph_wires_the_policy_to_the_simulator(checkpoint):
    specs = {s.name: s for s in sim_graph(SimArguments(checkpoint=str(checkpoint),
                                                       strategy='rtc'))}
    assert set(specs) == {'sim_bridge', 'policy_node', 'action_executor'}
    assert specs['action_executor'].parameters['joints'] == list(ARM_JOINTS)
    assert specs['action_executor'].parameters['episode_events'] is True
    assert specs['policy_node'].parameters['rtc_inpainting'] is True
    assert specs['policy_node'].parameters['task_topic'] == '/dit4dit/task'
    assert specs['sim_bridge'].parameters['split'] == 'held_out'
    with pytest.raises(ValueError, match='checkpoint is required'):
        SimArguments()
    with pytest.raises(SystemExit):
        cli(['--checkpoint', str(checkpoint), '--output', '/tmp/x', '--strategy', 'blend'])


def test_sim_launch_file_declares_every_argument(load_launch_file, checkpoint):
    """Import sim.launch.py with stand-ins for launch / launch_ros (not installable here)."""
    from pathlib import Path
    import types

    module = load_launch_file(Path(__file__).resolve().parents[2] / 'dit4dit_bringup' /
                              'launch' / 'sim.launch.py')
    entities = module.generate_launch_description().args[0]
    declared = {e.args[0]: e.kwargs for e in entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    assert set(declared) == set(SimArguments.__dataclass_fields__)
    config = {name: kw['default_value'] for name, kw in declared.items()}
    config.update(checkpoint=str(checkpoint), episodes='3')
    nodes = module._setup(types.SimpleNamespace(launch_configurations=config))
    assert [n.kwargs['name'] for n in nodes] == ['sim_bridge', 'policy_node', 'action_executor']
    assert nodes[0].kwargs['parameters'][0]['max_episodes'] == 3
