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


def test_collection_without_a_working_recorder_does_not_start(tmp_path, capsys):
    existing = tmp_path / 'existing'
    existing.mkdir()
    started = time.monotonic()
    assert main([f'output:={existing}', 'episodes:=2']) == 2
    err = capsys.readouterr().err
    assert 'cannot start bag_recorder' in err and 'already exists' in err
    assert time.monotonic() - started < 30          # no simulated episode ran
    assert list(existing.iterdir()) == []
