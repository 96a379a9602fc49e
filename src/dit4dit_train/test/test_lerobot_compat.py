"""
LeRobot 0.6's own layout: per-episode stats columns, quantiles, encoder info, appends.

``meta/episodes`` is read the way LeRobot reads it (``datasets.Dataset.from_parquet`` over every
file at once, which refuses files whose columns differ), and the columns LeRobot 0.6 writes are
required: ``stats/<feature>/<stat>`` for every feature, quantiles q01..q99 included.
"""

import json

from datasets import Dataset
from dit4dit_train import lerobot_stats
from dit4dit_train.dataset import LeRobotDataset
from dit4dit_train.lerobot_format import LeRobotWriter, read_info, validate_dataset
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_lerobot_format import CAMERAS, EPISODES, FEATURES, FPS, HEAD, write_dataset

STATS = ('min', 'max', 'mean', 'std', 'count', 'q01', 'q10', 'q50', 'q90', 'q99')


def lerobot_episodes(root):
    """Load meta/episodes as LeRobot 0.6 does (load_nested_dataset: one Dataset over all)."""
    paths = sorted(str(p) for p in (root / 'meta' / 'episodes').glob('*/*.parquet'))
    episodes = Dataset.from_parquet(paths)
    info = read_info(root)
    wanted = {f'stats/{key}/{stat}' for key in info['features'] for stat in STATS}
    missing = wanted - set(episodes.column_names)
    assert not missing, sorted(missing)[:5]
    return episodes


def test_episode_stats_quantiles_and_lerobot_aggregation(tmp_path):
    root = tmp_path / 'ds'
    written = write_dataset(root)
    episodes = lerobot_episodes(root)
    assert len(episodes) == len(EPISODES)
    for row, frames in zip(episodes, written):
        action = frames['action'].astype(np.float64)
        np.testing.assert_allclose(row['stats/action/mean'], action.mean(0), rtol=1e-6)
        np.testing.assert_allclose(row['stats/action/q50'], np.median(action, 0), rtol=1e-6)
        np.testing.assert_allclose(row['stats/action/q99'], np.quantile(action, 0.99, 0))
        assert row['stats/action/count'] == [len(action)]
        assert row['stats/episode_index/min'] == [row['episode_index']]
        assert np.array(row[f'stats/{HEAD}/q50']).shape == (3, 1, 1)
        assert row[f'stats/{HEAD}/count'] == [len(frames[HEAD])]          # every frame
        red = np.array(row[f'stats/{HEAD}/mean']).reshape(3)
        assert red[0] > red[2]
    # stats.json is what LeRobot's tools recompute from those columns (its aggregate rule)
    stats = json.loads((root / 'meta/stats.json').read_text())
    for key in read_info(root)['features']:
        per_episode = [{s: np.array(row[f'stats/{key}/{s}']) for s in STATS} for row in episodes]
        again = lerobot_stats.to_json(lerobot_stats.aggregate(per_episode))
        for stat in STATS:
            np.testing.assert_allclose(stats[key][stat], again[stat], rtol=1e-9, err_msg=key)


def test_the_suite_appends_files_lerobot_still_reads(tmp_path):
    root = tmp_path / 'ds'
    write_dataset(root)
    write_dataset(root, ((9, 'wipe the table'),), first_episode=3, first_frame=24, append=True)
    episodes = lerobot_episodes(root)
    assert list(episodes['episode_index']) == [0, 1, 2, 3]
    assert validate_dataset(root) == []
    assert len(LeRobotDataset(root, frame_indices=(0,), chunk_size=1)) == 33


