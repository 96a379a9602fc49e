"""
Bags written with the suite's typestore decode with the generated interfaces, and back.

This is what recording (rosbags writer fed by rclpy) and conversion (rosbags reader) rely on: the
typestore built from the installed .msg text must produce the same CDR as rclpy's typesupport.
"""

from pathlib import Path

from dit4dit_train.bag_types import find_message_definitions, make_typestore, missing_packages
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

EpisodeEvent = pytest.importorskip('dit4dit_msgs.msg').EpisodeEvent


def _event(store, index):
    cls = store.types['dit4dit_msgs/msg/EpisodeEvent']
    header = store.types['std_msgs/msg/Header'](
        stamp=store.types['builtin_interfaces/msg/Time'](sec=100 + index, nanosec=5), frame_id='')
    return cls(header=header, event=cls.SUCCESS if index % 2 else cls.START,
               episode_index=index, instruction=f'pick the red cube {index}',
               task='g1_tabletop/reach', initial_state_index=index - 1, message='ünïcode ok')


def test_definitions_come_from_the_installed_packages():
    defs = find_message_definitions()
    assert {'dit4dit_msgs/msg/EpisodeEvent', 'dit4dit_msgs/msg/PolicyStatus',
            'dit4dit_msgs/msg/ExecutorStatus'} <= set(defs)
    assert 'uint8 START=0' in defs['dit4dit_msgs/msg/EpisodeEvent']


def test_missing_packages_are_named(tmp_path):
    assert missing_packages(('dit4dit_msgs', 'no_such_msgs'), prefixes=[tmp_path]) == [
        'dit4dit_msgs', 'no_such_msgs']
    with pytest.raises(LookupError, match='no_such_msgs'):
        make_typestore(packages=('no_such_msgs',), prefixes=[tmp_path], require=('no_such_msgs',))


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_bag_round_trip_matches_rclpy(tmp_path: Path, storage):
    store = make_typestore(require=('dit4dit_msgs',))
    bag = tmp_path / 'bag'
    events = [_event(store, i) for i in range(3)]
    with Writer(bag, version=9, storage_plugin=storage) as writer:
        conn = writer.add_connection('/dit4dit/episode_event', 'dit4dit_msgs/msg/EpisodeEvent',
                                     typestore=store)
        for i, ev in enumerate(events):
            writer.write(conn, (100 + i) * 10**9, store.serialize_cdr(ev, conn.msgtype))
        # rclpy's own serialisation goes into the same bag
        ours = EpisodeEvent(event=EpisodeEvent.ABORT, episode_index=7, instruction='stop',
                            initial_state_index=-1, message='operator')
        writer.write(conn, 200 * 10**9, serialize_message(ours))

    with Reader(bag) as reader:
        raws = [raw for _, _, raw in reader.messages()]
    assert len(raws) == 4
    for ev, raw in zip(events, raws[:3]):
        msg = deserialize_message(raw, EpisodeEvent)
        assert (msg.event, msg.episode_index, msg.instruction, msg.task, msg.initial_state_index,
                msg.message, msg.header.stamp.sec) == (
            ev.event, ev.episode_index, ev.instruction, ev.task, ev.initial_state_index,
            ev.message, ev.header.stamp.sec)
    back = store.deserialize_cdr(raws[3], 'dit4dit_msgs/msg/EpisodeEvent')
    assert (back.event, back.episode_index, back.instruction, back.message) == (
        EpisodeEvent.ABORT, 7, 'stop', 'operator')
