"""
Helpers for the suite's tests (every package's): loopback DDS, an rclpy context, captures.

``loopback()`` keeps a test's DDS participants on this machine and off the default domain (the
packages' conftest files call it before anything imports rclpy); ``context`` is a pytest fixture
(a conftest imports it to use it); ``Capture`` stands in for a publisher so a test can drive a
node through its callbacks and read what it published. ``flake8_errors`` runs ament_flake8
without forking.
"""

import os
from pathlib import Path
import random
import tempfile

import pytest


def loopback():
    """Set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID in 10-99 if none is set."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(10, 99)))


@pytest.fixture
def context():
    """Return a fresh rclpy context, shut down after the test."""
    import rclpy
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


class Capture:
    """Stands in for a publisher: keeps (a copy of) what the node publishes."""

    def __init__(self, copy=False):
        """Keep the messages themselves, or (``copy``) a serialised round trip of each."""
        self.msgs = []
        self.copy = copy

    def publish(self, msg):
        """Record ``msg`` (nodes that reuse one message object need ``copy``)."""
        if self.copy:
            from rclpy.serialization import deserialize_message, serialize_message
            msg = deserialize_message(serialize_message(msg), type(msg))
        self.msgs.append(msg)

    def get_subscription_count(self) -> int:
        """Pretend one subscriber listens (nodes that publish only when someone does)."""
        return 1


def flake8_errors(paths=()):
    """
    Run ament_flake8 (its own configuration) on ``paths`` (default '.') in this process only.

    flake8 otherwise forks a worker pool from the pytest process; once rclpy, torch or MuJoCo have
    started threads there, a forked worker can crash (seen in CI: a segfault inside flake8-quotes)
    and the pool then waits for it forever. Return (rc, errors) as ``main_with_errors`` does.
    """
    from ament_flake8 import main as ament

    base = Path(ament.__file__).parent / 'configuration' / 'ament_flake8.ini'
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / 'ament_flake8.ini'
        config.write_text(base.read_text().rstrip() + '\njobs = 1\n')
        return ament.main_with_errors(argv=['--config', str(config), *paths])
