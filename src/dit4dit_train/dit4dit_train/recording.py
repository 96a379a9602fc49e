"""
Recording presets and a threaded rosbag2 writer, without rclpy.

A preset (``config/record_g1.yaml``, ``config/record_sim.yaml``) lists the topics of a
demonstration recording with the QoS to subscribe with. It is the one source of truth for both
ways of recording:

- ``ros2 bag record`` on a full ROS 2 install: ``ros2_bag_record_command`` turns the preset into
  the command line and a ``--qos-profile-overrides-path`` YAML file;
- the ``bag_recorder`` node (``dit4dit_train.nodes.recorder``) on machines with ROS 2 from wheels
  and no rosbag2: ``recorder_parameters`` turns it into the node's parameters.

``BagWriter`` takes serialized (CDR) messages from any thread and writes them to a rosbag2 bag
(mcap or sqlite3) with ``rosbags`` from one background thread, so that subscription callbacks only
enqueue.
"""

import argparse
from dataclasses import dataclass, field
import os
from pathlib import Path
import queue
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time

from dit4dit_common import topics as registry
from dit4dit_common.paths import share_dir
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
import yaml

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
RELIABILITIES = ('reliable', 'best_effort')
DURABILITIES = ('volatile', 'transient_local')
PRESET_KEYS = ('description', 'topics')
TOPIC_KEYS = ('topic', 'name', 'type', 'reliability', 'durability', 'depth', 'enabled')
REQUIRED_TOPIC_KEYS = ('reliability', 'durability', 'depth')

# Topics given without a preset entry: sensor streams are subscribed best effort (this matches
# reliable and best-effort publishers alike), everything else reliable with a deep queue.
SENSOR_TYPES = frozenset({
    'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/CameraInfo',
    'sensor_msgs/msg/JointState', 'sensor_msgs/msg/Imu', 'sensor_msgs/msg/PointCloud2',
    'sensor_msgs/msg/LaserScan', 'unitree_hg/msg/LowState', 'unitree_hg/msg/HandState',
})
SENSOR_DEPTH = 10
DEFAULT_DEPTH = 100
# Time a recorder gets after a stop request to flush its queue and close the bag (the launch
# files' SIGTERM timeout for a recorder, and the bag_recorder node's stop budget).
CLOSE_BUDGET_S = 30.0

# rmw's "infinite" duration as rosbag2 writes it in metadata.yaml.
_INFINITE = QosTime(2147483647, 4294967295)
_TOPIC_RE = re.compile(r'^(/[A-Za-z_][A-Za-z0-9_]*)+$')
_TYPE_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*/(msg|srv|action)/[A-Za-z][A-Za-z0-9_]*$')
_PRESET_NAME_RE = re.compile(r'^[A-Za-z0-9_]+$')


class PresetError(ValueError):
    """A recording preset is invalid or cannot be found (see the message)."""


class RecordingError(ValueError):
    """A recording cannot start: bad output path or storage (see the message)."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic to record and the QoS to subscribe to it with."""

    name: str
    msgtype: str
    reliability: str = 'reliable'
    durability: str = 'volatile'
    depth: int = DEFAULT_DEPTH
    enabled: bool = True

    def qos_override(self):
        """Return this topic's entry of a ``ros2 bag record`` QoS overrides file."""
        return {'history': 'keep_last', 'depth': self.depth, 'reliability': self.reliability,
                'durability': self.durability}


@dataclass(frozen=True)
class Preset:
    """A recording preset: the topics of a recording, loaded from YAML."""

    topics: tuple
    description: str = ''
    path: Path = None

    def enabled_topics(self):
        """Return the specs of the topics to record (``enabled: true``), in file order."""
        return [t for t in self.topics if t.enabled]

    def topic(self, name):
        """Return the spec of topic ``name`` (enabled or not), or None if the preset lacks it."""
        for spec in self.topics:
            if spec.name == name:
                return spec
        return None


def _check(cond, msg, error=PresetError):
    if not cond:
        raise error(msg)


def _refuse_unknown_keys(data, valid, where):
    unknown = sorted(str(k) for k in data if k not in valid)
    _check(not unknown, f'{where}: unknown key(s) {", ".join(unknown)}; valid keys: '
           f'{", ".join(valid)}')


def check_topic_name(name, where='topic'):
    """Return ``name`` made absolute ('/' prepended); raise PresetError if it is not valid."""
    _check(isinstance(name, str) and name, f'{where}: a topic name must be a non-empty string')
    full = name if name.startswith('/') else '/' + name
    _check(_TOPIC_RE.match(full) is not None,
           f'{where}: {name!r} is not a valid ROS topic name (e.g. /camera/image_raw)')
    return full


