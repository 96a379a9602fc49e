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
dataset exactly as it was. Statistics follow LeRobot 0.6 (see ``lerobot_stats``): per episode in
``meta/episodes`` (``stats/<feature>/<stat>``) and aggregated in ``meta/stats.json``.

Episodes stream: ``begin_episode`` returns an ``EpisodeStream`` whose frames are encoded as they
are added, so an episode's length never bounds memory (the writer holds one frame per camera and
the numeric columns of the current data file). Each frame has a ``timestamp`` (seconds from the
episode's first frame, on the 1/fps grid, with gaps where frames were dropped): the video frame
of a row is presented at ``from_timestamp + timestamp``, which is how LeRobot finds it.
"""

import json
import os
from pathlib import Path
import re

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import lerobot_stats

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
PRESET = 'fast'
# the encoder for each codec a dataset may already use (appending follows the dataset's codec)
ENCODERS = {'h264': 'libx264', 'hevc': 'libx265', 'av1': 'libsvtav1'}

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
    [height, width, 3] (even sizes, for yuv420p), or a numeric dtype with shape [n]. Frames are
    encoded as they are added (``begin_episode`` / ``add_episode``); the other columns are kept in
    memory until a data file is full or the session is finalized. Use it as a context manager:
    leaving the block finalizes, an exception removes everything the session wrote.
    """

    def __init__(self, root, fps: int, features: dict, robot_type: str = '',
                 append: bool = False):
        """Start a session on ``root``; ``append`` adds to an existing dataset (``--append``)."""
        if int(fps) != fps or fps <= 0:
            raise ValueError(f'fps must be a positive integer, got {fps}')
        self.root = Path(root)
        self.fps = int(fps)
        self.features = _normalise_features(features, self.fps)
        self.video_keys = [k for k, f in self.features.items() if f['dtype'] == 'video']
        self._info = {'robot_type': robot_type or None,
                      'features': {**self.features, **STANDARD_FEATURES}}
        self._first_episode = self._first_frame = 0
        self._tasks, self._base_stats, self._episode_schema = {}, {}, None
        self.notes = []             # what the session did that a user should know
        if append and (self.root / 'meta' / 'info.json').is_file():
            self._load_existing()
        elif self.root.exists() and any(self.root.iterdir()):
            raise FileExistsError(
                f'{self.root} is not empty; add --append (append=True) to add episodes to it, '
                'or choose a new --output' if not append
                else f'{self.root} is not empty and not a LeRobot dataset (no meta/info.json)')
        self._data_file = _next_free(self.root / 'data', '.parquet')
        self._video_file = {k: _next_free(self.root / 'videos' / k, '.mp4')
                            for k in self.video_keys}
        self._videos = {}           # video key -> open _VideoFile of this session
        self._columns = {}          # column -> arrays buffered for the current data file
        self._buffered = 0          # bytes in self._columns
        self._episodes = []         # this session's episode rows
        self._episode_stats = []    # this session's per-episode stats, feature -> stats
        self._frames = 0            # frames added in this session
        self._created = []          # files and directories this session made, in order
        self._new_files = []        # data, video and episode files (for the summary)
        self._restore = {}          # meta path -> its bytes before the swap
        self._state = 'open'
        self._stream = None         # the EpisodeStream being written
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

    def begin_episode(self, task: str) -> 'EpisodeStream':
        """Start an episode whose frames are added (and encoded) one at a time."""
        self._check_open()
        if self._stream is not None:
            raise RuntimeError('an episode is already being written; finish it first')
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f'task must be a non-empty string, got {task!r}')
        self._stream = EpisodeStream(self, task)
        return self._stream

    def add_episode(self, frames: dict, task: str, timestamps=None) -> int:
        """
        Validate and add one whole episode (feature key -> array [T, ...]); return its index.

        ``timestamps`` (seconds from the first frame, on the 1/fps grid) default to k / fps.
        """
        self._check_open()
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f'task must be a non-empty string, got {task!r}')
        length = self._validate(frames)
        if timestamps is None:
            timestamps = np.arange(length) / self.fps
        if len(timestamps) != length:
            raise ValueError(f'{len(timestamps)} timestamps for {length} frames')
        stream = self.begin_episode(task)
        for k in range(length):
            stream.add_frame({key: frames[key][k] for key in self.video_keys}, timestamps[k])
        return stream.finish({key: frames[key] for key in self.features
                              if key not in self.video_keys})

    def finalize(self) -> dict:
        """Write the session's remaining files and swap in the meta; return a summary."""
        if self._state == 'done':
            return self._summary
        self._check_open()
        if self._stream is not None:
            self._abort()
            raise RuntimeError('finalize() with an unfinished episode: the session was removed')
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
            'total_frames': self._first_frame + self._frames, 'notes': list(self.notes),
            'files': [p.relative_to(self.root).as_posix() for p in self._new_files]}
        return self._summary

    # -- session state ---------------------------------------------------------------------

    def _load_existing(self):
        info = read_info(self.root)
        problems = _differences(info, self.features, self.fps)
        if problems:
            raise ValueError(f'cannot append to {self.root}: ' + '; '.join(problems))
        for key in self.video_keys:      # new videos follow the dataset's codec and settings
            self.features[key]['info'] = _append_video_info(key, info['features'][key])
            info['features'][key] = {**info['features'][key], 'info': self.features[key]['info']}
        self._info = info
        self._first_episode = int(info['total_episodes'])
        self._first_frame = int(info['total_frames'])
        self._tasks = {task: index for index, task in read_tasks(self.root).items()}
        stats_path = self.root / 'meta' / 'stats.json'
        if stats_path.is_file():
            self._base_stats = {key: lerobot_stats.from_json(entry) for key, entry in
                                json.loads(stats_path.read_text()).items()}
        files = _numbered_files(self.root / 'meta' / 'episodes', '.parquet')
        if files:
            self._episode_schema = pq.read_schema(files[-1])
            if not any(n.startswith('stats/') for n in self._episode_schema.names):
                self.notes.append('meta/episodes of the dataset has no per-episode stats '
                                  'columns; the new episodes follow its schema without them')

    def _check_open(self):
        if self._state != 'open':
            raise RuntimeError(f'this LeRobotWriter session is already {self._state}')

    def _validate(self, frames):
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

    def _finish_episode(self, stream, columns, ticks, video_spans):
        """Add the numeric columns of a streamed episode; return its index."""
        length = len(ticks)
        index = self._first_episode + len(self._episodes)
        start = self._first_frame + self._frames
        task_index = self._tasks.setdefault(
            stream.task, max(self._tasks.values(), default=-1) + 1)
        row = {'episode_index': index, 'tasks': [stream.task], 'length': length,
               'data/chunk_index': self._data_file[0], 'data/file_index': self._data_file[1],
               'dataset_from_index': start, 'dataset_to_index': start + length}
        for key in self.video_keys:
            video, (begin, end) = self._videos[key], video_spans[key]
            row.update({f'videos/{key}/chunk_index': video.chunk_file[0],
                        f'videos/{key}/file_index': video.chunk_file[1],
                        f'videos/{key}/from_timestamp': begin,
                        f'videos/{key}/to_timestamp': end})
        columns = dict(columns)
        columns.update({
            'timestamp': (np.asarray(ticks) / self.fps).astype(np.float32),
            'frame_index': np.arange(length, dtype=np.int64),
            'episode_index': np.full(length, index, np.int64),
            'index': np.arange(start, start + length, dtype=np.int64),
            'task_index': np.full(length, task_index, np.int64)})
        stats = {key: stream.image_stats[key].stats() for key in self.video_keys}
        for key, values in columns.items():
            values = values.astype(self._info['features'][key]['dtype'])
            self._columns.setdefault(key, []).append(values)
            self._buffered += values.nbytes
            stats[key] = lerobot_stats.vector_stats(values.reshape(length, -1))
        row.update(lerobot_stats.episode_columns(
            {key: stats[key] for key in self._info['features'] if key in stats}))
        self._episodes.append(row)
        self._episode_stats.append(stats)
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
            video = self._videos[key] = _VideoFile(path, (c, f), self.fps, height, width,
                                                   self.features[key]['info'])
        return video

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
        staged = [(final, self._stage(final, write, content)) for final, write, content in (
            (episodes, _write_parquet, self._episodes_table()),
            (meta / 'tasks.parquet', _write_parquet, _tasks_table(self._tasks)),
            (meta / 'stats.json', _write_json, self._dataset_stats()),
            (meta / 'info.json', _write_json, self._final_info()))]
        for final, temporary in staged:       # info.json last: it is what readers trust
            old = final.read_bytes() if final.exists() else None
            os.replace(temporary, final)
            if old is None:
                self._created.append(final)
            else:
                self._restore[final] = old

    def _dataset_stats(self):
        """Return ``stats.json``: the dataset's before this session with every new episode's."""
        out = {}
        for key in self._info['features']:
            parts = [self._base_stats.get(key)] + [s.get(key) for s in self._episode_stats]
            merged = lerobot_stats.aggregate([p for p in parts if p])
            if merged:
                out[key] = lerobot_stats.to_json(merged)
        return out

    def _stage(self, final, write, content):
        """Write ``content`` next to ``final`` under a temporary name; return that name."""
        self._make_dirs(final.parent)
        temporary = final.with_name(f'.{final.name}.tmp{os.getpid()}')
        self._created.append(temporary)
        write(temporary, content)
        return temporary

    def _episodes_table(self):
        base = episode_columns(self._info)
        stats = [k for k in self._episodes[0] if k.startswith('stats/')]
        names = base + stats + ['meta/episodes/chunk_index', 'meta/episodes/file_index']
        table = pa.Table.from_pydict({n: [row[n] for row in self._episodes] for n in names})
        table = table.cast(pa.schema([(n, _episode_column_type(n)) if not n.startswith('stats/')
                                      else table.schema.field(n) for n in names]))
        if self._episode_schema is None:
            return table
        # appending: the new file has the dataset's columns and types (readers concatenate files)
        missing = [n for n in self._episode_schema.names if n not in names]
        if missing:
            raise ValueError(f'{self.root}: meta/episodes has column(s) this writer cannot fill: '
                             f'{", ".join(missing[:6])}{" ..." if len(missing) > 6 else ""}')
        return table.select(self._episode_schema.names).cast(self._episode_schema)

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


