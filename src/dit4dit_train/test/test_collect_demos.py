"""Scripted demonstrations through ROS: sim_bridge + scripted_expert + bag_recorder -> dataset."""

import json
import os

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_bringup.graph import collect_graph, CollectArguments  # noqa: E402
from dit4dit_bringup.nodes.scripted_expert import parse_event  # noqa: E402
from dit4dit_msgs.msg import EpisodeEvent  # noqa: E402
from dit4dit_train.nodes.collect import collect  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.dds


def test_collected_bag_converts_to_a_dataset_of_successful_episodes(tmp_path):
    from dit4dit_train.convert import main as convert_main
    from dit4dit_train.dataset import LeRobotDataset

    bag = tmp_path / 'bags' / 'reach'
    bag.parent.mkdir()
    result = collect(CollectArguments(output=str(bag), episodes=2, render_size=64),
                     timeout_s=120)
    assert result['episodes'] == 2 and result['successes'] == 2, result
    assert not result['error'] and (bag / 'metadata.yaml').is_file()
    out = tmp_path / 'dataset'
    assert convert_main([str(bag), '--map', 'g1_tabletop', '--output', str(out)]) == 0
    info = json.loads((out / 'meta' / 'info.json').read_text())
    assert info['total_episodes'] == 2 and info['fps'] == 15
    data = LeRobotDataset(out, chunk_size=4)
    sample = data[0]
    actions = sample['actions'].numpy()
    assert actions.shape == (4, 14) and np.all(np.isfinite(actions))
    assert sample['instruction'].startswith('reach the ')
    assert tuple(sample['images'].shape[-3:]) == (64, 64, 3)
    reports = sorted((out / 'meta' / 'dit4dit_sync').glob('*.json'))
    outcomes = [json.loads(p.read_text())['outcome'] for p in reports]
    assert outcomes == ['success', 'success']
    assert all(json.loads(p.read_text())['instruction'].startswith('reach the ') for p in reports)


def test_collect_graph_uses_the_suite_topics_and_sim_time():
    specs = {s.name: s for s in collect_graph(CollectArguments(output='/tmp/x', episodes=3))}
    assert set(specs) == {'sim_bridge', 'scripted_expert', 'bag_recorder'}
    assert dict(specs['sim_bridge'].remappings)['joint_command'] == '/dit4dit/joint_command'
    assert specs['sim_bridge'].parameters['split'] == 'train'
    assert specs['scripted_expert'].parameters['use_sim_time'] is True
    assert specs['bag_recorder'].parameters['preset'] == 'sim'
    with pytest.raises(ValueError, match='output is required'):
        CollectArguments()
    every = collect_graph(CollectArguments(output='/tmp/x', episodes=3, every_target=True))
    assert every[0].parameters['split'] == 'train_every_target'


def test_expert_reads_the_task_and_cube_from_the_start_event():
    event = EpisodeEvent(task='g1_tabletop/push', instruction='push the green cube')
    assert parse_event(event) == ('push', 'green')
    with pytest.raises(ValueError, match='not a g1_tabletop task'):
        parse_event(EpisodeEvent(task='libero/x', instruction='push the green cube'))
    with pytest.raises(ValueError, match='no single cube colour'):
        parse_event(EpisodeEvent(task='g1_tabletop/reach', instruction='reach the cube'))


def test_launch_file_builds_the_collect_graph(load_launch_file, tmp_path):
    """Import collect_demos.launch.py with stand-ins for launch / launch_ros (not here)."""
    from pathlib import Path
    import types

    module = load_launch_file(Path(__file__).resolve().parents[3] / 'launch' /
                              'collect_demos.launch.py')
    entities = module.generate_launch_description().args[0]
    declared = {e.args[0]: e.kwargs for e in entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    assert set(declared) == set(CollectArguments.__dataclass_fields__) | {'use_ros2_bag'}
    config = {name: kw['default_value'] for name, kw in declared.items()}
    config.update(output=str(tmp_path / 'b'), episodes='5')
    actions = module._setup(types.SimpleNamespace(launch_configurations=config))
    assert [a.kwargs['name'] for a in actions] == ['sim_bridge', 'scripted_expert',
                                                   'bag_recorder']
    assert actions[0].kwargs['parameters'][0]['max_episodes'] == 5
    assert actions[0].kwargs['parameters'][0]['split'] == 'train'     # every_target default false
    assert type(actions[0].kwargs['on_exit']).__name__ == 'Shutdown'
    config['every_target'] = 'true'
    actions = module._setup(types.SimpleNamespace(launch_configurations=config))
    assert actions[0].kwargs['parameters'][0]['split'] == 'train_every_target'
    config['every_target'] = 'yes please'
    with pytest.raises(ValueError, match='not true or false'):
        module._setup(types.SimpleNamespace(launch_configurations=config))
    config['every_target'] = 'false'
    config['use_ros2_bag'] = 'true'
    actions = module._setup(types.SimpleNamespace(launch_configurations=config))
    assert actions[-1].kwargs['cmd'][:3] == ['ros2', 'bag', 'record']
