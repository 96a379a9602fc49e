"""
A torch Dataset over LeRobot v3.0 datasets: ours and public ones (LIBERO, GR00T-style G1 sets).

One sample is a frame ``t`` of an episode: the camera frames at ``t + frame_indices`` (clamped
to the episode), the state at ``t`` and the action chunk ``t .. t + chunk_size - 1`` (padded by
repeating the last action: they are absolute joint targets). States, actions and task indices
of the selected episodes are read from parquet up front; video frames are decoded on demand,
from the keyframe before the first wanted frame, in whichever process reads the sample.
"""

from collections import OrderedDict
import os
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .lerobot_format import episode_columns, read_episodes, read_info, read_tasks

MAX_OPEN_VIDEOS = 32    # open containers kept per process (each holds a file and a decoder)

# Containers a forked DataLoader worker inherited from its parent. Freeing one there would wait
# forever for decoder threads that only exist in the parent, so they live until the worker exits.
_INHERITED = []


class LeRobotDataset(torch.utils.data.Dataset):
    """Frames of a LeRobot v3.0 dataset with their video history and future action chunk."""

    def __init__(self, root, camera_keys=None, state_key='observation.state', action_key='action',
                 frame_indices=(0, 2, 4, 6, 8, 10, 12, 14, 16), chunk_size=16, episodes=None):
        """
        Index the dataset at ``root``.

        ``camera_keys`` defaults to every video feature in info.json order; ``episodes`` limits
        the samples to those episode indices (taken in increasing order).
        """
        self.root = Path(root)
        info = read_info(self.root)
        self.fps = info['fps']
        features = info['features']
        videos = [k for k, f in features.items() if f.get('dtype') == 'video']
        in_parquet = [k for k, f in features.items() if f.get('dtype') == 'image']
        if in_parquet and camera_keys is None or set(in_parquet) & set(camera_keys or ()):
            raise ValueError(
                f'{root}: camera(s) {", ".join(in_parquet)} are stored as images in parquet '
                "(LeRobot's use_videos=False); this loader decodes video features only. "
                'Re-encode them as videos (LeRobot: lerobot-edit-dataset --operation.type '
                'convert_image_to_video), or pass camera_keys without them')
        self.camera_keys = list(videos if camera_keys is None else camera_keys)
        for key in self.camera_keys:
            if key not in videos:
                raise ValueError(f"{root}: '{key}' is not a video feature; videos: {videos}")
        for key in (state_key, action_key):
            if key not in features:
                raise ValueError(f"{root}: no feature '{key}'; features: {sorted(features)}")
        if chunk_size < 1 or not frame_indices:
            raise ValueError('chunk_size must be >= 1 and frame_indices non-empty')
        self.frame_indices = tuple(int(k) for k in frame_indices)
        self.chunk_size = int(chunk_size)
        self._episodes = _select(read_episodes(self.root, episode_columns(info)), episodes)
        self._tasks = read_tasks(self.root)
        self._lengths = np.array([ep['length'] for ep in self._episodes], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64)
        self._states, self._actions, self._task_index, self._ticks = self._load_columns(
            info, state_key, action_key)
        self._videos = [{key: (str(self.root / info['video_path'].format(
            video_key=key, chunk_index=ep[f'videos/{key}/chunk_index'],
            file_index=ep[f'videos/{key}/file_index'])), ep[f'videos/{key}/from_timestamp'])
            for key in self.camera_keys} for ep in self._episodes]
        self._containers, self._pid = OrderedDict(), None

    def __len__(self) -> int:
        """Return the number of frames of the selected episodes."""
        return int(self._lengths.sum())

    def __getitem__(self, i) -> dict:
        """Return sample ``i``: images, state, action chunk, padding mask and instruction."""
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f'sample {i} out of range for {len(self)} frames')
        pos = int(np.searchsorted(self._starts, i, side='right')) - 1
        start, length = int(self._starts[pos]), int(self._lengths[pos])
        t = i - start
        steps = np.arange(t, t + self.chunk_size)
        picks = [min(max(t + k, 0), length - 1) for k in self.frame_indices]
        return {
            'images': self._images(pos, [int(self._ticks[start + p]) for p in picks]),
            'state': torch.from_numpy(self._states[i].copy()),
            'actions': torch.from_numpy(self._actions[start + np.minimum(steps, length - 1)]),
            'action_is_pad': torch.from_numpy(steps >= length),
            'instruction': self._instruction(i, pos),
            'episode_index': int(self._episodes[pos]['episode_index']),
            'frame_index': t,
        }

    def __getstate__(self):
        """Return the picklable state: open video containers stay in their process."""
        return {**self.__dict__, '_containers': OrderedDict(), '_pid': None}

    def episode_bounds(self) -> dict:
        """Return {episode index: (start, end)}, the range of its samples in this dataset."""
        return {int(ep['episode_index']): (int(s), int(s + n))
                for ep, s, n in zip(self._episodes, self._starts, self._lengths)}

    def actions_array(self) -> np.ndarray:
        """Return the actions of the selected episodes, float32 [frames, action_dim]."""
        return self._actions.copy()

    def states_array(self) -> np.ndarray:
        """Return the states of the selected episodes, float32 [frames, state_dim]."""
        return self._states.copy()

    # -- parquet ---------------------------------------------------------------------------

    def _load_columns(self, info, state_key, action_key):
        """Return (states, actions, task indices, frame ticks) of the selected episodes."""
        wanted = [state_key, action_key, 'episode_index', 'frame_index', 'task_index',
                  'timestamp']
        by_file = {}
        for pos, ep in enumerate(self._episodes):
            path = self.root / info['data_path'].format(chunk_index=ep['data/chunk_index'],
                                                        file_index=ep['data/file_index'])
            by_file.setdefault(path, []).append(pos)
        parts = [None] * len(self._episodes)
        for path, positions in by_file.items():
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[c for c in wanted if c in names])
            episode = table.column('episode_index').to_numpy()
            frame = table.column('frame_index').to_numpy()
            states = _matrix(table.column(state_key))
            actions = _matrix(table.column(action_key))
            tasks = (table.column('task_index').to_numpy() if 'task_index' in names
                     else np.full(len(table), -1))
            # a row's video frame is at from_timestamp + timestamp (frames may have gaps)
            ticks = (np.round(table.column('timestamp').to_numpy() * self.fps).astype(np.int64)
                     if 'timestamp' in names else frame.astype(np.int64))
            for pos in positions:
                rows = np.flatnonzero(episode == self._episodes[pos]['episode_index'])
                rows = rows[np.argsort(frame[rows], kind='stable')]
                if len(rows) != self._lengths[pos]:
                    raise ValueError(f'{path}: episode {self._episodes[pos]["episode_index"]} '
                                     f'has {len(rows)} rows, meta says {self._lengths[pos]}')
                parts[pos] = (states[rows], actions[rows], tasks[rows], ticks[rows])
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))

    def _instruction(self, i, pos):
        task = self._tasks.get(int(self._task_index[i]))
        return task if task is not None else self._episodes[pos]['tasks'][0]

    # -- video -----------------------------------------------------------------------------

    def _images(self, pos, picks):
        """Return uint8 [len(picks), views, H, W, 3]: the episode's frames at grid ticks picks."""
        if not self.camera_keys:
            return torch.zeros((len(picks), 0, 0, 0, 3), dtype=torch.uint8)
        views = []
        for key in self.camera_keys:
            path, from_ts = self._videos[pos][key]
            frames = self._decode(path, from_ts, sorted(set(picks)))
            views.append(np.stack([frames[p] for p in picks]))
        sizes = {key: v.shape[1:3] for key, v in zip(self.camera_keys, views)}
        if len(set(sizes.values())) > 1:
            raise ValueError(f'cameras of different sizes cannot be stacked: {sizes}; '
                             'choose camera_keys of one size')
        return torch.from_numpy(np.stack(views, axis=1))

    def _decode(self, path, from_ts, wanted):
        """Return {frame: RGB array} for the episode frames ``wanted`` (sorted) of a file."""
        container = self._container(path)
        stream = container.streams.video[0]
        # half a frame early: the keyframe at or before the first wanted frame, despite rounding
        target = max(0.0, from_ts + (wanted[0] - 0.5) / self.fps)
        container.seek(int(target / stream.time_base), stream=stream, backward=True,
                       any_frame=False)
        found, remaining = {}, set(wanted)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            k = round((frame.time - from_ts) * self.fps)    # frames sit at from + k / fps
            if k in remaining:
                found[k] = frame.to_ndarray(format='rgb24')
                remaining.discard(k)
            if not remaining or k > wanted[-1]:
                break
        if remaining:
            raise RuntimeError(f'{path}: episode frames {sorted(remaining)} (from '
                               f'{from_ts:.3f} s at {self.fps} fps) are not in the video')
        return found

    def _container(self, path):
        """Return an open container for ``path``, opened lazily in this process."""
        if self._pid != os.getpid():    # a forked DataLoader worker must not share decoders
            _INHERITED.extend(self._containers.values())
            self._containers, self._pid = OrderedDict(), os.getpid()
        container = self._containers.pop(path, None)
        if container is None:
            container = av.open(path)
            # one thread: workers give the parallelism, and no decoder threads exist to be lost
            # when this process forks
            container.streams.video[0].codec_context.thread_count = 1
            if len(self._containers) >= MAX_OPEN_VIDEOS:
                self._containers.popitem(last=False)[1].close()
        self._containers[path] = container
        return container


def _select(episodes, wanted):
    """Return the episode rows whose index is in ``wanted`` (all for None), in index order."""
    if wanted is None:
        return episodes
    wanted = {int(e) for e in wanted}
    missing = wanted - {ep['episode_index'] for ep in episodes}
    if missing:
        raise ValueError(f'episodes {sorted(missing)} are not in the dataset')
    if not wanted:
        raise ValueError('episodes is empty: select at least one episode')
    return [ep for ep in episodes if ep['episode_index'] in wanted]


def _matrix(column) -> np.ndarray:
    """Return a list or scalar parquet column as float32 [rows, dim]."""
    array = column.combine_chunks()
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
            or pa.types.is_fixed_size_list(array.type):
        values = array.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(array), -1).astype(np.float32)
    return array.to_numpy(zero_copy_only=False).reshape(-1, 1).astype(np.float32)
