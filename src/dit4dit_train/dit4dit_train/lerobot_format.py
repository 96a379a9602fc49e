"""
Write and check LeRobot v3.0 datasets (parquet + mp4) without ROS or the lerobot package.

Layout under the dataset root::

    meta/info.json  meta/stats.json  meta/tasks.parquet
    meta/episodes/chunk-CCC/file-FFF.parquet      one row per episode
    data/chunk-CCC/file-FFF.parquet               one row per frame, many episodes per file
    videos/<key>/chunk-CCC/file-FFF.mp4           the frames of those episodes, concatenated

A write session (one ``LeRobotWriter``) only ever adds new data, video and episode files; the
shared meta files (info, stats, tasks) are written to temporary names and swapped in with
``os.replace`` at the very end, ``info.json`` last. A session that fails before that leaves the
dataset exactly as it was. Video stats in ``stats.json`` are per channel in [0, 1], nested as
[3, 1, 1] like LeRobot's, from a subsample of each episode's frames.
"""

import json
import os
from pathlib import Path
import re

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = 'v3.0'
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'

ENCODER, CODEC, PIX_FMT = 'libx264', 'h264', 'yuv420p'
CRF = 18            # near-transparent: policies learn from these pixels
GOP = 8             # keyframe spacing: a random-access read decodes at most GOP - 1 extra frames
STATS_FRAMES = 8    # frames per episode sampled for the image stats
STATS_SIDE = 128    # image stats on frames strided down to about this size

STANDARD_FEATURES = {
    'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
    'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
}
NUMERIC_DTYPES = ('float32', 'float64', 'int32', 'int64', 'bool')


def read_info(root) -> dict:
    """Return ``meta/info.json`` of the LeRobot v3 dataset at ``root``."""
    path = Path(root) / 'meta' / 'info.json'
    if not path.is_file():
        raise FileNotFoundError(f'{root} is not a LeRobot dataset: no meta/info.json')
    info = json.loads(path.read_text())
    version = str(info.get('codebase_version', ''))
    if not version.startswith('v3.'):
        raise ValueError(f'{root}: codebase_version {version!r}, only LeRobot v3.x is supported')
    return info


def read_episodes(root, columns=None) -> list:
    """Return the episode rows (dicts) of ``meta/episodes``, sorted by episode index."""
    rows = []
    for path in _numbered_files(Path(root) / 'meta' / 'episodes', '.parquet'):
        names = pq.read_schema(path).names
        wanted = None if columns is None else [c for c in columns if c in names]
        rows += pq.read_table(path, columns=wanted).to_pylist()
    return sorted(rows, key=lambda row: row['episode_index'])