class EpisodeStream:
    """
    One episode being written: ``add_frame`` per frame (encoded at once), then ``finish``.

    Any error while it is open removes the writer's whole session (a half-written episode would
    corrupt the session's video files), as ``add_episode`` does.
    """

    def __init__(self, writer: LeRobotWriter, task: str):
        """Start an episode of ``writer`` (use ``writer.begin_episode``)."""
        self.writer, self.task = writer, task
        self.ticks = []
        self.image_stats = {key: lerobot_stats.ImageStats() for key in writer.video_keys}

    def __len__(self) -> int:
        """Return the frames added so far."""
        return len(self.ticks)

    def add_frame(self, images: dict, timestamp: float):
        """Encode one frame of every camera (key -> (H, W, 3) uint8) at ``timestamp`` seconds."""
        writer = self.writer
        try:
            tick = self._tick(timestamp)
            if set(images) != set(writer.video_keys):
                raise ValueError(f'frame: cameras {sorted(images)}, the dataset has '
                                 f'{sorted(writer.video_keys)}')
            for key in writer.video_keys:
                image = images[key]
                shape = writer.features[key]['shape']
                if not (isinstance(image, np.ndarray) and image.dtype == np.uint8
                        and list(image.shape) == shape):
                    raise ValueError(f"'{key}': expected a {shape} uint8 frame, got "
                                     f'{getattr(image, "shape", type(image).__name__)} '
                                     f'{getattr(image, "dtype", "")}')
            for key in writer.video_keys:
                video = writer._video(key) if not self.ticks else writer._videos[key]
                if not self.ticks:
                    video.begin_episode()
                video.add(images[key], tick)
                self.image_stats[key].add(images[key])
        except BaseException:
            writer._stream = None
            writer._abort()
            raise
        self.ticks.append(tick)

    def cancel(self):
        """Drop an episode to which no frame was added (e.g. every frame was undecodable)."""
        if self.ticks:
            self.writer._abort()
            raise RuntimeError('cancel() after frames were encoded: the session was removed')
        self.writer._stream = None

    def finish(self, columns: dict) -> int:
        """Add the numeric features (key -> [T, n], T = frames added); return the index."""
        writer = self.writer
        try:
            expected = set(writer.features) - set(writer.video_keys)
            if set(columns) != expected:
                raise ValueError(f'finish: numeric feature(s) {sorted(columns)}, expected '
                                 f'{sorted(expected)}')
            if not self.ticks:
                raise ValueError(f"'{self.task}': an episode needs at least one frame")
            for key, values in columns.items():
                if _checked_length(key, values, writer.features[key]) != len(self.ticks):
                    raise ValueError(f"'{key}': {len(values)} rows for {len(self.ticks)} frames")
            spans = {key: writer._videos[key].end_episode() for key in writer.video_keys}
            return writer._finish_episode(self, columns, self.ticks, spans)
        except BaseException:
            writer._abort()
            raise
        finally:
            writer._stream = None

    def _tick(self, timestamp):
        """Return ``timestamp`` as a 1/fps grid index after the previous frame's."""
        fps = self.writer.fps
        value = float(timestamp) * fps
        tick = int(round(value))
        if not np.isfinite(value) or abs(value - tick) > 1e-3 or tick < 0:
            raise ValueError(f'timestamp {timestamp!r}: frames sit on the 1/{fps} s grid '
                             '(k / fps, k >= 0)')
        if self.ticks and tick <= self.ticks[-1]:
            raise ValueError(f'timestamp {timestamp!r} is not after the previous frame '
                             f'({self.ticks[-1] / fps:g} s)')
        if not self.ticks and tick != 0:
            raise ValueError(f'an episode starts at timestamp 0, got {timestamp!r}')
        return tick


