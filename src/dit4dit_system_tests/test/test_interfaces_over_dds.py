"""
Every dit4dit_msgs interface and Unitree's LowCmd/LowState cross a process boundary over DDS.

A peer process (dds_echo_peer.py) echoes each message back and answers each service; every field
of every message, nested ones included, is set to a distinctive value and must come back equal.
"""

import json
import os
from pathlib import Path
import random
import subprocess
import sys
import time

from dds_echo_peer import expected_response
from interface_utils import fill, message_class, to_plain
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

pytestmark = pytest.mark.dds

PREFIX = f'/dit4dit_test_{os.getpid()}'
MESSAGES = [
    'dit4dit_msgs/msg/PolicyStatus',
    'dit4dit_msgs/msg/ExecutorStatus',
    'dit4dit_msgs/msg/EpisodeEvent',
    'unitree_hg/msg/LowCmd',
    'unitree_hg/msg/LowState',
    'unitree_hg/msg/HandCmd',
    'unitree_hg/msg/HandState',
    'unitree_api/msg/Request',
    'unitree_api/msg/Response',
]
SERVICES = ['dit4dit_msgs/srv/SetTask', 'dit4dit_msgs/srv/ResetEpisode']


def _topic(type_name, direction):
    return f'{PREFIX}/{type_name.replace("/", "_")}/{direction}'


@pytest.fixture(scope='module')
def node():
    rclpy.init()
    node = rclpy.create_node('interfaces_over_dds_test')
    spec = [['msg', t, _topic(t, 'out'), _topic(t, 'back')] for t in MESSAGES]
    spec += [['srv', t, _topic(t, 'srv')] for t in SERVICES]
    peer = subprocess.Popen([sys.executable, str(Path(__file__).with_name('dds_echo_peer.py')),
                             json.dumps(spec)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent)
    try:
        assert peer.stdout.readline().strip() == 'ready', 'peer process did not start'
        yield node
    finally:
        peer.terminate()
        try:
            assert peer.wait(timeout=10) == 0, 'peer process did not exit cleanly'
        finally:
            peer.kill()
            node.destroy_node()
            rclpy.shutdown()


def _spin_until(node, done, timeout, action=None, every=0.2):
    deadline = time.monotonic() + timeout
    last = 0.0
    while not done() and time.monotonic() < deadline:
        if action is not None and time.monotonic() - last > every:
            action()
            last = time.monotonic()
        rclpy.spin_once(node, timeout_sec=0.05)
    return done()


@pytest.mark.parametrize('type_name', MESSAGES)
def test_message_round_trip_between_processes(node, type_name):
    cls = message_class(type_name)
    sent = fill(cls(), random.Random(type_name), sequence_length=7)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received = []
    pub = node.create_publisher(cls, _topic(type_name, 'out'), qos)
    sub = node.create_subscription(cls, _topic(type_name, 'back'), received.append, qos)
    try:
        # Publishing repeatedly until the echo returns covers discovery in both directions.
        assert _spin_until(node, lambda: received, 30, action=lambda: pub.publish(sent)), (
            f'no echo of {type_name} within 30 s')
        assert to_plain(received[0]) == to_plain(sent)
    finally:
        node.destroy_publisher(pub)
        node.destroy_subscription(sub)


@pytest.mark.parametrize('type_name', SERVICES)
def test_service_call_between_processes(node, type_name):
    cls = message_class(type_name)
    client = node.create_client(cls, _topic(type_name, 'srv'))
    try:
        assert _spin_until(node, client.service_is_ready, 30), f'{type_name} server not found'
        request = fill(cls.Request(), random.Random(type_name))
        future = client.call_async(request)
        assert _spin_until(node, future.done, 30), f'{type_name}: no response within 30 s'
        assert to_plain(future.result()) == to_plain(expected_response(cls, request))
    finally:
        node.destroy_client(client)