def read_tasks(root) -> dict:
    """Return ``{task_index: task}`` from ``meta/tasks.parquet``."""
    table = pq.read_table(Path(root) / 'meta' / 'tasks.parquet')
    # pandas-written files keep the task string as the index: a 'task' or '__index_level_0__'
    text = [f.name for f in table.schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if 'task_index' not in table.column_names or not text:
        raise ValueError(f'{root}: meta/tasks.parquet needs task_index and task columns')
    column = table.column('task' if 'task' in text else text[0])
    return dict(zip(table.column('task_index').to_pylist(), column.to_pylist()))


def episode_columns(info) -> list:
    """Return the ``meta/episodes`` columns that locate each episode's rows and video frames."""
    columns = ['episode_index', 'tasks', 'length', 'data/chunk_index', 'data/file_index',
               'dataset_from_index', 'dataset_to_index']
    for key, feature in info['features'].items():
        if feature.get('dtype') == 'video':
            columns += [f'videos/{key}/{n}' for n in
                        ('chunk_index', 'file_index', 'from_timestamp', 'to_timestamp')]
    return columns


def validate_dataset(root) -> list:
    """Return the problems found in the dataset at ``root`` (an empty list when it is valid)."""
    root = Path(root)
    try:
        info = read_info(root)
        episodes = read_episodes(root, episode_columns(info))
        tasks = read_tasks(root)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return [f'cannot read the metadata: {exc}']
    problems = []
    for check in (_check_meta, _check_ranges, _check_data, _check_videos):
        try:
            problems += check(root, info, episodes, tasks)
        except (KeyError, OSError, ValueError, pa.ArrowException, av.FFmpegError) as exc:
            problems.append(f'{check.__name__[len("_check_"):]}: cannot check ({exc!r})')
    return problems


class LeRobotWriter:
    """
    Write episodes into a LeRobot v3.0 dataset, one crash-safe session at a time.

    ``features`` maps keys to ``{'dtype', 'shape', 'names'}``: ``'video'`` with shape
    [height, width, 3] (even sizes, for yuv420p), or a numeric dtype with shape [n]. Episodes'
    video frames are encoded as they are added; their other columns are kept in memory until a
    data file is full or the session is finalized. Use it as a context manager: leaving the
    block finalizes, an exception removes everything the session wrote.
    """

    def __init__(self, root, fps: int, features: dict, robot_type: str = '',
                 append: bool = False):
        """Start a session on ``root``; ``append`` adds to an existing dataset."""
        if int(fps) != fps or fps <= 0:
            raise ValueError(f'fps must be a positive integer, got {fps}')
        self.root = Path(root)
        self.fps = int(fps)
        self.features = _normalise_features(features, self.fps)
        self.video_keys = [k for k, f in self.features.items() if f['dtype'] == 'video']
        self._info = {'robot_type': robot_type or None,
                      'features': {**self.features, **STANDARD_FEATURES}}
        self._first_episode = self._first_frame = 0
        self._tasks, self._stats = {}, {}
        if append and (self.root / 'meta' / 'info.json').is_file():
            self._load_existing()
        elif self.root.exists() and any(self.root.iterdir()):
            raise FileExistsError(
                f'{self.root} is not empty; pass append=True to add episodes to it' if not append
                else f'{self.root} is not empty and not a LeRobot dataset (no meta/info.json)')
        self._data_file = _next_free(self.root / 'data', '.parquet')
        self._video_file = {k: _next_free(self.root / 'videos' / k, '.mp4')
                            for k in self.video_keys}
        self._videos = {}           # video key -> open _VideoFile of this session
        self._columns = {}          # column -> arrays buffered for the current data file
        self._buffered = 0          # bytes in self._columns
        self._episodes = []         # this session's episode rows
        self._frames = 0            # frames added in this session
        self._created = []          # files and directories this session made, in order
        self._new_files = []        # data, video and episode files (for the summary)
        self._restore = {}          # meta path -> its bytes before the swap
        self._state = 'open'
        self._summary = None

    def __enter__(self):
        """Return the writer."""
        return self

    def __exit__(self, exc_type, exc, tb):
        """Finalize after a clean exit; otherwise remove what this session wrote."""
        if exc_type is None:
            self.finalize()
        elif self._state != 'done':
            self._abort()
        return False

    def add_episode(self, frames: dict, task: str) -> int:
        """Validate and add one episode (feature key -> array [T, ...]); return its index."""
        self._check_open()
        length = self._validate(frames, task)
        try:
            return self._write_episode(frames, task, length)
        except BaseException:
            self._abort()       # a half-written episode would corrupt the session's files
            raise

    def finalize(self) -> dict:
        """Write the session's remaining files and swap in the meta; return a summary."""
        if self._state == 'done':
            return self._summary
        self._check_open()
        try:
            if self._episodes:
                self._commit()
        except BaseException:
            self._abort()
            raise
        self._state = 'done'
        self._summary = {
            'episodes': len(self._episodes), 'frames': self._frames,
            'total_episodes': self._first_episode + len(self._episodes),
            'total_frames': self._first_frame + self._frames,
            'files': [p.relative_to(self.root).as_posix() for p in self._new_files]}
        return self._summary

    # -- session state ---------------------------------------------------------------------

    def _load_existing(self):
        info = read_info(self.root)
        problems = _differences(info, self.features, self.fps)
        if problems:
            raise ValueError(f'cannot append to {self.root}: ' + '; '.join(problems))
        self._info = info
        self._first_episode = int(info['total_episodes'])
        self._first_frame = int(info['total_frames'])
        self._tasks = {task: index for index, task in read_tasks(self.root).items()}
        stats_path = self.root / 'meta' / 'stats.json'
        if stats_path.is_file():
            self._stats = {key: _Stats.from_json(entry)
                           for key, entry in json.loads(stats_path.read_text()).items()
                           if {'min', 'max', 'mean', 'std', 'count'} <= set(entry)}

    def _check_open(self):
        if self._state != 'open':
            raise RuntimeError(f'this LeRobotWriter session is already {self._state}')

    def _validate(self, frames, task):
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f'task must be a non-empty string, got {task!r}')
        unknown, missing = set(frames) - set(self.features), set(self.features) - set(frames)
        if unknown or missing:
            raise ValueError(f'frames: unknown feature(s) {sorted(unknown)}, '
                             f'missing feature(s) {sorted(missing)}')
        lengths = {key: _checked_length(key, frames[key], spec)
                   for key, spec in self.features.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f'features have different numbers of frames: {lengths}')
        return lengths.popitem()[1]

    # -- writing ---------------------------------------------------------------------------

    def _write_episode(self, frames, task, length):
        index = self._first_episode + len(self._episodes)
        start = self._first_frame + self._frames
        task_index = self._tasks.setdefault(task, max(self._tasks.values(), default=-1) + 1)
        row = {'episode_index': index, 'tasks': [task], 'length': length,
               'data/chunk_index': self._data_file[0], 'data/file_index': self._data_file[1],
               'dataset_from_index': start, 'dataset_to_index': start + length}
        for key in self.video_keys:
            video = self._video(key)
            begin, end = video.add(frames[key])
            row.update({f'videos/{key}/chunk_index': video.chunk_file[0],
                        f'videos/{key}/file_index': video.chunk_file[1],
                        f'videos/{key}/from_timestamp': begin,
                        f'videos/{key}/to_timestamp': end})
            self._add_stats(key, _image_stats(frames[key]))
        columns = {key: frames[key] for key in self.features if key not in self.video_keys}
        columns.update({
            'timestamp': (np.arange(length) / self.fps).astype(np.float32),
            'frame_index': np.arange(length, dtype=np.int64),
            'episode_index': np.full(length, index, np.int64),
            'index': np.arange(start, start + length, dtype=np.int64),
            'task_index': np.full(length, task_index, np.int64)})
        for key, values in columns.items():
            values = values.astype(self._info['features'][key]['dtype'])
            self._columns.setdefault(key, []).append(values)
            self._buffered += values.nbytes
            self._add_stats(key, _Stats.of(values.reshape(length, -1)))
        self._episodes.append(row)
        self._frames += length
        if self._buffered >= DATA_FILE_MB * 2 ** 20:
            self._flush_data()
        return index

    def _video(self, key):
        """Return the open video file for ``key``, starting the next one when it is full."""
        video = self._videos.get(key)
        if video is not None and video.size() >= VIDEO_FILE_MB * 2 ** 20:
            video.close()
            self._video_file[key] = _next_index(self._video_file[key])
            video = None
        if video is None:
            c, f = self._video_file[key]
            path = self._new_path(VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f))
            height, width, _ = self.features[key]['shape']
            video = self._videos[key] = _VideoFile(path, (c, f), self.fps, height, width)
        return video

    def _add_stats(self, key, stats):
        old = self._stats.get(key)
        self._stats[key] = stats if old is None else old.merge(stats)

    def _flush_data(self):
        if not self._columns:
            return
        c, f = self._data_file
        path = self._new_path(DATA_PATH.format(chunk_index=c, file_index=f))
        features = self._info['features']
        pq.write_table(pa.table({key: _arrow_column(np.concatenate(parts), features[key]['shape'])
                                 for key, parts in self._columns.items()}), path)
        self._data_file = _next_index(self._data_file)
        self._columns, self._buffered = {}, 0

    def _new_path(self, relative):
        """Return ``root/relative`` for a new file, noting it and any new folder for cleanup."""
        path = self.root / relative
        if path.exists():
            raise FileExistsError(f'{path} already exists; the dataset has an unexpected layout')
        self._make_dirs(path.parent)
        self._created.append(path)
        self._new_files.append(path)
        return path

    def _make_dirs(self, folder):
        missing = [p for p in [folder, *folder.parents] if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self._created += reversed(missing)

    def _commit(self):
        for video in self._videos.values():
            video.close()
        self._flush_data()
        meta = self.root / 'meta'
        c, f = _next_free(meta / 'episodes', '.parquet')
        for row in self._episodes:
            row.update({'meta/episodes/chunk_index': c, 'meta/episodes/file_index': f})
        episodes = self.root / EPISODES_PATH.format(chunk_index=c, file_index=f)
        self._new_files.append(episodes)
        stats = {key: s.to_json(key in self.video_keys) for key, s in self._stats.items()}
        staged = [(final, self._stage(final, write, content)) for final, write, content in (
            (episodes, _write_parquet, self._episodes_table()),
            (meta / 'tasks.parquet', _write_parquet, _tasks_table(self._tasks)),
            (meta / 'stats.json', _write_json, stats),
            (meta / 'info.json', _write_json, self._final_info()))]
        for final, temporary in staged:       # info.json last: it is what readers trust
            old = final.read_bytes() if final.exists() else None
            os.replace(temporary, final)
            if old is None:
                self._created.append(final)
            else:
                self._restore[final] = old

    def _stage(self, final, write, content):
        """Write ``content`` next to ``final`` under a temporary name; return that name."""
        self._make_dirs(final.parent)
        temporary = final.with_name(f'.{final.name}.tmp{os.getpid()}')
        self._created.append(temporary)
        write(temporary, content)
        return temporary

    def _episodes_table(self):
        columns = episode_columns(self._info) + ['meta/episodes/chunk_index',
                                                 'meta/episodes/file_index']
        schema = pa.schema([(c, _episode_column_type(c)) for c in columns])
        return pa.Table.from_pylist(self._episodes, schema=schema)

    def _final_info(self):
        episodes = self._first_episode + len(self._episodes)
        info = {'codebase_version': CODEBASE_VERSION, 'robot_type': self._info.get('robot_type'),
                'total_episodes': episodes, 'total_frames': self._first_frame + self._frames,
                'total_tasks': len(self._tasks), 'chunks_size': CHUNKS_SIZE,
                'data_files_size_in_mb': DATA_FILE_MB, 'video_files_size_in_mb': VIDEO_FILE_MB,
                'fps': self.fps, 'splits': {'train': f'0:{episodes}'}, 'data_path': DATA_PATH,
                'video_path': VIDEO_PATH if self.video_keys else None,
                'features': self._info['features']}
        return {**info, **{k: v for k, v in self._info.items() if k not in info}}

    def _abort(self):
        """Remove everything this session created and put back the meta it replaced."""
        if self._state == 'aborted':
            return
        self._state = 'aborted'
        for video in self._videos.values():
            try:
                video.close()
            except Exception:   # the file is deleted below; a broken encoder must not stop that
                pass
        try:
            for path, content in self._restore.items():
                _write_bytes_atomically(path, content)
        finally:
            for path in reversed(self._created):
                if path.is_dir():
                    if not any(path.iterdir()):
                        path.rmdir()
                else:
                    path.unlink(missing_ok=True)


def write_mp4(path, images, fps: int) -> Path:
    """Encode ``images`` [T, H, W, 3] uint8 (even H and W) as an h264 mp4 at ``path``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f'expected [T, H, W, 3] images, got {images.shape}')
    video = _VideoFile(Path(path), 0, int(fps), images.shape[1], images.shape[2])
    try:
        video.add(images)
    finally:
        video.close()
    return Path(path)


class _VideoFile:
    """One mp4 file of a session: the frames of consecutive episodes, encoded as they come."""

    def __init__(self, path, chunk_file, fps, height, width):
        self.path, self.chunk_file, self.frames, self.fps = path, chunk_file, 0, fps
        self._container = av.open(str(path), mode='w')
        self._stream = self._container.add_stream(ENCODER, rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
        self._stream.codec_context.gop_size = GOP
        self._stream.options = {'crf': str(CRF), 'preset': 'fast'}

    def add(self, images):
        """Encode ``images`` [T, H, W, 3]; return their (from, to) time span in the file."""
        begin = self.frames
        for image in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')
            frame.pts = self.frames     # time base 1/fps: frame k is shown at k / fps
            self.frames += 1
            self._container.mux(self._stream.encode(frame))
        return begin / self.fps, self.frames / self.fps

    def size(self):
        """Return the bytes written so far (the muxer creates the file at its first packet)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self):
        """Flush the encoder and close the file (idempotent)."""
        if self._container is not None:
            container, self._container = self._container, None
            container.mux(self._stream.encode(None))
            container.close()


