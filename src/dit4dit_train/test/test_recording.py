"""
Recording presets, the ros2 bag record command line and the threaded bag writer.

ROS-free: no rclpy, no DDS. The launch file that uses them (launch/record_demos.launch.py) is
tested in dit4dit_bringup.
"""

from pathlib import Path
import subprocess
import sys
import threading

from dit4dit_train import recording
from dit4dit_train.bag_types import make_typestore
from dit4dit_train.recording import (
    BagWriter,
    check_output,
    format_summary,
    load_preset,
    parse_preset,
    PresetError,
    qos_overrides,
    recorder_parameters,
    RecordingError,
    ros2_bag_record_command,
    UnknownTypeError,
)
import pytest
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability
import yaml

G1_TOPICS = [
    ('/camera/image_raw', 'sensor_msgs/msg/Image'),
    ('/joint_states', 'sensor_msgs/msg/JointState'),
    ('/dit4dit/joint_command', 'sensor_msgs/msg/JointState'),
    ('/dit4dit/action_chunk', 'trajectory_msgs/msg/JointTrajectory'),
    ('/dit4dit/episode_event', 'dit4dit_msgs/msg/EpisodeEvent'),
    ('/dit4dit/task', 'std_msgs/msg/String'),
    ('/dit4dit/policy_status', 'dit4dit_msgs/msg/PolicyStatus'),
    ('/dit4dit/executor_status', 'dit4dit_msgs/msg/ExecutorStatus'),
    ('/lowstate', 'unitree_hg/msg/LowState'),
]


def _topic(**overrides):
    entry = {'name': '/a', 'type': 'std_msgs/msg/String', 'reliability': 'reliable',
             'durability': 'volatile', 'depth': 10}
    entry.update(overrides)
    return entry


@pytest.fixture(scope='module')
def store():
    return make_typestore()


# -- presets ---------------------------------------------------------------------------------


def test_g1_preset_lists_the_demonstration_topics_with_their_qos():
    preset = load_preset('g1')
    assert [(t.name, t.msgtype) for t in preset.enabled_topics()] == G1_TOPICS
    compressed = preset.topic('/camera/image_raw/compressed')
    assert compressed.msgtype == 'sensor_msgs/msg/CompressedImage' and not compressed.enabled
    qos = {t.name: (t.reliability, t.durability) for t in preset.topics}
    for sensor in ('/camera/image_raw', '/camera/image_raw/compressed', '/joint_states',
                   '/lowstate'):
        assert qos[sensor] == ('best_effort', 'volatile'), sensor
    for reliable in ('/dit4dit/joint_command', '/dit4dit/action_chunk', '/dit4dit/episode_event',
                     '/dit4dit/task', '/dit4dit/policy_status', '/dit4dit/executor_status'):
        assert qos[reliable][0] == 'reliable', reliable
    assert preset.topic('/dit4dit/episode_event').depth == 100
    assert all(t.depth >= 1 for t in preset.topics)


def test_sim_preset_is_g1_without_lowstate():
    g1, sim = load_preset('g1'), load_preset('sim')
    assert list(sim.topics) == [t for t in g1.topics if t.name != '/lowstate']


def test_presets_name_registry_topics_or_explicit_ones():
    from dit4dit_common.topics import TOPICS
    preset = parse_preset({'topics': [
        {'topic': 'joint_command', 'reliability': 'reliable', 'durability': 'volatile',
         'depth': 5}, _topic(name='/my/extra')]})
    command, extra = preset.topics
    assert (command.name, command.msgtype) == (TOPICS['joint_command'].name,
                                               TOPICS['joint_command'].msgtype)
    assert extra.name == '/my/extra'
    for data, message in (
            ({'topic': 'chunks', 'reliability': 'reliable', 'durability': 'volatile',
              'depth': 5}, "unknown topic key 'chunks'"),
            (_topic(topic='task'), 'a registry topic or a name and type, not both'),
            ({'name': '/a', 'reliability': 'reliable', 'durability': 'volatile', 'depth': 5},
             'a registry topic .* or a name and a type')):
        with pytest.raises(PresetError, match=message):
            parse_preset({'topics': [data]})


