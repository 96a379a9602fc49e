"""
Reading rosbag2 directories (mcap or sqlite3) for conversion, in two passes.

Pass 1 (``index_bag``) deserialises every message of the mapped topics once and keeps only what
alignment needs: stamps for the cameras, joint vectors for state and commands, episode events and
task strings. Pass 2 (``iter_images``) decodes only the camera frames that alignment kept, one at
a time, so a long bag never has to sit in memory as images.

Stamps are the message's ``header.stamp`` (the robot's capture time) when it has a non-zero one,
otherwise the bag's receive time, which is also used for a topic the map marks
``use_receive_time``; the receive times are kept too, for the clock check
(``sync.check_clocks``). Any unreadable, truncated or topic-less bag raises ``BagError`` with the
path and the reason.
"""

from dataclasses import dataclass, field
from pathlib import Path
import typing

import numpy as np

from .bag_types import make_typestore
from .feature_map import FeatureMap


class BagError(RuntimeError):
    """A bag cannot be used: unreadable, truncated, missing topics, or inconsistent data."""


@dataclass
class JointSeries:
    """Joint vectors of one topic in the map's joint order (NaN rows are kept and reported)."""

    stamps: typing.List[int] = field(default_factory=list)
    values: typing.List[np.ndarray] = field(default_factory=list)
    receive: typing.List[int] = field(default_factory=list)     # the bag's receive time


@dataclass
class Event:
    """An episode event (dit4dit_msgs/EpisodeEvent)."""

    stamp: int
    kind: int
    episode_index: int
    instruction: str
    task: str


@dataclass
class BagIndex:
    """What pass 1 learnt about one bag."""

    path: Path
    camera_stamps: typing.Dict[str, typing.List[int]]
    camera_receive: typing.Dict[str, typing.List[int]]
    state: JointSeries
    action: JointSeries
    events: typing.List[Event]
    tasks: typing.List[typing.Tuple[int, str]]
    start: int
    end: int


def _open(path: Path, typestore):
    from rosbags.highlevel import AnyReader

    if not path.is_dir() or not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path}: not a rosbag2 directory (no metadata.yaml)')
    try:
        reader = AnyReader([path], default_typestore=typestore)
        reader.open()
    except Exception as exc:  # rosbags raises several types for damaged bags
        raise BagError(f'{path}: cannot open the bag ({type(exc).__name__}: {exc}); a bag cut '
                       'short (recording interrupted) can be recovered up to the damage: python '
                       '-m dit4dit_train.bag_repair BAG --output REPAIRED, then convert '
                       'REPAIRED') from exc
    return reader


def _stamp(msg, log_time: int) -> int:
    header = getattr(msg, 'header', None)
    if header is not None:
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        if ns > 0:
            return ns
    return int(log_time)


class _JointPicker:
    """
    Pick the map's joints out of JointState / JointTrajectory messages, in the map's order.

    By name (the index map is cached per name list); by position (``indices``) for messages
    without names; or, with ``merge``, from several publishers that each send some of the joints
    on one topic: every message updates its joints and a vector is returned once all have been
    seen (each joint its latest value).
    """

    def __init__(self, joints, topic, indices=None, merge=False):
        self.joints, self.topic, self.merge = list(joints), topic, merge
        self.indices = None if indices is None else np.asarray(indices)
        self._cache = {}
        self._latest = np.full(len(self.joints), np.nan)
        self._seen = np.zeros(len(self.joints), bool)

    def __call__(self, names, positions) -> typing.Optional[np.ndarray]:
        positions = np.asarray(positions, dtype=np.float64)
        if self.indices is not None:
            if positions.shape[0] <= self.indices.max():
                raise BagError(f'{self.topic}: position {int(self.indices.max())} selected by '
                               f'indices, the message has {positions.shape[0]} positions')
            return positions[self.indices]
        if positions.shape[0] != len(names):
            raise BagError(f'{self.topic}: {len(names)} names but {positions.shape[0]} positions'
                           + ('' if names else ' (unnamed joints: select them with indices: in '
                              'the feature map)'))
        key = tuple(names)
        if key not in self._cache:
            lookup = {n: i for i, n in enumerate(names)}
            mine = [k for k, j in enumerate(self.joints) if j in lookup]
            if not self.merge and len(mine) < len(self.joints):
                missing = [j for j in self.joints if j not in lookup]
                raise BagError(
                    f'{self.topic}: joints {", ".join(missing)} are not in the message (it has '
                    f'{", ".join(names) or "no names"}; unnamed joints: select them with '
                    'indices:; several publishers with different joints: merge: true)')
            self._cache[key] = (np.array(mine, int),
                                np.array([lookup[self.joints[k]] for k in mine], int))
        into, take = self._cache[key]
        if not self.merge:
            return positions[take]
        self._latest[into] = positions[take]
        self._seen[into] = True
        return self._latest.copy() if self._seen.all() else None


def _joint_vector(msg, picker):
    """Return the picked joints of a message, or None (no point, or joints still missing)."""
    if hasattr(msg, 'points'):            # trajectory_msgs/JointTrajectory: its first point
        if not msg.points:
            return None
        return picker(list(msg.joint_names), msg.points[0].positions)
    return picker(list(msg.name), msg.position)