class _Stats:
    """Min, max, mean and variance per component, mergeable across episodes and sessions."""

    def __init__(self, count, mean, m2, low, high):
        self.count, self.mean, self.m2, self.low, self.high = count, mean, m2, low, high

    @classmethod
    def of(cls, values, count=None):
        """Return the stats of ``values`` [n, d], weighted as ``count`` samples (default n)."""
        values = np.asarray(values, np.float64)
        count = len(values) if count is None else count
        return cls(count, values.mean(axis=0), values.var(axis=0) * count,
                   values.min(axis=0), values.max(axis=0))

    @classmethod
    def from_json(cls, entry):
        """Return the stats stored in a ``stats.json`` entry."""
        flat = {k: np.asarray(entry[k], np.float64).reshape(-1)
                for k in ('min', 'max', 'mean', 'std')}
        count = int(np.asarray(entry['count']).reshape(-1)[0])
        return cls(count, flat['mean'], flat['std'] ** 2 * count, flat['min'], flat['max'])

    def merge(self, other):
        """Return the stats of both samples together (Chan et al.'s pairwise update)."""
        count = self.count + other.count
        delta = other.mean - self.mean
        return _Stats(count, self.mean + delta * other.count / count,
                      self.m2 + other.m2 + delta ** 2 * self.count * other.count / count,
                      np.minimum(self.low, other.low), np.maximum(self.high, other.high))

    def to_json(self, image=False):
        """Return the ``stats.json`` entry; images get LeRobot's [3, 1, 1] nesting."""
        shape = (-1, 1, 1) if image else (-1,)
        values = {'min': self.low, 'max': self.high, 'mean': self.mean,
                  'std': np.sqrt(self.m2 / self.count)}
        entry = {k: np.asarray(v).reshape(shape).tolist() for k, v in values.items()}
        return {**entry, 'count': [int(self.count)]}


