"""LeRobotDataset over a writer-made dataset: frames, chunks, padding, selection, workers."""

from dit4dit_train.dataset import LeRobotDataset
import numpy as np
import pytest
from test_lerobot_format import CAMERAS, EPISODES, HEAD, read_counter, WRIST, write_dataset
import torch

STARTS = np.cumsum([0] + [n for n, _ in EPISODES])      # global frame number of each episode


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Return (root, written frames) of the three-episode test dataset."""
    root = tmp_path_factory.mktemp('lerobot') / 'ds'
    return root, write_dataset(root)


def counters(images):
    """Return the frame numbers drawn in images [T, V, H, W, 3] as a [T][V] list."""
    return [[read_counter(view) for view in step] for step in np.asarray(images)]


def expected_frames(episode, t, frame_indices, length):
    """Return the [T][V] frame numbers of sample ``t``: clamped to the episode, per camera."""
    return [[STARTS[episode] + min(max(t + k, 0), length - 1) + offset
             for offset, _ in CAMERAS.values()] for k in frame_indices]


def test_sample_shapes_and_types(dataset):
    """Check every field of a sample."""
    data = LeRobotDataset(dataset[0])
    assert len(data) == 24 and data.camera_keys == [HEAD, WRIST]
    item = data[0]
    assert item['images'].shape == (9, 2, 32, 40, 3) and item['images'].dtype == torch.uint8
    assert item['state'].shape == (2,) and item['state'].dtype == torch.float32
    assert item['actions'].shape == (16, 3) and item['actions'].dtype == torch.float32
    assert item['action_is_pad'].shape == (16,) and item['action_is_pad'].dtype == torch.bool
    assert (item['instruction'], item['episode_index'], item['frame_index']) == (
        'pick the cube', 0, 0)
    assert data.episode_bounds() == {0: (0, 7), 1: (7, 19), 2: (19, 24)}
    with pytest.raises(IndexError):
        data[24]


def test_frames_follow_frame_indices_and_clamp_at_the_end(dataset):
    """Every sample shows frames t + frame_indices of both cameras, clamped to the episode."""
    data = LeRobotDataset(dataset[0], frame_indices=(-1, 0, 2, 5))
    for i in range(len(data)):
        item = data[i]
        episode, t = item['episode_index'], item['frame_index']
        length = EPISODES[episode][0]
        assert counters(item['images']) == expected_frames(episode, t, data.frame_indices,
                                                           length), i


def test_action_chunks_state_and_instruction(dataset):
    """Chunks start at t, repeat the last action past the end and flag it; state is at t."""
    root, written = dataset
    data = LeRobotDataset(root, frame_indices=(0,), chunk_size=5)
    for i in range(len(data)):
        item = data[i]
        episode, t = item['episode_index'], item['frame_index']
        frames, (length, task) = written[episode], EPISODES[episode]
        rows = np.minimum(np.arange(t, t + 5), length - 1)
        np.testing.assert_array_equal(item['actions'], frames['action'][rows])
        np.testing.assert_array_equal(item['action_is_pad'], np.arange(t, t + 5) >= length)
        np.testing.assert_array_equal(item['state'], frames['observation.state'][t])
        assert item['instruction'] == task and i == STARTS[episode] + t
    assert data[6]['action_is_pad'].tolist() == [False, True, True, True, True]
    np.testing.assert_array_equal(data[6]['actions'][4], written[0]['action'][6])


def test_episode_selection_and_arrays(dataset):
    """Selected episodes are renumbered densely; the arrays hold exactly what was written."""
    root, written = dataset
    data = LeRobotDataset(root, camera_keys=[WRIST], episodes=[2, 0], frame_indices=(0, 1))
    assert len(data) == 12 and data.episode_bounds() == {0: (0, 7), 2: (7, 12)}
    item = data[7]
    assert (item['episode_index'], item['frame_index']) == (2, 0)
    assert counters(item['images']) == [[STARTS[2] + 500], [STARTS[2] + 501]]
    np.testing.assert_array_equal(
        data.actions_array(), np.concatenate([written[0]['action'], written[2]['action']]))
    np.testing.assert_array_equal(
        LeRobotDataset(root).states_array(),
        np.concatenate([w['observation.state'] for w in written]))
    with pytest.raises(ValueError, match=r'episodes \[7\] are not in the dataset'):
        LeRobotDataset(root, episodes=[0, 7])
    with pytest.raises(ValueError, match="'observation.images.top' is not a video feature"):
        LeRobotDataset(root, camera_keys=['observation.images.top'])
    with pytest.raises(ValueError, match="no feature 'observation.joints'"):
        LeRobotDataset(root, state_key='observation.joints')


def test_dataloader_with_two_workers(dataset):
    """Worker processes decode on their own (containers opened in the parent are not reused)."""
    data = LeRobotDataset(dataset[0], frame_indices=(0, 3), chunk_size=4)
    assert counters(data[20]['images'])[0] == [20, 520]       # opens containers in this process
    loader = torch.utils.data.DataLoader(data, batch_size=5, num_workers=2, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    seen = {}
    for batch in loader:
        assert batch['images'].shape[1:] == (2, 2, 32, 40, 3) and batch['actions'].shape[1:] == (
            4, 3)
        for images, episode, t in zip(batch['images'], batch['episode_index'],
                                      batch['frame_index']):
            episode, t = int(episode), int(t)
            seen[STARTS[episode] + t] = counters(images) == expected_frames(
                episode, t, (0, 3), EPISODES[episode][0])
    assert sorted(seen) == list(range(24)) and all(seen.values())
