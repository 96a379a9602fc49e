"""LeRobot v3 writer: layout, identifiable frames, append, crash safety and refusals."""

import json
from pathlib import Path

import av
from dit4dit_train import lerobot_format
from dit4dit_train.lerobot_format import LeRobotWriter, read_info, validate_dataset
import numpy as np
import pyarrow.parquet as pq
import pytest

FPS = 10
HEIGHT, WIDTH, BLOCK, BITS = 32, 40, 8, 10
HEAD, WRIST = 'observation.images.head', 'observation.images.wrist'
CAMERAS = {HEAD: (0, (200, 40, 40)), WRIST: (500, (40, 40, 200))}   # counter offset, colour
FEATURES = {
    HEAD: {'dtype': 'video', 'shape': [HEIGHT, WIDTH, 3]},
    WRIST: {'dtype': 'video', 'shape': [HEIGHT, WIDTH, 3]},
    'observation.state': {'dtype': 'float32', 'shape': [2], 'names': ['pos', 'episode']},
    'action': {'dtype': 'float32', 'shape': [3], 'names': ['a0', 'a1', 'a2']},
}
EPISODES = ((7, 'pick the cube'), (12, 'place the cube'), (5, 'pick the cube'))


def draw_counter(number, colour):
    """Return a frame showing ``number`` in binary: black/white blocks in the top half."""
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = colour
    for bit in range(BITS):
        row, col = divmod(bit, WIDTH // BLOCK)
        image[row * BLOCK:(row + 1) * BLOCK, col * BLOCK:(col + 1) * BLOCK] = (
            255 if number >> bit & 1 else 0)
    return image


def read_counter(image):
    """Return the number drawn by ``draw_counter`` (block centres survive lossy coding)."""
    image = np.asarray(image)
    number = 0
    for bit in range(BITS):
        row, col = divmod(bit, WIDTH // BLOCK)
        centre = image[row * BLOCK + 2:row * BLOCK + 6, col * BLOCK + 2:col * BLOCK + 6]
        number |= int(centre.mean() > 128) << bit
    return number


def episode_frames(episode, length, first):
    """Return an episode's arrays; its frames carry the global numbers ``first ...``."""
    number = np.arange(first, first + length)
    frames = {key: np.stack([draw_counter(n + offset, colour) for n in number])
              for key, (offset, colour) in CAMERAS.items()}
    frames['observation.state'] = np.stack([number, np.full(length, episode)], 1)
    frames['action'] = np.stack([number + 0.5, -number, np.full(length, episode)], 1)
    return {key: v.astype(np.float32) if v.dtype != np.uint8 else v for key, v in frames.items()}


def write_dataset(root, episodes=EPISODES, first_episode=0, first_frame=0, append=False):
    """Write ``episodes`` ((length, task), ...) in one session; return their frames."""
    written = []
    with LeRobotWriter(root, FPS, FEATURES, robot_type='test_bot', append=append) as writer:
        for length, task in episodes:
            index = first_episode + len(written)
            frames = episode_frames(index, length, first_frame)
            assert writer.add_episode(frames, task) == index
            written.append(frames)
            first_frame += length
    return written


def snapshot(root):
    """Return every path under ``root`` with the bytes of each file."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(Path(root).rglob('*'))}


def decode_all(path):
    """Return (times, counters) of every frame of an mp4 file."""
    with av.open(str(path)) as container:
        frames = [(f.time, read_counter(f.to_ndarray(format='rgb24')))
                  for f in container.decode(video=0)]
    return np.array([t for t, _ in frames]), [n for _, n in frames]


def test_layout_info_episodes_and_frames(tmp_path):
    """Check the v3 layout, info.json, episode ranges, data rows and the encoded frames."""
    root = tmp_path / 'ds'
    written = write_dataset(root)
    files = {k for k, v in snapshot(root).items() if v is not None}
    assert files == {
        'meta/info.json', 'meta/stats.json', 'meta/tasks.parquet',
        'meta/episodes/chunk-000/file-000.parquet', 'data/chunk-000/file-000.parquet',
        f'videos/{HEAD}/chunk-000/file-000.mp4', f'videos/{WRIST}/chunk-000/file-000.mp4'}
    info = read_info(root)
    assert (info['codebase_version'], info['fps'], info['robot_type']) == ('v3.0', FPS, 'test_bot')
    assert (info['total_episodes'], info['total_frames'], info['total_tasks']) == (3, 24, 2)
    assert info['splits'] == {'train': '0:3'} and info['chunks_size'] == 1000
    head = info['features'][HEAD]
    assert head['shape'] == [HEIGHT, WIDTH, 3] and head['names'] == ['height', 'width', 'channels']
    assert head['info']['video.codec'] == 'h264' and head['info']['video.pix_fmt'] == 'yuv420p'
    assert info['features']['action']['names'] == ['a0', 'a1', 'a2']
    for key in ('timestamp', 'frame_index', 'episode_index', 'index', 'task_index'):
        assert info['features'][key]['shape'] == [1]
    assert validate_dataset(root) == []

    episodes = pq.read_table(root / 'meta/episodes/chunk-000/file-000.parquet').to_pylist()
    assert [(e['dataset_from_index'], e['dataset_to_index']) for e in episodes] == [
        (0, 7), (7, 19), (19, 24)]
    assert [e['tasks'] for e in episodes] == [['pick the cube'], ['place the cube'],
                                              ['pick the cube']]
    assert [e[f'videos/{HEAD}/from_timestamp'] for e in episodes] == pytest.approx([0, .7, 1.9])
    assert episodes[2][f'videos/{WRIST}/to_timestamp'] == pytest.approx(2.4)

    data = pq.read_table(root / 'data/chunk-000/file-000.parquet').to_pydict()
    assert data['index'] == list(range(24)) and data['task_index'] == [0] * 7 + [1] * 12 + [0] * 5
    assert data['frame_index'] == list(range(7)) + list(range(12)) + list(range(5))
    assert data['episode_index'] == [0] * 7 + [1] * 12 + [2] * 5
    assert data['timestamp'] == pytest.approx(np.concatenate([np.arange(n) / FPS for n in
                                                              (7, 12, 5)]))
    actions = np.concatenate([w['action'] for w in written])
    np.testing.assert_array_equal(np.array(data['action'], np.float32), actions)

    for key, (offset, _) in CAMERAS.items():      # one frame per row, in row order, at k / fps
        times, counters = decode_all(root / f'videos/{key}/chunk-000/file-000.mp4')
        assert counters == [n + offset for n in range(24)]
        np.testing.assert_allclose(times, np.arange(24) / FPS, atol=1e-6)


def test_tasks_table_and_stats(tmp_path):
    """Check tasks.parquet (pyarrow and pandas view) and stats.json against the data."""
    root = tmp_path / 'ds'
    written = write_dataset(root)
    tasks = pq.read_table(root / 'meta/tasks.parquet')
    assert tasks.to_pydict() == {'task_index': [0, 1], 'task': ['pick the cube', 'place the cube']}
    assert json.loads(tasks.schema.metadata[b'pandas'])['index_columns'] == ['task']

    stats = json.loads((root / 'meta/stats.json').read_text())
    for key in ('action', 'observation.state'):
        values = np.concatenate([w[key] for w in written]).astype(np.float64)
        np.testing.assert_allclose(stats[key]['mean'], values.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]['std'], values.std(0), rtol=1e-6)
        assert stats[key]['min'] == values.min(0).tolist() and stats[key]['count'] == [24]
    assert stats['index']['max'] == [23] and stats['episode_index']['mean'] == [
        pytest.approx((12 + 2 * 5) / 24)]
    head, wrist = (np.array(stats[key]['mean']) for key in (HEAD, WRIST))
    assert head.shape == (3, 1, 1) and np.array(stats[HEAD]['std']).shape == (3, 1, 1)
    assert 0 <= np.min(stats[HEAD]['min']) and np.max(stats[HEAD]['max']) <= 1
    assert head[0] > head[2] and wrist[2] > wrist[0]     # red head camera, blue wrist camera


def test_append_continues_indices_and_keeps_old_files(tmp_path):
    """A second session adds new files, continues indices and merges tasks and stats."""
    root = tmp_path / 'ds'
    written = write_dataset(root)
    before = snapshot(root)
    written += write_dataset(root, ((9, 'wipe the table'), (4, 'place the cube')),
                             first_episode=3, first_frame=24, append=True)
    after = snapshot(root)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {'meta/info.json', 'meta/stats.json', 'meta/tasks.parquet'}
    assert set(after) - set(before) == {
        'data/chunk-000/file-001.parquet', 'meta/episodes/chunk-000/file-001.parquet',
        f'videos/{HEAD}/chunk-000/file-001.mp4', f'videos/{WRIST}/chunk-000/file-001.mp4'}
    assert validate_dataset(root) == []
    info = read_info(root)
    assert (info['total_episodes'], info['total_frames'], info['total_tasks']) == (5, 37, 3)
    episodes = pq.read_table(root / 'meta/episodes/chunk-000/file-001.parquet').to_pylist()
    assert [(e['episode_index'], e['dataset_from_index'], e['dataset_to_index'])
            for e in episodes] == [(3, 24, 33), (4, 33, 37)]
    assert episodes[0]['data/file_index'] == 1 and episodes[1][f'videos/{HEAD}/from_timestamp'] \
        == pytest.approx(0.9)
    data = pq.read_table(root / 'data/chunk-000/file-001.parquet').to_pydict()
    assert data['index'] == list(range(24, 37)) and data['task_index'] == [2] * 9 + [1] * 4
    _, counters = decode_all(root / f'videos/{HEAD}/chunk-000/file-001.mp4')
    assert counters == list(range(24, 37))

    stats = json.loads((root / 'meta/stats.json').read_text())
    actions = np.concatenate([w['action'] for w in written]).astype(np.float64)
    np.testing.assert_allclose(stats['action']['mean'], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats['action']['std'], actions.std(0), rtol=1e-6)
    assert stats['action']['count'] == [37] and stats[HEAD]['count'] == [37]   # every frame


def _fail_on_info(real_replace):
    def replace(src, dst):
        if Path(dst).name == 'info.json':
            raise OSError('disk full (simulated)')
        real_replace(src, dst)
    return replace


@pytest.mark.parametrize('failure', ['nan', 'exception', 'meta_swap'])
def test_failed_session_leaves_the_dataset_untouched(tmp_path, monkeypatch, failure):
    """A failing second session removes what it wrote and restores replaced meta files."""
    root = tmp_path / 'ds'
    write_dataset(root)
    before = snapshot(root)
    good = episode_frames(3, 6, 24)
    with pytest.raises((ValueError, RuntimeError, OSError)) as caught:
        with LeRobotWriter(root, FPS, FEATURES, append=True) as writer:
            writer.add_episode(good, 'new task')
            if failure == 'nan':
                bad = episode_frames(4, 5, 30)
                bad['action'][3, 1] = np.nan
                writer.add_episode(bad, 'new task')
            elif failure == 'exception':
                raise RuntimeError('operator stopped the conversion')
            else:
                monkeypatch.setattr(lerobot_format.os, 'replace', _fail_on_info(
                    lerobot_format.os.replace))
    if failure == 'nan':
        assert "'action': NaN or inf at frame 3" in str(caught.value)
    assert snapshot(root) == before
    assert validate_dataset(root) == []
    with pytest.raises(RuntimeError, match='aborted'):
        writer.add_episode(good, 'new task')


def test_failed_first_session_leaves_no_folder(tmp_path):
    """A failure in the session that would create the dataset leaves nothing behind."""
    with pytest.raises(KeyboardInterrupt):
        with LeRobotWriter(tmp_path / 'ds', FPS, FEATURES) as writer:
            writer.add_episode(episode_frames(0, 4, 0), 'task')
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_refusals(tmp_path):
    """Non-empty folders, mismatching features and bad episodes are refused with reasons."""
    root = tmp_path / 'ds'
    write_dataset(root, EPISODES[:1])
    before = snapshot(root)
    with pytest.raises(FileExistsError, match='--append'):
        LeRobotWriter(root, FPS, FEATURES)
    other = {**FEATURES, 'action': {'dtype': 'float32', 'shape': [4]}}
    with pytest.raises(ValueError, match=r"feature 'action': shape \[3\] in the dataset, \[4\]"):
        LeRobotWriter(root, FPS, other, append=True)
    with pytest.raises(ValueError, match="feature 'gripper' is only in the given features"):
        LeRobotWriter(root, FPS, {**FEATURES, 'gripper': {'dtype': 'float32', 'shape': [1]}},
                      append=True)
    with pytest.raises(ValueError, match='fps 10 in the dataset, 30 given'):
        LeRobotWriter(root, 30, FEATURES, append=True)
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'notes.txt').write_text('not a dataset')
    with pytest.raises(FileExistsError, match='no meta/info.json'):
        LeRobotWriter(tmp_path / 'other', FPS, FEATURES, append=True)
    with pytest.raises(ValueError, match='even height and width'):
        LeRobotWriter(tmp_path / 'odd', FPS, {HEAD: {'dtype': 'video', 'shape': [31, 40, 3]}})

    writer = LeRobotWriter(root, FPS, FEATURES, append=True)
    frames = episode_frames(1, 4, 7)
    for key, bad, message in (
            (HEAD, frames[HEAD].astype(np.float32), r'\[T, 32, 40, 3\] uint8'),
            ('action', frames['action'][:, :2], r"'action': expected \[T, 3\] float32"),
            ('observation.state', frames['observation.state'][:3], 'different numbers')):
        with pytest.raises(ValueError, match=message):
            writer.add_episode({**frames, key: bad}, 'task')
    with pytest.raises(ValueError, match=r"missing feature\(s\) \['action'\]"):
        writer.add_episode({k: v for k, v in frames.items() if k != 'action'}, 'task')
    assert writer.finalize()['episodes'] == 0       # refused episodes wrote nothing
    assert snapshot(root) == before


def test_validate_reports_damage(tmp_path):
    """validate_dataset names inconsistent totals and missing or short videos."""
    root = tmp_path / 'ds'
    write_dataset(root)
    info = read_info(root)
    (root / 'meta/info.json').write_text(json.dumps({**info, 'total_frames': 30}))
    assert validate_dataset(root) == ['total_frames is 30, episodes end at 24']
    (root / 'meta/info.json').write_text(json.dumps(info))
    short = root / f'videos/{WRIST}/chunk-000/file-000.mp4'
    with av.open(str(short), 'w') as container:     # replace with a 15-frame video
        stream = container.add_stream('libx264', rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, 'yuv420p'
        for n in range(15):
            frame = av.VideoFrame.from_ndarray(draw_counter(n, (0, 0, 0)), format='rgb24')
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert validate_dataset(root) == [
        f'episode 1: 8 frames in videos/{WRIST}/chunk-000/file-000.mp4, 12 rows',
        f'episode 2: 0 frames in videos/{WRIST}/chunk-000/file-000.mp4, 5 rows']