def test_preset_by_path_and_unknown_name(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text(yaml.safe_dump({'topics': [_topic(name='b/c')]}))
    preset = load_preset(path)
    assert preset.path == path.resolve() and preset.topics[0].name == '/b/c'
    with pytest.raises(PresetError, match=r"unknown preset 'nope'; packaged: .*g1.*sim"):
        load_preset('nope')
    with pytest.raises(PresetError, match='does not exist'):
        load_preset(tmp_path / 'missing.yaml')
    path.write_text('topics: [unclosed')
    with pytest.raises(PresetError, match='mine.yaml'):
        load_preset(path)


@pytest.mark.parametrize('data, message', [
    ({'topics': [_topic()], 'storage': 'mcap'},
     r'unknown key\(s\) storage; valid keys: description, topics'),
    ({'topics': [_topic(qos='x')]},
     r'topics\[0\]: unknown key\(s\) qos; valid keys: topic, name, type, reliability, '
     r'durability, depth, enabled'),
    ({'topics': [{'name': '/a', 'type': 'std_msgs/msg/String'}]},
     r'missing key\(s\) reliability, durability, depth'),
    ({'topics': [_topic(reliability='sometimes')]},
     r"reliability 'sometimes' is not one of reliable, best_effort"),
    ({'topics': [_topic(durability='forever')]},
     r"durability 'forever' is not one of volatile, transient_local"),
    ({'topics': [_topic(depth=0)]}, r'depth must be an integer >= 1'),
    ({'topics': [_topic(depth=True)]}, r'depth must be an integer >= 1'),
    ({'topics': [_topic(type='String')]}, r"type 'String' is not a ROS 2 type name"),
    ({'topics': [_topic(name='/a b')]}, r"'/a b' is not a valid ROS topic name"),
    ({'topics': [_topic(enabled='yes')]}, r'enabled must be true or false'),
    ({'topics': [_topic(), _topic(depth=3)]}, r'listed more than once: /a'),
    ({'topics': [_topic(enabled=False)]}, r'every topic is disabled'),
    ({'topics': []}, r'topics must be a non-empty list'),
    ({'description': 'no topics'}, r'missing key topics'),
    (['/a'], r'expected a mapping'),
])
def test_invalid_presets_are_refused_with_the_reason(data, message):
    with pytest.raises(PresetError, match=message):
        parse_preset(data)


# -- one source of truth: ros2 bag record and the node ------------------------------------------


def test_ros2_bag_record_command_is_exact(tmp_path):
    preset = load_preset('g1')
    out, overrides = str(tmp_path / 'bag'), tmp_path / 'qos.yaml'
    cmd = ros2_bag_record_command(preset, out, 'mcap', overrides)
    assert cmd == ['ros2', 'bag', 'record', '-s', 'mcap', '-o', out,
                   '--qos-profile-overrides-path', str(overrides),
                   '/camera/image_raw', '/joint_states', '/dit4dit/joint_command',
                   '/dit4dit/action_chunk', '/dit4dit/episode_event', '/dit4dit/task',
                   '/dit4dit/policy_status', '/dit4dit/executor_status', '/lowstate']
    written = yaml.safe_load(overrides.read_text())
    assert written == qos_overrides(preset)
    assert list(written) == cmd[9:]  # every recorded topic has its override, none other
    assert written['/camera/image_raw'] == {
        'history': 'keep_last', 'depth': 10, 'reliability': 'best_effort',
        'durability': 'volatile'}
    assert written['/dit4dit/episode_event'] == {
        'history': 'keep_last', 'depth': 100, 'reliability': 'reliable',
        'durability': 'volatile'}
    assert not tmp_path.joinpath('bag').exists()  # ros2 bag record creates it


def test_ros2_bag_record_command_sqlite3_and_temporary_overrides():
    preset = load_preset('sim')
    cmd = ros2_bag_record_command(preset, 'out', 'sqlite3')
    assert cmd[:7] == ['ros2', 'bag', 'record', '-s', 'sqlite3', '-o', 'out']
    overrides = Path(cmd[8])
    try:
        assert yaml.safe_load(overrides.read_text()) == qos_overrides(preset)
        assert cmd[9:] == [t.name for t in preset.enabled_topics()]
        assert '/dit4dit/executor_status' in cmd and '/lowstate' not in cmd
    finally:
        overrides.unlink()
        overrides.parent.rmdir()
    with pytest.raises(RecordingError, match="storage 'zip' is not supported; choose one of "
                       'mcap, sqlite3'):
        ros2_bag_record_command(preset, 'out', 'zip')


def test_command_line_prints_the_ros2_bag_command(tmp_path, capsys):
    overrides = tmp_path / 'q.yaml'
    assert recording.main(['sim', 'my bag', '--overrides', str(overrides)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("ros2 bag record -s mcap -o 'my bag' --qos-profile-overrides-path ")
    assert printed.endswith(' /dit4dit/policy_status /dit4dit/executor_status')
    assert yaml.safe_load(overrides.read_text()) == qos_overrides(load_preset('sim'))
    assert recording.main(['nope', 'x']) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_recorder_parameters_point_the_node_at_the_same_preset():
    preset = load_preset('g1')
    params = recorder_parameters(preset, '/data/run_1', 'sqlite3', max_duration_s=60)
    assert params == {'output': '/data/run_1', 'storage': 'sqlite3', 'preset': str(preset.path),
                      'max_duration_s': 60.0, 'discovery_timeout_s': 5.0}
    assert load_preset(params['preset']) == preset
    with pytest.raises(PresetError, match='loaded from a file'):
        recorder_parameters(parse_preset({'topics': [_topic()]}), 'x')


def test_output_must_be_new_with_an_existing_parent(tmp_path):
    assert check_output(tmp_path / 'new') == tmp_path / 'new'
    with pytest.raises(RecordingError, match='already exists; refusing to overwrite'):
        check_output(tmp_path)
    with pytest.raises(RecordingError, match='parent directory .* does not exist'):
        check_output(tmp_path / 'missing' / 'bag')
    with pytest.raises(RecordingError, match='output must be a path'):
        check_output('')


def test_default_qos_by_type():
    assert recording.default_topic_spec('/c', 'sensor_msgs/msg/Image').reliability == \
        'best_effort'
    events = recording.default_topic_spec('/e', 'dit4dit_msgs/msg/EpisodeEvent')
    assert (events.reliability, events.durability, events.depth) == ('reliable', 'volatile', 100)


def test_recording_imports_without_rclpy():
    probe = ('import sys\n'
             "sys.modules['rclpy'] = None\n"
             'import dit4dit_train.recording\n')
    res = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr


# -- the writer ----------------------------------------------------------------------------------


def _serialized_strings(store, n, prefix):
    cls = store.types['std_msgs/msg/String']
    return [bytes(store.serialize_cdr(cls(data=f'{prefix}{i}'), 'std_msgs/msg/String'))
            for i in range(n)]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_writer_round_trip_from_several_threads(tmp_path, store, storage):
    out = tmp_path / 'bag'
    qos = recording.bag_qos('best_effort', 'volatile', 10)
    with BagWriter(out, storage, store) as writer:
        writer.add_topic('/a', 'std_msgs/msg/String', [qos])
        writer.add_topic('/b', 'std_msgs/msg/String')
        payloads = {'/a': _serialized_strings(store, 200, 'a'),
                    '/b': _serialized_strings(store, 150, 'b')}

        def produce(topic):
            for i, data in enumerate(payloads[topic]):
                writer.write(topic, 1_000_000_000 + i * 1000, data)

        threads = [threading.Thread(target=produce, args=(t,)) for t in payloads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A topic may be added at any time, also after messages of others were queued.
        writer.add_topic('/late', 'dit4dit_msgs/msg/EpisodeEvent')
        with pytest.raises(UnknownTypeError):
            writer.add_topic('/u', 'no_such_pkg/msg/Thing')
        with pytest.raises(ValueError, match='added already'):
            writer.add_topic('/a', 'std_msgs/msg/String')
    stats = writer.close()
    assert stats.counts == {'/a': 200, '/b': 150, '/late': 0} and not stats.error
    assert stats.payload_bytes == sum(len(d) for p in payloads.values() for d in p)
    assert stats.size_bytes > stats.payload_bytes / 2
    meta = yaml.safe_load((out / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    counts = {t['topic_metadata']['name']: t['message_count']
              for t in meta['topics_with_message_count']}
    assert counts == {'/a': 200, '/b': 150, '/late': 0}
    assert meta['storage_identifier'] == storage
    with AnyReader([out], default_typestore=store) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert conns['/a'].ext.offered_qos_profiles[0].reliability == QosReliability.BEST_EFFORT
        assert conns['/a'].ext.offered_qos_profiles[0].durability == QosDurability.VOLATILE
        got = [(c.topic, t, reader.deserialize(raw, c.msgtype).data)
               for c, t, raw in reader.messages(connections=[conns['/a']])]
    assert [g[2] for g in got] == [f'a{i}' for i in range(200)]
    assert [g[1] for g in got] == [1_000_000_000 + i * 1000 for i in range(200)]


def test_bag_writer_refuses_bad_output_and_storage(tmp_path, store):
    with pytest.raises(RecordingError, match='already exists'):
        BagWriter(tmp_path, 'mcap', store)
    with pytest.raises(RecordingError, match='not supported'):
        BagWriter(tmp_path / 'x', 'rosbag1', store)


def test_bag_writer_reports_a_write_error_and_keeps_draining(tmp_path, store):
    writer = BagWriter(tmp_path / 'bag', 'mcap', store)
    writer.start()
    writer.add_topic('/a', 'std_msgs/msg/String')
    writer.write('/not_added', 1, b'\0\1\0\0')  # fails in the writer thread
    for data in _serialized_strings(store, 5, 'x'):
        writer.write('/a', 2, data)
    stats = writer.close()
    assert 'KeyError' in stats.error and '/not_added' in stats.error
    assert stats.counts == {'/a': 0}
    assert 'WRITE ERROR' in format_summary(stats)


def test_summary_is_one_line_with_counts_missing_and_skipped(tmp_path):
    stats = recording.RecordingStats(
        path=tmp_path / 'b', storage='mcap', counts={'/cam': 60, '/ev': 2}, payload_bytes=553_000,
        size_bytes=2 * 1024 * 1024, duration_s=2.04)
    line = format_summary(stats, missing=['/lowstate'],
                          skipped={'/x': 'type a/msg/B unknown to the typestore'})
    assert '\n' not in line
    assert line.startswith('recorded 62 messages in 2.0 s, 2.0 MiB on disk (540.0 KiB of '
                           f'messages) to {tmp_path / "b"} [mcap]: /cam 60, /ev 2')
    assert line.endswith('; never appeared: /lowstate; skipped: /x (type a/msg/B unknown to the '
                         'typestore)')