def test_video_info_is_lerobots_and_old_names_migrate_on_append(tmp_path):
    root = tmp_path / 'ds'
    write_dataset(root)
    info = read_info(root)
    video = info['features'][HEAD]['info']
    assert video['is_depth_map'] is False and 'video.is_depth_map' not in video
    assert (video['video.codec'], video['video.g'], video['video.crf']) == ('h264', 8, 18)
    # a dataset written before: the suite's old key must become LeRobot's on the next append
    for key in CAMERAS:
        old = info['features'][key]['info']
        old['video.is_depth_map'] = old.pop('is_depth_map')
    (root / 'meta/info.json').write_text(json.dumps(info))
    write_dataset(root, ((5, 'wipe'),), first_episode=3, first_frame=24, append=True)
    for key in CAMERAS:
        after = read_info(root)['features'][key]['info']
        assert after['is_depth_map'] is False and 'video.is_depth_map' not in after


def test_appending_follows_the_datasets_codec_and_keeps_its_statistics(tmp_path):
    """A LeRobot-made dataset (AV1 at LeRobot's defaults, its own quantiles): both are kept."""
    import av

    root = tmp_path / 'ds'
    write_dataset(root)
    info = read_info(root)
    info['features'][HEAD]['info'].update({'video.codec': 'av1', 'video.g': 2, 'video.crf': 30,
                                           'video.preset': 12})
    (root / 'meta/info.json').write_text(json.dumps(info))
    stats = json.loads((root / 'meta/stats.json').read_text())
    stats['action']['q01'] = [-1000.0, -1000.0, -1000.0]     # LeRobot's own numbers, kept
    (root / 'meta/stats.json').write_text(json.dumps(stats))
    write_dataset(root, ((8, 'wipe'),), first_episode=3, first_frame=24, append=True)
    with av.open(str(root / f'videos/{HEAD}/chunk-000/file-001.mp4')) as new:
        assert new.streams.video[0].codec_context.name in ('av1', 'libdav1d', 'libaom-av1')
    assert read_info(root)['features'][HEAD]['info']['video.codec'] == 'av1'
    frames = LeRobotDataset(root, frame_indices=(0,), chunk_size=1)
    assert frames[31]['images'].shape == (1, 2, 32, 40, 3)     # the AV1 file decodes
    after = json.loads((root / 'meta/stats.json').read_text())
    assert after['action']['count'] == [32]
    assert after['action']['q01'][0] < -1000.0 * 24 / 32 + 100     # count-weighted with the old


def test_appending_to_an_unknown_codec_is_refused(tmp_path):
    root = tmp_path / 'ds'
    write_dataset(root)
    info = read_info(root)
    info['features'][HEAD]['info']['video.codec'] = 'vp9'
    (root / 'meta/info.json').write_text(json.dumps(info))
    with pytest.raises(ValueError, match="'vp9'"):
        LeRobotWriter(root, FPS, FEATURES, append=True)


def test_images_stored_in_parquet_are_refused_at_load_time(tmp_path):
    root = tmp_path / 'ds'
    write_dataset(root)
    info = read_info(root)
    info['features']['observation.images.extra'] = {'dtype': 'image', 'shape': [8, 8, 3],
                                                    'names': ['height', 'width', 'channel']}
    (root / 'meta/info.json').write_text(json.dumps(info))
    with pytest.raises(ValueError, match='images in parquet.*convert_image_to_video'):
        LeRobotDataset(root)
    assert pq.read_schema(next((root / 'data').rglob('*.parquet')))


def test_validate_command_reports_problems_and_notes(tmp_path, capsys):
    from dit4dit_train.validate import main

    root = tmp_path / 'ds'
    write_dataset(root)
    assert main([str(root)]) == 0
    assert 'valid LeRobot v3.0, 3 episodes, 24 frames at 10 fps, 0 note(s)' in \
        capsys.readouterr().out
    stats = json.loads((root / 'meta/stats.json').read_text())
    for entry in stats.values():
        del entry['q01']
    (root / 'meta/stats.json').write_text(json.dumps(stats))
    assert main([str(root)]) == 0
    assert 'QUANTILES normalisation needs them' in capsys.readouterr().out
    next((root / 'data').rglob('*.parquet')).unlink()
    assert main([str(root)]) == 1
    captured = capsys.readouterr()
    assert 'problem(s)' in captured.out and 'is missing' in captured.err