def write_mp4(path, images, fps: int) -> Path:
    """Encode ``images`` [T, H, W, 3] uint8 (even H and W) as an h264 mp4 at ``path``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f'expected [T, H, W, 3] images, got {images.shape}')
    video = _VideoFile(Path(path), 0, int(fps), images.shape[1], images.shape[2])
    try:
        video.begin_episode()
        for k, image in enumerate(images):
            video.add(image, k)
        video.end_episode()
    finally:
        video.close()
    return Path(path)


class _VideoFile:
    """
    One mp4 file of a session: the frames of consecutive episodes, encoded as they come.

    Time base 1/fps: an episode starts where the previous one ended (``cursor``); its frame at
    grid tick k is presented at (start + k) / fps, so dropped ticks leave gaps in time.
    """

    def __init__(self, path, chunk_file, fps, height, width, info=None):
        info = info or {}
        codec = info.get('video.codec', CODEC)
        self.path, self.chunk_file, self.fps = path, chunk_file, fps
        self.cursor, self._start, self._last = 0, 0, -1
        self._container = av.open(str(path), mode='w')
        self._stream = self._container.add_stream(ENCODERS.get(codec, ENCODER), rate=fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = info.get('video.pix_fmt', PIX_FMT)
        self._stream.codec_context.gop_size = int(info.get('video.g') or GOP)
        options = {'crf': info.get('video.crf', CRF), 'preset': info.get('video.preset', PRESET)}
        self._stream.options = {k: str(v) for k, v in options.items() if v is not None}

    def begin_episode(self):
        """Start an episode at the end of the previous one."""
        self._start, self._last = self.cursor, -1

    def add(self, image, tick: int):
        """Encode one (H, W, 3) uint8 frame at the episode's grid tick ``tick``."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')
        frame.pts = self._start + int(tick)
        self._last = int(tick)
        self._container.mux(self._stream.encode(frame))

    def end_episode(self):
        """Return the episode's (from, to) time span in the file; the next one starts at to."""
        self.cursor = self._start + self._last + 1
        return self._start / self.fps, self.cursor / self.fps

    def size(self):
        """Return the bytes written so far (the muxer creates the file at its first packet)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self):
        """Flush the encoder and close the file (idempotent)."""
        if self._container is not None:
            container, self._container = self._container, None
            container.mux(self._stream.encode(None))
            container.close()


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
    """Return a video feature with the ``info`` LeRobot 0.6 writes (stream and encoder fields)."""
    if len(shape) != 3 or shape[2] != 3 or shape[0] % 2 or shape[1] % 2 or min(shape) < 2:
        raise ValueError(f"feature '{key}': video shape must be [height, width, 3] with even "
                         f'height and width ({PIX_FMT}), got {shape}')
    return {'dtype': 'video', 'shape': shape, 'names': ['height', 'width', 'channels'],
            'info': {'video.height': shape[0], 'video.width': shape[1], 'video.codec': CODEC,
                     'video.pix_fmt': PIX_FMT, 'video.fps': fps, 'video.channels': 3,
                     'has_audio': False, 'video.g': GOP, 'video.crf': CRF,
                     'video.preset': PRESET, 'video.fast_decode': 0,
                     'video.video_backend': 'pyav', 'video.extra_options': {},
                     'is_depth_map': False}}


def _append_video_info(key, existing):
    """Return the ``info`` of a video feature being appended to (its codec is followed)."""
    info = dict(existing.get('info') or existing.get('video_info') or {})
    if 'video.is_depth_map' in info:        # the suite's older name for LeRobot's key
        info.setdefault('is_depth_map', info.pop('video.is_depth_map'))
    codec = info.get('video.codec', CODEC)
    if codec not in ENCODERS or info.get('is_depth_map'):
        raise ValueError(f"cannot append to '{key}': its videos are {codec!r}"
                         f"{' depth maps' if info.get('is_depth_map') else ''}; this writer "
                         f'encodes {", ".join(sorted(ENCODERS))} colour video')
    if info.get('video.pix_fmt', PIX_FMT) != PIX_FMT:
        raise ValueError(f"cannot append to '{key}': pix_fmt {info['video.pix_fmt']!r}, this "
                         f'writer encodes {PIX_FMT}')
    return info


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
