"""Bags to a LeRobot v3 dataset: alignment without future leakage, episodes, bad input refused."""

import hashlib
import json
from pathlib import Path
import re

from dit4dit_train.bag_source import BagError
from dit4dit_train.convert import ConversionError, convert, main
from dit4dit_train.dataset import LeRobotDataset
from dit4dit_train.feature_map import FeatureMap, FeatureMapError, load_feature_map
from dit4dit_train.lerobot_format import validate_dataset
from dit4dit_train.synthetic_bags import grey, JOINTS, write_bag
import numpy as np
import pytest

MAP = {
    'fps': 15, 'reference': 'head', 'robot_type': 'test',
    'cameras': {'head': {'topic': '/camera/image_raw', 'max_age_s': 0.05}},
    'state': {'topic': '/joint_states', 'joints': JOINTS, 'max_age_s': 0.02},
    'action': {'source': 'command', 'topic': '/dit4dit/joint_command', 'max_age_s': 0.03},
}


def _fmap(**changes):
    data = json.loads(json.dumps(MAP))
    for key, value in changes.items():
        section, _, field = key.partition('.')
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return FeatureMap.from_dict(data)


def _snapshot(root: Path):
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_convert_aligns_without_future_leakage(tmp_path, store, storage):
    cam = write_bag(tmp_path / 'bag', store, storage=storage,
                    episodes=(('pick the red cube', 1), ('push the blue cube', 2)))
    out = tmp_path / 'data'
    summary = convert([tmp_path / 'bag'], _fmap(), out, progress=False)
    assert summary['episodes'] == 2 and summary['frames'] > 20
    assert validate_dataset(out) == []
    info = json.loads((out / 'meta' / 'info.json').read_text())
    assert info['fps'] == 15 and info['features']['observation.state']['names'] == JOINTS
    data = LeRobotDataset(out, frame_indices=(0,), chunk_size=1)
    assert len(data) == summary['frames']
    instructions = set()
    for i in range(len(data)):
        item = data[i]
        level = float(np.asarray(item['images'][0, 0]).mean())
        k = int(round((level - 10) / 4))                 # the camera frame's number
        assert abs(level - grey(k)) < 1.5
        t = int(cam[k])
        state = np.asarray(item['state'], np.float64)
        action = np.asarray(item['actions'][0], np.float64)
        # joint values are their own stamps (+ per-joint offsets): j1 = j0 + 10, j2 = j0 + 20
        np.testing.assert_allclose(state - state[0], [0, 10, 20], atol=1e-6)
        s_stamp, a_stamp = state[0] * 1e9, (action[0] - 100) * 1e9
        # both sources are at or before the frame stamp (20 us: float32 storage), within max age
        assert s_stamp <= t + 2e4 and t - s_stamp <= 0.02e9 + 2e4, (i, t, s_stamp)
        assert a_stamp <= t + 2e4 and t - a_stamp <= 0.03e9 + 2e4, (i, t, a_stamp)
        instructions.add(item['instruction'])
    assert instructions == {'pick the red cube', 'push the blue cube'}
    reports = sorted((out / 'meta' / 'dit4dit_sync').glob('episode_*.json'))
    rep = json.loads(reports[1].read_text())
    assert rep['outcome'] == 'failure' and rep['frames_kept'] > 0
    assert 0 < rep['max_age_s']['state'] <= 0.02


def test_several_bags_merge_and_append_continues(tmp_path, store):
    write_bag(tmp_path / 'a', store, episodes=(('task a', 1),))
    write_bag(tmp_path / 'b', store, storage='sqlite3', with_events=False,
              start_ns=50_000_000_000)
    out = tmp_path / 'data'
    fmap = _fmap(episodes={'default_instruction': 'do the thing'})
    assert convert([tmp_path / 'a', tmp_path / 'b'], fmap, out, progress=False)['episodes'] == 2
    write_bag(tmp_path / 'c', store, episodes=(('task c', 1),))
    assert convert([tmp_path / 'c'], fmap, out, append=True, progress=False)['episodes'] == 1
    assert validate_dataset(out) == []
    data = LeRobotDataset(out, frame_indices=(0,), chunk_size=1)
    assert sorted(data.episode_bounds()) == [0, 1, 2]
    tasks = {data[s]['instruction'] for s, _ in data.episode_bounds().values()}
    assert tasks == {'task a', 'do the thing', 'task c'}


def test_next_state_actions_and_aborted_episodes(tmp_path, store):
    write_bag(tmp_path / 'bag', store, with_command=False,
              episodes=(('keep me', 1), ('drop me', 3)))
    out = tmp_path / 'data'
    s = convert([tmp_path / 'bag'], _fmap(action={'source': 'next_state'}), out, progress=False)
    assert s['episodes'] == 1 and s['episodes_skipped'] == 1
    data = LeRobotDataset(out, frame_indices=(0,), chunk_size=2)
    first, second = data[0], data[1]
    np.testing.assert_allclose(first['actions'][0], second['state'])   # action = next state