def _image_stats(images):
    """Return per-channel stats in [0, 1] of a few strided frames, weighted per frame."""
    picks = np.unique(np.linspace(0, len(images) - 1, min(len(images), STATS_FRAMES)).round())
    stride = max(1, max(images.shape[1:3]) // STATS_SIDE)
    sample = images[picks.astype(int), ::stride, ::stride].reshape(-1, 3) / 255.0
    # counted in frames, as LeRobot does; frames have equal sizes so merging stays exact
    return _Stats.of(sample, count=len(picks))


def _normalise_features(features, fps):
    if not features:
        raise ValueError('features must name at least one feature')
    out = {}
    for key, spec in features.items():
        dtype, shape = spec.get('dtype'), [int(s) for s in spec.get('shape', ())]
        if key in STANDARD_FEATURES:
            raise ValueError(f"feature '{key}' is reserved: the writer fills it in")
        if dtype == 'video':
            out[key] = _video_feature(key, shape, fps)
        elif dtype in NUMERIC_DTYPES:
            names = None if spec.get('names') is None else [str(n) for n in spec['names']]
            if len(shape) != 1 or shape[0] < 1 or (names is not None and len(names) != shape[0]):
                raise ValueError(f"feature '{key}': shape must be [n] with n names, got "
                                 f'shape {shape} and names {names}')
            out[key] = {'dtype': dtype, 'shape': shape, 'names': names}
        else:
            raise ValueError(f"feature '{key}': unsupported dtype {dtype!r} "
                             f'(video, {", ".join(NUMERIC_DTYPES)})')
    return out


def _video_feature(key, shape, fps):
    if len(shape) != 3 or shape[2] != 3 or shape[0] % 2 or shape[1] % 2 or min(shape) < 2:
        raise ValueError(f"feature '{key}': video shape must be [height, width, 3] with even "
                         f'height and width ({PIX_FMT}), got {shape}')
    return {'dtype': 'video', 'shape': shape, 'names': ['height', 'width', 'channels'],
            'info': {'video.height': shape[0], 'video.width': shape[1], 'video.codec': CODEC,
                     'video.pix_fmt': PIX_FMT, 'video.is_depth_map': False, 'video.fps': fps,
                     'video.channels': 3, 'has_audio': False}}


def _differences(info, features, fps):
    """Return how the dataset's fps and features differ from the given ones."""
    problems = []
    if info.get('fps') != fps:
        problems.append(f'fps {info.get("fps")} in the dataset, {fps} given')
    old = {k: v for k, v in info['features'].items() if k not in STANDARD_FEATURES}
    for key in sorted(set(old) | set(features)):
        if key not in old or key not in features:
            where = 'the dataset' if key in old else 'the given features'
            problems.append(f"feature '{key}' is only in {where}")
            continue
        for field in ('dtype', 'shape', 'names'):
            if old[key].get(field) != features[key].get(field):
                problems.append(f"feature '{key}': {field} {old[key].get(field)} in the "
                                f'dataset, {features[key].get(field)} given')
    return problems


def _checked_length(key, values, spec):
    """Return the frame count of ``values`` after checking them against the feature spec."""
    if not isinstance(values, np.ndarray):
        raise ValueError(f"'{key}': expected a numpy array, got {type(values).__name__}")
    if spec['dtype'] == 'video':
        expected, ok = (spec['shape'], 'uint8'), values.dtype == np.uint8
    else:
        expected = (spec['shape'], spec['dtype'])
        ok = np.can_cast(values.dtype, spec['dtype'], casting='same_kind')
    if not ok or values.ndim != 1 + len(spec['shape']) or list(values.shape[1:]) != spec['shape']:
        raise ValueError(f"'{key}': expected [T, {', '.join(map(str, expected[0]))}] "
                         f'{expected[1]}, got {list(values.shape)} {values.dtype}')
    if len(values) < 1:
        raise ValueError(f"'{key}': an episode needs at least one frame")
    if values.dtype.kind == 'f' and not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(values.reshape(len(values), -1)), 1))[0])
        raise ValueError(f"'{key}': NaN or inf at frame {bad}")
    return len(values)