def _parse_topic(data, where):
    _check(isinstance(data, dict), f'{where}: expected a mapping with keys '
           f'{", ".join(TOPIC_KEYS)}')
    _refuse_unknown_keys(data, TOPIC_KEYS, where)
    missing = [k for k in REQUIRED_TOPIC_KEYS if k not in data]
    _check(not missing, f'{where}: missing key(s) {", ".join(missing)}')
    if 'topic' in data:
        # A registry key: name and type are the registry's (dit4dit_common.topics).
        _check('name' not in data and 'type' not in data,
               f'{where}: give a registry topic or a name and type, not both')
        try:
            entry = registry.topic(data['topic'])
        except registry.UnknownTopic as exc:
            raise PresetError(f'{where}: {exc}') from None
        name, msgtype = entry.name, entry.msgtype
    else:
        _check('name' in data and 'type' in data,
               f'{where}: give a registry topic (topic: joint_states) or a name and a type')
        name, msgtype = check_topic_name(data['name'], where), data['type']
    where = f'{where} ({name})'
    _check(isinstance(msgtype, str) and _TYPE_RE.match(msgtype) is not None,
           f'{where}: type {msgtype!r} is not a ROS 2 type name like sensor_msgs/msg/Image')
    _check(data['reliability'] in RELIABILITIES,
           f'{where}: reliability {data["reliability"]!r} is not one of '
           f'{", ".join(RELIABILITIES)}')
    _check(data['durability'] in DURABILITIES,
           f'{where}: durability {data["durability"]!r} is not one of {", ".join(DURABILITIES)}')
    depth = data['depth']
    _check(isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1,
           f'{where}: depth must be an integer >= 1, got {depth!r}')
    enabled = data.get('enabled', True)
    _check(isinstance(enabled, bool), f'{where}: enabled must be true or false, got {enabled!r}')
    return TopicSpec(name, msgtype, data['reliability'], data['durability'], depth, enabled)


def parse_preset(data, source='preset'):
    """Return the Preset described by ``data`` (a YAML document); raise PresetError if invalid."""
    _check(isinstance(data, dict), f'{source}: expected a mapping with keys '
           f'{", ".join(PRESET_KEYS)}')
    _refuse_unknown_keys(data, PRESET_KEYS, source)
    _check('topics' in data, f'{source}: missing key topics')
    topics = data['topics']
    _check(isinstance(topics, list) and topics, f'{source}: topics must be a non-empty list')
    specs = tuple(_parse_topic(t, f'{source}: topics[{i}]') for i, t in enumerate(topics))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    _check(not dupes, f'{source}: topic(s) listed more than once: {", ".join(dupes)}')
    _check(any(s.enabled for s in specs), f'{source}: every topic is disabled')
    description = data.get('description', '')
    _check(isinstance(description, str), f'{source}: description must be a string')
    return Preset(topics=specs, description=description.strip())


def preset_dirs():
    """Return the directories searched for packaged presets: installed share/, source tree."""
    installed = share_dir('dit4dit_train', __file__, 'config')
    source = Path(__file__).resolve().parents[1] / 'config'
    return [installed] + ([source] if source != installed else [])


def packaged_presets():
    """Return the names of the packaged presets (``record_<name>.yaml``), sorted."""
    names = set()
    for d in preset_dirs():
        names.update(p.stem[len('record_'):] for p in d.glob('record_*.yaml'))
    return sorted(names)


def resolve_preset(name_or_path):
    """
    Return the path of a preset given by name (``g1`` -> ``record_g1.yaml``) or by path.

    A name is looked up in the installed share/ directories first, then in the source tree.
    """
    text = os.path.expanduser(str(name_or_path))
    _check(text.strip(), 'no preset given (a name such as g1 or sim, or a path to a YAML file)')
    if _PRESET_NAME_RE.match(text):
        for d in preset_dirs():
            path = d / f'record_{text}.yaml'
            if path.is_file():
                return path
        raise PresetError(f'unknown preset {text!r}; packaged: '
                          f'{", ".join(packaged_presets()) or "none"} (or give a path to a YAML '
                          'file)')
    path = Path(text)
    _check(path.is_file(), f'preset file {str(path)!r} does not exist')
    return path