def index_bag(path, fmap: FeatureMap, typestore=None) -> BagIndex:
    """Run pass 1 over one bag directory."""
    path = Path(path)
    typestore = typestore or make_typestore()
    reader = _open(path, typestore)
    try:
        topics = {c.topic for c in reader.connections}
        cameras = {cam.topic: name for name, cam in fmap.cameras.items()}
        missing = [t for t in list(cameras) + [fmap.state.topic] if t not in topics]
        if fmap.action.source == 'command' and fmap.action.topic not in topics:
            missing.append(fmap.action.topic)
        if missing:
            raise BagError(f'{path}: topics not in the bag: {", ".join(missing)} (it has: '
                           f'{", ".join(sorted(topics)) or "no topics"})')
        wanted = set(cameras) | {fmap.state.topic, fmap.episodes.events_topic,
                                 fmap.episodes.task_topic}
        if fmap.action.source == 'command':
            wanted.add(fmap.action.topic)
        conns = [c for c in reader.connections if c.topic in wanted]
        state_pick = _JointPicker(fmap.state.joints, fmap.state.topic, fmap.state.indices,
                                  fmap.state.merge)
        action_pick = _JointPicker(fmap.action_joints, fmap.action.topic, fmap.action.indices,
                                   fmap.action.merge)
        index = BagIndex(path, {name: [] for name in fmap.cameras},
                         {name: [] for name in fmap.cameras}, JointSeries(), JointSeries(),
                         [], [], 0, 0)
        receive_only = {cam.topic for cam in fmap.cameras.values() if cam.use_receive_time}
        if fmap.state.use_receive_time:
            receive_only.add(fmap.state.topic)
        if fmap.action.use_receive_time:
            receive_only.add(fmap.action.topic)
        first = last = None
        for conn, log_time, raw in reader.messages(connections=conns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f'{path}: cannot decode a {conn.msgtype} on {conn.topic} '
                               f'({exc})') from exc
            stamp = int(log_time) if conn.topic in receive_only else _stamp(msg, log_time)
            first = stamp if first is None else min(first, stamp)
            last = stamp if last is None else max(last, stamp)
            if conn.topic in cameras:
                index.camera_stamps[cameras[conn.topic]].append(stamp)
                index.camera_receive[cameras[conn.topic]].append(int(log_time))
            elif conn.topic == fmap.state.topic:
                vec = _joint_vector(msg, state_pick)
                if vec is not None:
                    index.state.stamps.append(stamp)
                    index.state.values.append(vec)
                    index.state.receive.append(int(log_time))
            elif conn.topic == fmap.action.topic and fmap.action.source == 'command':
                vec = _joint_vector(msg, action_pick)
                if vec is not None:
                    index.action.stamps.append(stamp)
                    index.action.values.append(vec)
                    index.action.receive.append(int(log_time))
            elif conn.topic == fmap.episodes.events_topic:
                index.events.append(Event(stamp, int(msg.event), int(msg.episode_index),
                                          str(msg.instruction), str(msg.task)))
            elif conn.topic == fmap.episodes.task_topic:
                index.tasks.append((int(log_time), str(msg.data)))
    except BagError:
        raise
    except Exception as exc:   # truncated files surface while iterating
        raise BagError(f'{path}: reading failed ({type(exc).__name__}: {exc})') from exc
    finally:
        reader.close()
    if not index.state.stamps:
        raise BagError(f'{path}: no complete joint vector on {fmap.state.topic}' + (
            ' (merge: some joints were never published)' if fmap.state.merge else ''))
    if not index.camera_stamps[fmap.reference]:
        raise BagError(f'{path}: no messages on the reference camera '
                       f'{fmap.cameras[fmap.reference].topic}')
    index.start, index.end = first, last
    index.events.sort(key=lambda e: e.stamp)
    return index


class FrameError(typing.NamedTuple):
    """A camera message that could not be decoded (see ``iter_images``)."""

    reason: str


def decode_camera(msg, msgtype: str, camera) -> np.ndarray:
    """Return a camera message as (H, W, 3) uint8 RGB, resized as the camera's map says."""
    import cv2
    from dit4dit_common.image import compressed_to_rgb, depth_to_rgb, image_to_rgb

    if msgtype.endswith('CompressedImage'):
        rgb = compressed_to_rgb(msg)
    elif camera.depth_range_m is not None:
        rgb = depth_to_rgb(msg, tuple(camera.depth_range_m))
    else:
        rgb = image_to_rgb(msg)
    size = camera.resize
    if size is not None and rgb.shape[:2] != tuple(size):
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return rgb


def iter_images(path, fmap: FeatureMap, wanted: typing.Dict[str, typing.Set[int]],
                typestore=None):
    """
    Run pass 2: yield (camera name, ordinal, RGB or FrameError) for the wanted camera messages.

    Messages come in bag order, one at a time (nothing is accumulated here); ordinals count each
    camera's messages as pass 1 did. A frame that cannot be decoded yields a FrameError with the
    reason; the caller applies the camera's ``on_bad_frame`` policy.
    """
    from dit4dit_common.image import ImageFormatError

    path = Path(path)
    typestore = typestore or make_typestore()
    by_topic = {cam.topic: name for name, cam in fmap.cameras.items()}
    counters = dict.fromkeys(fmap.cameras, 0)
    reader = _open(path, typestore)
    try:
        conns = [c for c in reader.connections if c.topic in by_topic]
        for conn, _, raw in reader.messages(connections=conns):
            name = by_topic[conn.topic]
            ordinal = counters[name]
            counters[name] += 1
            if ordinal not in wanted.get(name, ()):
                continue
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                image = decode_camera(msg, conn.msgtype, fmap.cameras[name])
            except (ImageFormatError, ValueError) as exc:
                image = FrameError(f'{conn.topic} frame {ordinal}: {exc}')
            yield name, ordinal, image
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f'{path}: reading images failed ({type(exc).__name__}: {exc})') from exc
    finally:
        reader.close()