def _episode_column_type(name):
    if name == 'tasks':
        return pa.list_(pa.string())
    return pa.float64() if name.endswith('timestamp') else pa.int64()


def _arrow_column(values, shape):
    if shape == [1]:
        return pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), shape[0])


def _tasks_table(tasks):
    by_index = sorted((index, task) for task, index in tasks.items())
    table = pa.table({'task_index': pa.array([i for i, _ in by_index], pa.int64()),
                      'task': pa.array([t for _, t in by_index], pa.string())})
    # pandas metadata makes pandas (and so LeRobot) read the task string as the index
    pandas = {'index_columns': ['task'], 'column_indexes': [], 'columns': [
        {'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
         'numpy_type': 'int64', 'metadata': None},
        {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode',
         'numpy_type': 'object', 'metadata': None}],
        'creator': {'library': 'pyarrow', 'version': pa.__version__}}
    return table.replace_schema_metadata({'pandas': json.dumps(pandas)})


def _write_parquet(path, table):
    pq.write_table(table, path)


def _write_json(path, content):
    path.write_text(json.dumps(content, indent=4) + '\n')


def _write_bytes_atomically(path, content):
    temporary = path.with_name(f'.{path.name}.restore{os.getpid()}')
    temporary.write_bytes(content)
    os.replace(temporary, path)


