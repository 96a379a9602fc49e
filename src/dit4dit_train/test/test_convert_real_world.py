"""Real recordings: drops keep real time, bounded memory, unnamed and split joints, bad frames."""

import json
import tracemalloc

import av
from dit4dit_train.bag_source import BagError
from dit4dit_train.convert import ConversionError, convert
from dit4dit_train.dataset import LeRobotDataset
from dit4dit_train.feature_map import FeatureMap, FeatureMapError
from dit4dit_train.lerobot_format import read_episodes, validate_dataset
from dit4dit_train.synthetic_bags import grey, write_bag
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_convert import MAP as CONVERT_MAP

MAP = {**CONVERT_MAP, 'fps': 30}      # the camera's rate: each dropped frame leaves a gap


def _fmap(**sections):
    data = json.loads(json.dumps(MAP))
    for section, changes in sections.items():
        data[section] = ({**data.get(section, {}), **changes} if isinstance(changes, dict)
                         else changes)
    return FeatureMap.from_dict(data)


def _frame_number(image) -> int:
    level = float(np.asarray(image).mean())
    k = int(round((level - 10) / 4))
    assert abs(level - grey(k)) < 1.5, level
    return k


def test_periodic_drops_keep_real_time_and_lerobot_finds_every_frame(tmp_path, store):
    write_bag(tmp_path / 'bag', store, seconds=3.0, camera_drop_every=4, with_events=False,
              episodes=(('reach', 1),))
    out = tmp_path / 'data'
    summary = convert([tmp_path / 'bag'], _fmap(episodes={'default_instruction': 'reach'}), out,
                      progress=False)
    assert validate_dataset(out) == []
    table = pq.read_table(out / 'data/chunk-000/file-000.parquet').to_pydict()
    ts = np.array(table['timestamp'], np.float64)
    assert ts[0] == 0.0 and summary['frames'] == len(ts) and summary['gaps'] > 5
    steps = np.round(np.diff(ts) * 30).astype(int)
    assert set(steps.tolist()) == {1, 2}                 # a dropped camera frame: one tick gap
    # the suite's loader: each row's image is the camera frame recorded at that real time
    data = LeRobotDataset(out, frame_indices=(0,), chunk_size=1)
    numbers = [_frame_number(data[i]['images'][0, 0]) for i in range(len(data))]
    ticks = np.round(ts * 30).astype(int)
    assert np.array_equal((ticks + numbers[0]) % 61, numbers)   # grey levels repeat after 61
    # 3 of 4 frames kept: rows at a uniform 1/fps would show 3/4 of the time that passed
    assert ts[-1] == pytest.approx(len(ts) / 3 * 4 / 30, abs=0.1)
    # LeRobot's rule: the frame presented at from_timestamp + timestamp (within 1e-4 s)
    ep = read_episodes(out)[0]
    with av.open(str(out / 'videos/observation.images.head/chunk-000/file-000.mp4')) as video:
        times = np.array([f.time for f in video.decode(video=0)])
    wanted = ep['videos/observation.images.head/from_timestamp'] + ts
    assert np.abs(times[:, None] - wanted[None, :]).min(axis=0).max() < 1e-4
    report = json.loads((out / 'meta/dit4dit_sync/episode_000000.json').read_text())
    assert report['frame_gaps']['gaps'] == summary['gaps']
    assert report['frame_gaps']['span_s'] == pytest.approx(ts[-1], abs=1e-3)


def test_an_fps_above_the_camera_rate_is_warned_about(tmp_path, store):
    write_bag(tmp_path / 'bag', store, seconds=1.5)
    summary = convert([tmp_path / 'bag'], _fmap(fps=60), tmp_path / 'data', progress=False)
    assert any('exceeds what the reference camera' in w and '30' in w
               for w in summary['warnings']), summary['warnings']


