"""
``bag_recorder``: record live topics to a rosbag2 bag on machines without ``ros2 bag``.

    ros2 run dit4dit_train bag_recorder --ros-args -p preset:=g1 -p output:=demos/run_001
    python -m dit4dit_train.nodes.recorder --ros-args -p topics:=[/joint_states] -p output:=b1

Each listed topic's type is learned from the ROS graph; the node subscribes with ``raw=True``
(the serialized CDR bytes, never deserialized) and the QoS of the preset, and a writer thread
writes the bytes with ``rosbags`` (mcap or sqlite3), stamped with the node clock's receive time as
``ros2 bag record`` does. ``max_duration_s`` or a signal ends the recording, whatever the signals
(one SIGINT, two, SIGTERM: ``dit4dit_common.runner``): subscriptions stop, the queue is flushed,
the bag is closed (``metadata.yaml`` complete, readable by the converter) and a one-line summary
logged. A failed write stops the recording (exit code 1). The presets, the writer and the summary
are ROS-free, in ``dit4dit_train.recording``.
"""

from dataclasses import replace
from functools import partial
import importlib
import sys
import time

from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..bag_types import make_typestore
from ..recording import (
    bag_qos,
    BagWriter,
    check_storage,
    check_topic_name,
    CLOSE_BUDGET_S,
    default_output_name,
    default_topic_spec,
    format_summary,
    load_preset,
    RecordingError,
    spec_qos,
    STORAGES,
)

# Every parameter is read once, at start.
PARAMETERS = (
    Param('output', '', 'Bag directory to create; it must not exist, its parent must. Default: '
          'rosbag2_<date>-<time> in the working directory.'),
    Param('storage', 'mcap', 'Storage plugin.', choices=tuple(STORAGES)),
    Param('topics', [''], 'Topics to record ([""]: the enabled topics of preset). QoS comes from '
          'the preset entry of the same name, else best effort for sensor types and reliable '
          'otherwise.'),
    Param('preset', '', 'Recording preset: a packaged name (g1, sim) or a path to a YAML file '
          'listing topics with reliability, durability and depth.'),
    Param('max_duration_s', 0.0, 'Stop after this many seconds; 0 records until shutdown.',
          low=0.0),
    Param('discovery_timeout_s', 5.0, 'Wait this long for each listed topic to appear in the '
          'graph; a topic still missing then is warned about (and recorded if it appears '
          'later).', low=0.0),
)
DISCOVERY_PERIOD_S = 0.1
BACKLOG_WARN_ITEMS = 2000  # queued, unwritten messages before the disk is reported too slow
BACKLOG_WARN_EVERY_S = 10.0


def message_class(msgtype):
    """Return the Python class of ``pkg/msg/Name`` (or ``pkg/srv/Name_Event``), or None."""
    try:
        package, kind, name = msgtype.split('/')
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ValueError, ImportError, AttributeError):
        return None


def _offered_qos(info):
    """Return the rosbags Qos of one publisher's TopicEndpointInfo."""
    q = info.qos_profile
    return bag_qos(int(q.reliability), int(q.durability), q.depth, history=int(q.history),
                   deadline_ns=q.deadline.nanoseconds, lifespan_ns=q.lifespan.nanoseconds,
                   liveliness=int(q.liveliness),
                   liveliness_lease_ns=q.liveliness_lease_duration.nanoseconds,
                   avoid_ros_namespace_conventions=q.avoid_ros_namespace_conventions)