def _numbered_files(folder, suffix):
    """Return ``folder/chunk-*/file-*<suffix>`` sorted by (chunk, file)."""
    found = []
    for path in folder.glob(f'chunk-*/file-*{suffix}'):
        chunk = re.fullmatch(r'chunk-(\d+)', path.parent.name)
        file = re.fullmatch(r'file-(\d+)' + re.escape(suffix), path.name)
        if chunk and file:
            found.append(((int(chunk.group(1)), int(file.group(1))), path))
    return [path for _, path in sorted(found)]


def _next_index(chunk_file):
    chunk, file = chunk_file
    return (chunk + 1, 0) if file + 1 >= CHUNKS_SIZE else (chunk, file + 1)


def _next_free(folder, suffix):
    """Return the (chunk, file) after the last one in ``folder``, (0, 0) for none."""
    files = _numbered_files(folder, suffix)
    if not files:
        return 0, 0
    last = files[-1]
    return _next_index((int(last.parent.name[6:]), int(last.stem[5:])))


# -- validation ----------------------------------------------------------------------------

def _check_meta(root, info, episodes, tasks):
    features = info.get('features') or {}
    problems = [f"info.json: standard feature '{k}' is missing"
                for k in STANDARD_FEATURES if k not in features]
    problems += [f"info.json: feature '{k}' lacks dtype or shape"
                 for k, f in features.items() if 'dtype' not in f or 'shape' not in f]
    if info.get('total_tasks') != len(tasks):
        problems.append(f'total_tasks is {info.get("total_tasks")}, '
                        f'tasks.parquet has {len(tasks)}')
    if not (root / 'meta' / 'stats.json').is_file():
        problems.append('meta/stats.json is missing')
    return problems