@pytest.mark.parametrize('damage, message', [
    ('truncate', 'bag'), ('garbage', 'bag'), ('no_metadata', 'no metadata.yaml'),
    ('topicless', 'topics not in the bag'),
])
def test_bad_bags_are_refused_and_the_dataset_is_untouched(tmp_path, store, damage, message):
    write_bag(tmp_path / 'good', store)
    out = tmp_path / 'data'
    convert([tmp_path / 'good'], _fmap(), out, progress=False)
    before = _snapshot(out)
    bad = tmp_path / 'bad'
    if damage == 'topicless':
        write_bag(bad, store, with_command=False)
    else:
        write_bag(bad, store)
        (data_file,) = [p for p in bad.iterdir() if p.suffix == '.mcap']
        if damage == 'truncate':
            raw = data_file.read_bytes()
            data_file.write_bytes(raw[: len(raw) // 3])
        elif damage == 'garbage':
            data_file.write_bytes(b'\x00not an mcap file' * 50)
        else:
            (bad / 'metadata.yaml').unlink()
    with pytest.raises((BagError, ConversionError), match=message):
        convert([tmp_path / 'good', bad], _fmap(), out, append=True, progress=False)
    assert _snapshot(out) == before


def test_a_camera_on_its_own_clock_is_refused_before_anything_is_sized_by_it(tmp_path, store):
    """Header stamps 5320 s off the bag's receive clock (a camera's uptime), no events."""
    import tracemalloc

    write_bag(tmp_path / 'bag', store, with_events=False, camera_clock_ns=5320 * 10**9)
    tracemalloc.start()
    try:
        with pytest.raises(BagError) as info:
            convert([tmp_path / 'bag'], _fmap(), tmp_path / 'data', progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert 'state (/joint_states) is stamped 5320 s behind the reference camera head' in text
    assert 'use_receive_time: true' in text
    median = r'Median stamp minus bag receive time: head \(/camera/image_raw\) \+53(19|20)\.'
    assert re.search(median, text), text
    assert peak < 50 * 2**20, f'{peak / 2**20:.0f} MiB allocated before refusing'
    assert not (tmp_path / 'data').exists()
    # The fix the message names: the camera's receive time as its stamp.
    cameras = {'head': {'topic': '/camera/image_raw', 'max_age_s': 0.05,
                        'use_receive_time': True}}
    fmap = _fmap(cameras=cameras, episodes={'default_instruction': 'reach'})
    summary = convert([tmp_path / 'bag'], fmap, tmp_path / 'data', progress=False)
    assert summary['episodes'] == 1 and summary['frames'] > 20


def test_a_skew_beyond_the_bound_is_refused_with_the_offset_named(tmp_path, store):
    write_bag(tmp_path / 'bag', store, seconds=6.0, camera_clock_ns=3 * 10**9)   # 3 s ahead
    with pytest.raises(BagError, match=r'state \(/joint_states\) is stamped (2\.99|3\.00)\d s '
                       r'behind the reference camera head'):
        convert([tmp_path / 'bag'], _fmap(), tmp_path / 'data', progress=False)
    # A skew the map allows (per feature) is the user's decision: it converts, and each image
    # is then paired with the joints of 3 s later.
    relaxed = _fmap(state={**MAP['state'], 'max_skew_s': 4.0},
                    action={**MAP['action'], 'max_skew_s': 4.0})
    assert convert([tmp_path / 'bag'], relaxed, tmp_path / 'data', progress=False)['frames'] > 0


def test_cli_reports_errors_and_summary(tmp_path, store, capsys):
    write_bag(tmp_path / 'bag', store)
    map_file = tmp_path / 'map.yaml'
    map_file.write_text(json.dumps(MAP))
    out = tmp_path / 'data'
    assert main([str(tmp_path / 'bag'), '--map', str(map_file), '--output', str(out),
                 '--no-progress']) == 0
    assert '[convert] 1 episodes' in capsys.readouterr().out
    assert main([str(tmp_path / 'nope'), '--map', str(map_file), '--output', str(out),
                 '--append', '--no-progress']) == 1
    assert 'no metadata.yaml' in capsys.readouterr().err


def test_packaged_feature_maps_load_and_bad_maps_are_refused():
    for name in ('g1_dex3', 'g1_tabletop'):
        fmap = load_feature_map(name)
        assert fmap.reference in fmap.cameras and len(fmap.state.joints) >= 14
    with pytest.raises(FeatureMapError, match='packaged: g1_dex3, g1_tabletop'):
        load_feature_map('h1')
    with pytest.raises(FeatureMapError, match=r'unknown key\(s\) jionts'):
        FeatureMap.from_dict({**MAP, 'state': {'topic': '/js', 'jionts': ['a']}})
    with pytest.raises(FeatureMapError, match="reference 'wrist' is not a camera"):
        FeatureMap.from_dict({**MAP, 'reference': 'wrist'})