class BagRecorder(Node):
    """Subscribe raw to the listed topics as they appear and write them to a new bag."""

    shutdown_budget_s = CLOSE_BUDGET_S

    def __init__(self, typestore=None, **kwargs):
        """Read and check the parameters and create the bag; raise RecordingError if invalid."""
        super().__init__('bag_recorder', **kwargs)
        p = declare(self, PARAMETERS)
        self._wanted = self._read_topics(p)  # {topic: TopicSpec or None (QoS from its type)}
        self._max_duration_s = p['max_duration_s']
        self._discovery_timeout_s = p['discovery_timeout_s']
        storage = check_storage(p['storage'])
        output = p['output'].strip() or default_output_name()
        self._writer = BagWriter(output, storage,
                                 typestore if typestore is not None else make_typestore())
        self._writer.start()
        self._skipped = {}
        self._warned_missing = False
        self._started = time.monotonic()
        self.stats = None              # RecordingStats once the bag is closed
        self.summary = ''
        self.get_logger().info(
            f'recording to {self._writer.path} [{storage}]: {", ".join(self._wanted)}; waiting up '
            f'to {self._discovery_timeout_s:g} s for each topic to appear'
            + (f', stopping after {self._max_duration_s:g} s' if self._max_duration_s else ''))
        self._discovery_timer = self.create_timer(DISCOVERY_PERIOD_S, self._discover)
        self._backlog_warned = 0.0
        self._backlog_timer = self.create_timer(1.0, self._check_backlog)
        self._discover()

    # -- parameters --------------------------------------------------------------------------

    def _read_topics(self, p):
        topics = [t for t in p['topics'] if t.strip()]
        preset = load_preset(p['preset']) if p['preset'].strip() else None
        if not topics:
            if preset is None:
                raise RecordingError('nothing to record: set topics (e.g. -p '
                                     'topics:=[/joint_states]) or preset (g1, sim or a YAML path)')
            return {t.name: t for t in preset.enabled_topics()}
        wanted = {}
        for topic in topics:
            name = check_topic_name(topic.strip(), 'parameter topics')
            if name in wanted:
                raise RecordingError(f'parameter topics lists {name} more than once')
            wanted[name] = preset.topic(name) if preset is not None else None
        return wanted

    # -- discovery ---------------------------------------------------------------------------

    def missing(self):
        """Return the listed topics that have not appeared (nor been skipped) yet."""
        return [t for t in self._wanted if t not in self._writer.topics and t not in self._skipped]

    def _skip(self, topic, reason):
        self._skipped[topic] = reason
        self.get_logger().warning(f'not recording {topic}: {reason}')

    def _discover(self):
        missing = self.missing()
        if missing:
            graph = dict(self.get_topic_names_and_types())
            for topic in missing:
                # Like ros2 bag record: a topic counts once it has a publisher (a subscriber
                # alone names it too), so that its QoS can be matched to the publishers'.
                if topic in graph and self.count_publishers(topic) > 0:
                    self._subscribe(topic, graph[topic])
            missing = self.missing()
        elapsed = time.monotonic() - self._started
        if missing and not self._warned_missing and elapsed >= self._discovery_timeout_s:
            self._warned_missing = True
            self.get_logger().warning(
                f'not seen after {self._discovery_timeout_s:g} s (still watching): '
                f'{", ".join(missing)}')
        if not missing:
            self._discovery_timer.cancel()
        elif self._warned_missing:
            # Keep watching at a gentler pace for topics that appear late.
            self._discovery_timer.timer_period_ns = int(1e9)

    def _subscribe(self, topic, types):
        if len(types) != 1:
            self._skip(topic, f'published with several types ({", ".join(types)})')
            return
        msgtype = types[0]
        spec = self._wanted[topic] or default_topic_spec(topic, msgtype)
        if spec.msgtype != msgtype:
            self.get_logger().warning(
                f'{topic}: the preset says {spec.msgtype}, the graph says {msgtype}; recording '
                f'{msgtype}')
        if not self._writer.knows(msgtype):
            self._skip(topic, f'type {msgtype} unknown to the typestore (install its package)')
            return
        cls = message_class(msgtype)
        if cls is None:
            self._skip(topic, f'type {msgtype} has no Python message class here')
            return
        publishers = self.get_publishers_info_by_topic(topic)
        spec = self._compatible(spec, publishers)
        offered = [_offered_qos(p) for p in publishers] or [spec_qos(spec)]
        self._writer.add_topic(topic, msgtype, offered)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=spec.depth,
            reliability=ReliabilityPolicy.get_from_short_key(spec.reliability),
            durability=DurabilityPolicy.get_from_short_key(spec.durability))
        self.create_subscription(cls, topic, partial(self._on_message, topic), qos, raw=True)
        self.get_logger().info(f'recording {topic} [{msgtype}] {spec.reliability} '
                               f'{spec.durability} depth {spec.depth}')

    def _compatible(self, spec, publishers):
        """Return ``spec`` relaxed so that it matches every current publisher, warning if so."""
        reliability, durability = spec.reliability, spec.durability
        if reliability == 'reliable' and any(
                p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers):
            reliability = 'best_effort'
        if durability == 'transient_local' and any(
                p.qos_profile.durability == DurabilityPolicy.VOLATILE for p in publishers):
            durability = 'volatile'
        if (reliability, durability) == (spec.reliability, spec.durability):
            return spec
        self.get_logger().warning(
            f'{spec.name}: a publisher offers less than {spec.reliability}/{spec.durability}; '
            f'subscribing {reliability}/{durability} so that its messages are recorded')
        return replace(spec, reliability=reliability, durability=durability)

    def _on_message(self, topic, data):
        self._writer.write(topic, self.get_clock().now().nanoseconds, data)

    def _check_backlog(self):
        pending = self._writer.pending()
        now = time.monotonic()
        if pending > BACKLOG_WARN_ITEMS and now - self._backlog_warned > BACKLOG_WARN_EVERY_S:
            self._backlog_warned = now
            self.get_logger().warning(
                f'{pending} messages wait to be written: the disk is slower than the topics '
                '(memory grows until it catches up)')

    # -- end ---------------------------------------------------------------------------------

    @property
    def failed(self) -> bool:
        """Tell whether a write failed: nothing more is written, the run should stop."""
        return bool(self._writer.error)

    @property
    def error(self) -> str:
        """Return the first write error, or '' while there is none."""
        return self._writer.error

    def done(self) -> bool:
        """Return True once ``max_duration_s`` has passed or writing failed."""
        return self.failed or (bool(self._max_duration_s) and
                               time.monotonic() - self._started >= self._max_duration_s)

    @property
    def finished(self) -> bool:
        """Return True once the bag is closed."""
        return self.stats is not None

    @property
    def exit_code(self) -> int:
        """Return 1 if the recording failed (or was never closed), else 0."""
        return 0 if self.stats is not None and not self.stats.error else 1

    def request_shutdown(self):
        """Stop subscribing, flush and close the bag, log the summary (idempotent)."""
        if self.stats is not None:
            return
        self._discovery_timer.cancel()
        self._backlog_timer.cancel()
        for sub in list(self.subscriptions):
            self.destroy_subscription(sub)
        self.stats = self._writer.close()
        self.summary = format_summary(self.stats, self.missing(), self._skipped)
        (self.get_logger().error if self.stats.error else self.get_logger().info)(self.summary)

    def destroy_node(self):
        """Close the bag if nobody did (an error path), then destroy the node."""
        self.request_shutdown()
        return super().destroy_node()


def main(args=None):
    """Run the recorder until a signal or max_duration_s; return the exit status."""
    return run_node(BagRecorder, args, until=lambda node: node.done(), name='bag_recorder')


if __name__ == '__main__':
    sys.exit(main())