def _check_ranges(root, info, episodes, tasks):
    problems, expected = [], 0
    for position, ep in enumerate(episodes):
        index, start, end = ep['episode_index'], ep['dataset_from_index'], ep['dataset_to_index']
        if index != position:
            problems.append(f'episode indices are not 0..N-1: {index} at position {position}')
        if start != expected or end - start != ep['length']:
            problems.append(f'episode {index}: frames [{start}, {end}) with length '
                            f'{ep["length"]}, expected to start at {expected}')
        expected = end
    if len(episodes) != info.get('total_episodes'):
        problems.append(f'total_episodes is {info.get("total_episodes")}, '
                        f'meta/episodes has {len(episodes)}')
    if expected != info.get('total_frames'):
        problems.append(f'total_frames is {info.get("total_frames")}, episodes end at {expected}')
    return problems


def _group(root, episodes, prefix, template, **names):
    """Return {file path: its episodes} for the files named by ``prefix``/chunk,file_index."""
    groups = {}
    for ep in episodes:
        path = root / template.format(chunk_index=ep[f'{prefix}/chunk_index'],
                                      file_index=ep[f'{prefix}/file_index'], **names)
        groups.setdefault(path, []).append(ep)
    return groups


def _check_data(root, info, episodes, tasks):
    needed = ['episode_index', 'index', 'frame_index', 'task_index']
    columns = set(needed) | {k for k, f in info['features'].items()
                             if f.get('dtype') not in ('video', 'image')}
    groups = _group(root, episodes, 'data', info['data_path'])
    problems = [f'{p.relative_to(root)} is not referenced by any episode'
                for p in _numbered_files(root / 'data', '.parquet') if p not in groups]
    for path, eps in groups.items():
        if not path.is_file():
            problems.append(f'{path.relative_to(root)} is missing')
            continue
        missing = sorted(columns - set(pq.read_schema(path).names))
        if missing:
            problems.append(f'{path.relative_to(root)} lacks column(s) {missing}')
            continue
        table = pq.read_table(path, columns=needed)
        col = {name: table.column(name).to_numpy() for name in table.column_names}
        for ep in eps:
            rows = col['episode_index'] == ep['episode_index']
            start, end = ep['dataset_from_index'], ep['dataset_to_index']
            if not (np.array_equal(np.sort(col['index'][rows]), np.arange(start, end))
                    and np.array_equal(np.sort(col['frame_index'][rows]), np.arange(end - start))):
                problems.append(f'episode {ep["episode_index"]}: the rows of '
                                f'{path.relative_to(root)} do not match [{start}, {end})')
        unknown = set(col['episode_index'].tolist()) - {ep['episode_index'] for ep in eps}
        if unknown:
            problems.append(f'{path.relative_to(root)} has rows of episodes {sorted(unknown)} '
                            'that meta/episodes places elsewhere')
        if not set(col['task_index'].tolist()) <= set(tasks):
            problems.append(f'{path.relative_to(root)} has task indices not in tasks.parquet')
    return problems


def _check_videos(root, info, episodes, tasks):
    problems, fps = [], info['fps']
    for key in [k for k, f in info['features'].items() if f.get('dtype') == 'video']:
        groups = _group(root, episodes, f'videos/{key}', info['video_path'], video_key=key)
        for path, eps in groups.items():
            try:
                times = _frame_times(path)
            except (OSError, av.FFmpegError) as exc:
                problems.append(f'{path.relative_to(root)}: {exc}')
                continue
            for ep in eps:
                # half a frame of slack: the episode's frames sit at from + k / fps
                begin = ep[f'videos/{key}/from_timestamp'] - 0.5 / fps
                end = ep[f'videos/{key}/to_timestamp'] - 0.5 / fps
                count = int(np.count_nonzero((times >= begin) & (times < end)))
                if count != ep['length']:
                    problems.append(f'episode {ep["episode_index"]}: {count} frames in '
                                    f'{path.relative_to(root)}, {ep["length"]} rows')
    return problems


def _frame_times(path):
    """Return the presentation times (s) of every frame, from packets (nothing decoded)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return np.array([float(p.pts * stream.time_base) for p in container.demux(stream)
                         if p.size and p.pts is not None])
