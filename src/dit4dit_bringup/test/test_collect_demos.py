"""Scripted demonstrations through ROS: sim_bridge + scripted_expert + bag_recorder -> dataset."""

import json
import os
import time

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_bringup.collect_demos import collect, main  # noqa: E402
from dit4dit_bringup.graph import CollectArguments  # noqa: E402
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


def test_libero_demonstrations_through_ros_convert_with_the_libero_map(tmp_path):
    # The LIBERO expert through sim_bridge (lockstep, both cameras, 20 Hz) recorded by the
    # bag recorder: one training episode (a fresh placement, not an official state) becomes a
    # dataset with two views, LIBERO's 8-D state and the 7-D action.
    from dit4dit_train.convert import main as convert_main
    from dit4dit_train.dataset import LeRobotDataset

    bag = tmp_path / 'libero'
    result = collect(CollectArguments(output=str(bag), episodes=1, render_size=64,
                                      environment='libero', task='libero_spatial/0'),
                     timeout_s=400)
    assert result['episodes'] == 1 and result['successes'] == 1, result
    assert not result['error']
    out = tmp_path / 'dataset'
    assert convert_main([str(bag), '--map', 'libero', '--output', str(out)]) == 0
    info = json.loads((out / 'meta' / 'info.json').read_text())
    assert info['total_episodes'] == 1 and info['fps'] == 20
    features = info['features']
    assert features['observation.state']['shape'] == [8]
    assert features['observation.state']['names'][:3] == ['eef_x', 'eef_y', 'eef_z']
    assert features['action']['shape'] == [7] and features['action']['names'][-1] == 'gripper'
    assert {'observation.images.head', 'observation.images.wrist'} <= set(features)
    data = LeRobotDataset(out, chunk_size=8)
    sample = data[0]
    assert tuple(sample['images'].shape[-4:]) == (2, 64, 64, 3)       # two views
    assert sample['instruction'].startswith('pick up the black bowl')
    actions = sample['actions'].numpy()
    assert actions.shape == (8, 7) and np.all(np.abs(actions) <= 1.0)
    sync = json.loads(next((out / 'meta' / 'dit4dit_sync').glob('*.json')).read_text())
    assert sync['outcome'] == 'success'
    # lockstep at the control rate: nearly every 20 Hz tick has its frame
    kept, dropped = sync['frames_kept'], sync['frames_dropped']
    assert kept >= 60 and dropped <= 0.1 * (kept + dropped), sync


def test_collection_without_a_working_recorder_does_not_start(tmp_path, capsys):
    existing = tmp_path / 'existing'
    existing.mkdir()
    started = time.monotonic()
    assert main([f'output:={existing}', 'episodes:=2']) == 2
    err = capsys.readouterr().err
    assert 'cannot start bag_recorder' in err and 'already exists' in err
    assert time.monotonic() - started < 30          # no simulated episode ran
    assert list(existing.iterdir()) == []