def _peak_python_bytes(tmp_path, store, seconds, name):
    write_bag(tmp_path / name, store, seconds=seconds, size=(120, 160), with_events=False,
              textured=True)
    fmap = _fmap(episodes={'default_instruction': 'reach'})
    tracemalloc.start()
    try:
        summary = convert([tmp_path / name], fmap, tmp_path / f'{name}_data', progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    report = json.loads((tmp_path / f'{name}_data/meta/dit4dit_sync/episode_000000.json')
                        .read_text())
    return peak, summary['frames'], report['held_frames_peak']


def test_memory_does_not_grow_with_the_episode_frames(tmp_path, store):
    """Frames are encoded as they are aligned: 4x the episode adds the index, not the images."""
    short, short_frames, short_held = _peak_python_bytes(tmp_path, store, 8.0, 'short')
    long, long_frames, long_held = _peak_python_bytes(tmp_path, store, 32.0, 'long')
    assert long_frames > 3.5 * short_frames
    frame_bytes = 120 * 160 * 3
    # holding the episode's frames would add (long - short) frames of 57.6 kB: about 41 MB here
    assert long - short < 0.1 * (long_frames - short_frames) * frame_bytes, (short, long)
    assert short_held <= 2 and long_held <= 2


def test_unnamed_joint_states_are_selected_by_index(tmp_path, store):
    write_bag(tmp_path / 'bag', store, unnamed_state=True)
    with pytest.raises(BagError, match='indices'):
        convert([tmp_path / 'bag'], _fmap(), tmp_path / 'refused', progress=False)
    fmap = _fmap(state={'joints': ['wrist', 'shoulder'], 'indices': [2, 0]},
                 action={'source': 'next_state'})
    convert([tmp_path / 'bag'], fmap, tmp_path / 'data', progress=False)
    data = LeRobotDataset(tmp_path / 'data', frame_indices=(0,), chunk_size=1)
    for i in range(0, len(data), 7):
        state = np.asarray(data[i]['state'], np.float64)
        assert state[0] - state[1] == pytest.approx(20.0, abs=1e-4)    # j2 = j0 + 20
    info = json.loads((tmp_path / 'data/meta/info.json').read_text())
    assert info['features']['observation.state']['names'] == ['wrist', 'shoulder']
    with pytest.raises(FeatureMapError, match='one position per joint'):
        _fmap(state={'indices': [0]})


def test_several_publishers_on_one_topic_are_merged(tmp_path, store):
    write_bag(tmp_path / 'bag', store, state_publishers=[['j1', 'j0'], ['j2']])
    with pytest.raises(BagError, match='merge: true'):
        convert([tmp_path / 'bag'], _fmap(), tmp_path / 'refused', progress=False)
    convert([tmp_path / 'bag'], _fmap(state={'merge': True}), tmp_path / 'data', progress=False)
    data = LeRobotDataset(tmp_path / 'data', frame_indices=(0,), chunk_size=1)
    assert len(data) > 20
    for i in range(len(data)):
        state = np.asarray(data[i]['state'], np.float64)
        np.testing.assert_allclose(state - state[0], [0, 10, 20], atol=1e-4)


def test_an_undecodable_frame_is_skipped_and_counted_or_stops_the_run(tmp_path, store):
    write_bag(tmp_path / 'bag', store, compressed=True, corrupt_frames={20})
    out = tmp_path / 'data'
    summary = convert([tmp_path / 'bag'], _fmap(), out, progress=False)
    report = json.loads((out / 'meta/dit4dit_sync/episode_000000.json').read_text())
    assert report['dropped_by_reason']['head: undecodable frame'] == 1
    assert any('frame 20' in w for w in summary['warnings']), summary['warnings']
    data = LeRobotDataset(out, frame_indices=(0,), chunk_size=1)
    numbers = [_frame_number(data[i]['images'][0, 0]) for i in range(len(data))]
    assert 20 not in numbers and 19 in numbers and 21 in numbers
    with pytest.raises(ConversionError, match='frame 20.*on_bad_frame: abort'):
        convert([tmp_path / 'bag'], _fmap(cameras={'head': {
            'topic': '/camera/image_raw', 'on_bad_frame': 'abort'}}), tmp_path / 'stopped',
            progress=False)
    assert not (tmp_path / 'stopped' / 'meta' / 'info.json').exists()


def test_a_map_without_cameras_is_refused_with_the_reason():
    joints_only = {**MAP, 'cameras': {}, 'reference': 'head'}
    with pytest.raises(FeatureMapError, match='DiT4DiT conditions its actions on video'):
        FeatureMap.from_dict(joints_only)