def load_preset(name_or_path):
    """Load and validate a preset by name (``g1``, ``sim``) or path; raise PresetError."""
    path = resolve_preset(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PresetError(f'{path}: {exc}') from exc
    preset = parse_preset(data, str(path))
    return Preset(topics=preset.topics, description=preset.description, path=path.resolve())


def default_topic_spec(name, msgtype):
    """Return the spec of a topic that no preset describes: best effort for sensor types."""
    if msgtype in SENSOR_TYPES:
        return TopicSpec(name, msgtype, 'best_effort', 'volatile', SENSOR_DEPTH)
    return TopicSpec(name, msgtype, 'reliable', 'volatile', DEFAULT_DEPTH)


def qos_overrides(preset):
    """Return the ``ros2 bag record --qos-profile-overrides-path`` document of a preset."""
    return {t.name: t.qos_override() for t in preset.enabled_topics()}


def write_qos_overrides(preset, path):
    """Write the QoS overrides file of ``preset`` to ``path``; return the path."""
    path = Path(path)
    header = (f'# QoS overrides for ros2 bag record, generated from\n'
              f'# {preset.path or "a recording preset"}: edit the preset, not this file.\n')
    path.write_text(header + yaml.safe_dump(qos_overrides(preset), sort_keys=False))
    return path


def check_storage(storage):
    """Return ``storage`` if it is a supported storage plugin; raise RecordingError otherwise."""
    _check(storage in STORAGES, f'storage {storage!r} is not supported; choose one of '
           f'{", ".join(STORAGES)}', RecordingError)
    return storage


def default_output_name(now=None):
    """Return a timestamped bag directory name like ``ros2 bag record``'s default."""
    return time.strftime('rosbag2_%Y_%m_%d-%H_%M_%S', time.localtime(now))


def check_output(output):
    """
    Return the absolute bag directory for ``output``; raise RecordingError if unusable.

    The directory must not exist yet (a recording is never overwritten or appended to) and its
    parent must exist (a typo in a path should not silently create a directory tree).
    """
    _check(isinstance(output, (str, os.PathLike)) and str(output).strip(),
           'output must be a path to a bag directory that does not exist yet', RecordingError)
    path = Path(os.path.expanduser(str(output))).absolute()
    _check(not os.path.lexists(path), f'output {str(path)!r} already exists; refusing to '
           'overwrite a recording (give a new directory path)', RecordingError)
    _check(path.parent.is_dir(), f'the parent directory of output {str(path)!r} does not exist '
           f'({str(path.parent)!r}); create it first', RecordingError)
    return path


def ros2_bag_available(storage='mcap') -> str:
    """Return '' if ``ros2 bag record`` can record ``storage`` here, else what is missing."""
    import importlib.util

    if shutil.which('ros2') is None:
        return 'ros2 is not on PATH (source a ROS 2 install)'
    if importlib.util.find_spec('ros2bag') is None:
        return 'ros2 bag is not installed (apt install ros-$ROS_DISTRO-rosbag2)'
    plugin = f'rosbag2_storage_{"mcap" if storage == "mcap" else "default_plugins"}'
    try:
        from ament_index_python.packages import get_package_prefix, PackageNotFoundError
        try:
            get_package_prefix(plugin)
        except PackageNotFoundError:
            return (f'the {storage} storage plugin ({plugin}) is not installed '
                    f'(apt install ros-$ROS_DISTRO-{plugin.replace("_", "-")})')
    except ImportError:
        return 'ament_index_python is not installed'
    return ''


def ros2_bag_record_command(preset, output, storage='mcap', overrides_path=None):
    """
    Return the ``ros2 bag record`` command line recording ``preset``'s topics to ``output``.

    Writes the QoS overrides file (``overrides_path``, or a new temporary file) that the command
    refers to. Topics are given positionally, which both Humble and Jazzy accept.
    """
    check_storage(storage)
    if overrides_path is None:
        overrides_path = Path(tempfile.mkdtemp(prefix='dit4dit_record_')) / 'qos_overrides.yaml'
    write_qos_overrides(preset, overrides_path)
    return (['ros2', 'bag', 'record', '-s', storage, '-o', str(output),
             '--qos-profile-overrides-path', str(overrides_path)]
            + [t.name for t in preset.enabled_topics()])


def recorder_parameters(preset, output, storage='mcap', max_duration_s=0.0,
                        discovery_timeout_s=5.0):
    """Return the ``bag_recorder`` node's parameters recording ``preset`` to ``output``."""
    check_storage(storage)
    _check(preset.path is not None, 'the preset must be loaded from a file (load_preset) for the '
           'node to read it')
    # No 'topics': the node then records the preset's enabled topics, as ros2 bag record does.
    return {'output': str(output), 'storage': storage, 'preset': str(preset.path),
            'max_duration_s': float(max_duration_s),
            'discovery_timeout_s': float(discovery_timeout_s)}


def _qos_time(ns):
    if ns is None or ns < 0 or ns >= 2**63 - 1:
        return _INFINITE
    sec, nsec = divmod(int(ns), 10**9)
    if sec > _INFINITE.sec:
        return _INFINITE
    return QosTime(sec, nsec)


def _policy(cls, value):
    return cls[value.upper()] if isinstance(value, str) else cls(int(value))


def bag_qos(reliability, durability, depth, history='keep_last', deadline_ns=None,
            lifespan_ns=None, liveliness='automatic', liveliness_lease_ns=None,
            avoid_ros_namespace_conventions=False):
    """
    Return a rosbags ``Qos`` (an offered profile in metadata.yaml) from QoS policies.

    Policies are rmw's short names (``reliable``, ``best_effort``, ``transient_local``, ...) or
    rmw's enum values (as rclpy's policy enums carry them); durations are in ns, None or huge
    meaning infinite.
    """
    return Qos(
        _policy(QosHistory, history), int(depth), _policy(QosReliability, reliability),
        _policy(QosDurability, durability), _qos_time(deadline_ns), _qos_time(lifespan_ns),
        _policy(QosLiveliness, liveliness), _qos_time(liveliness_lease_ns),
        bool(avoid_ros_namespace_conventions))


def spec_qos(spec):
    """Return the rosbags ``Qos`` of a topic spec's subscription."""
    return bag_qos(spec.reliability, spec.durability, spec.depth)


@dataclass
class RecordingStats:
    """What a BagWriter wrote: per-topic counts, payload bytes, timing and the bag's size."""

    path: Path
    storage: str
    counts: dict = field(default_factory=dict)
    types: dict = field(default_factory=dict)
    payload_bytes: int = 0
    size_bytes: int = 0
    duration_s: float = 0.0
    error: str = ''


def _human_bytes(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1024
    return f'{n:.1f} GiB'


def format_summary(stats, missing=(), skipped=None):
    """
    Return the one-line end-of-recording summary.

    ``missing``: listed topics that never appeared; ``skipped``: {topic: reason} of topics that
    appeared but were not recorded (e.g. a type the typestore does not know).
    """
    total = sum(stats.counts.values())
    per_topic = ', '.join(f'{t} {n}' for t, n in stats.counts.items()) or 'no topics'
    line = (f'recorded {total} messages in {stats.duration_s:.1f} s, '
            f'{_human_bytes(stats.size_bytes)} on disk ({_human_bytes(stats.payload_bytes)} '
            f'of messages) to {stats.path} [{stats.storage}]: {per_topic}')
    if missing:
        line += f'; never appeared: {", ".join(missing)}'
    if skipped:
        line += '; skipped: ' + ', '.join(f'{t} ({why})' for t, why in skipped.items())
    if stats.error:
        line += f'; WRITE ERROR: {stats.error}'
    return line


_ADD, _MSG, _STOP = 'add', 'msg', 'stop'


class UnknownTypeError(KeyError):
    """The typestore has no definition of a message type, so the bag cannot describe it."""


class BagWriter:
    """
    Write serialized messages to a new rosbag2 bag from any thread.

    ``add_topic`` and ``write`` only enqueue; one background thread owns the ``rosbags`` Writer
    (sqlite3 connections must stay in the thread that made them) and drains the queue in order,
    so a topic's connection always exists before its first message. ``close`` drains what is
    left, closes the bag (writing ``metadata.yaml``) and returns the RecordingStats.
    """

    def __init__(self, output, storage='mcap', typestore=None):
        """Check ``output`` (must not exist) and ``storage``; the bag is created by ``start``."""
        self.storage = check_storage(storage)
        self.path = check_output(output)
        if typestore is None:
            from .bag_types import make_typestore
            typestore = make_typestore()
        self.typestore = typestore
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._opened = threading.Event()
        self._open_error = None
        self._topics = {}
        self._counts = {}
        self._payload = 0
        self._error = None
        self._started = None
        self._stats = None

    def __enter__(self):
        """Create the bag and start writing."""
        self.start()
        return self

    def __exit__(self, *exc):
        """Close the bag."""
        self.close()

    def start(self, timeout=30.0):
        """Create the bag directory and start the writer thread; raise RecordingError if not."""
        _check(self._thread is None, 'the bag writer was started already', RecordingError)
        self._thread = threading.Thread(target=self._run, name='bag_writer', daemon=True)
        self._thread.start()
        _check(self._opened.wait(timeout), f'timed out opening {self.path}', RecordingError)
        if self._open_error is not None:
            self._thread.join()
            raise RecordingError(f'cannot create bag {str(self.path)!r}: {self._open_error}')
        self._started = time.monotonic()

    def knows(self, msgtype):
        """Return whether the typestore can describe ``msgtype`` in the bag."""
        return msgtype in self.typestore.types

    @property
    def topics(self):
        """Return {topic: message type} of the topics added so far."""
        return dict(self._topics)

    @property
    def error(self):
        """Return the first write error as text ('' while there is none)."""
        return '' if self._error is None else self._error

    def pending(self):
        """Return the approximate number of queued items not yet written."""
        return self._queue.qsize()

    def add_topic(self, topic, msgtype, offered_qos=()):
        """
        Register ``topic`` with ``msgtype`` and its publishers' offered QoS (rosbags ``Qos``).

        Raises UnknownTypeError if the typestore does not know ``msgtype`` and ValueError if the
        topic was added before.
        """
        if not self.knows(msgtype):
            raise UnknownTypeError(msgtype)
        if topic in self._topics:
            raise ValueError(f'topic {topic} was added already')
        self._topics[topic] = msgtype
        self._queue.put((_ADD, topic, msgtype, tuple(offered_qos)))

    def write(self, topic, timestamp_ns, data):
        """Enqueue one serialized message of an added topic, stamped ``timestamp_ns``."""
        self._queue.put((_MSG, topic, int(timestamp_ns), bytes(data)))

    def close(self, timeout=None):
        """Write what is queued, close the bag and return its RecordingStats (idempotent)."""
        if self._stats is not None:
            return self._stats
        duration = 0.0 if self._started is None else time.monotonic() - self._started
        if self._thread is not None and self._open_error is None:
            self._queue.put((_STOP,))
            self._thread.join(timeout)
        size = sum(p.stat().st_size for p in self.path.rglob('*') if p.is_file()) \
            if self.path.is_dir() else 0
        self._stats = RecordingStats(
            path=self.path, storage=self.storage, counts=dict(self._counts),
            types=dict(self._topics), payload_bytes=self._payload, size_bytes=size,
            duration_s=duration, error=self.error)
        return self._stats

    def _run(self):
        try:
            writer = Writer(self.path, version=9, storage_plugin=STORAGES[self.storage])
            writer.open()
        except Exception as exc:  # noqa: B902 - reported to open()'s caller
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        connections = {}
        try:
            while True:
                item = self._queue.get()
                if item[0] == _STOP:
                    break
                if self._error is not None:
                    continue  # keep draining so producers never block; nothing more is written
                try:
                    if item[0] == _ADD:
                        _, topic, msgtype, qos = item
                        connections[topic] = writer.add_connection(
                            topic, msgtype, typestore=self.typestore,
                            serialization_format='cdr', offered_qos_profiles=list(qos))
                        self._counts[topic] = 0
                    else:
                        _, topic, stamp, data = item
                        writer.write(connections[topic], stamp, data)
                        self._counts[topic] += 1
                        self._payload += len(data)
                except Exception as exc:  # noqa: B902 - kept, reported by error and close()
                    self._error = f'{type(exc).__name__}: {exc}'
        finally:
            try:
                writer.close()
            except Exception as exc:  # noqa: B902
                if self._error is None:
                    self._error = f'closing the bag: {type(exc).__name__}: {exc}'


def main(argv=None):
    """Print the ``ros2 bag record`` command line of a preset (writing its QoS overrides file)."""
    parser = argparse.ArgumentParser(
        prog='python -m dit4dit_train.recording',
        description='Print the ros2 bag record command that records the topics of a preset with '
        'their QoS, and write the QoS overrides file it refers to.')
    parser.add_argument('preset', help='packaged preset name (g1, sim) or path to a YAML file')
    parser.add_argument('output', help='bag directory for ros2 bag record to create')
    parser.add_argument('--storage', default='mcap', choices=list(STORAGES))
    parser.add_argument('--overrides', default=None,
                        help='where to write the QoS overrides file (default: a temporary file)')
    args = parser.parse_args(argv)
    try:
        cmd = ros2_bag_record_command(load_preset(args.preset), args.output, args.storage,
                                      args.overrides)
    except (PresetError, RecordingError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(shlex.join(cmd))
    return 0


if __name__ == '__main__':
    sys.exit(main())
