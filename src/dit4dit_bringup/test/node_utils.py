"""Helpers for tests that drive a node through its callbacks, in its own rclpy context."""


class Capture:
    """Stands in for a publisher: keeps (a copy of) what the node publishes."""

    def __init__(self, copy=False):
        self.msgs = []
        self.copy = copy

    def publish(self, msg):
        if self.copy:   # nodes that reuse one message object (the bridge's LowCmd)
            from rclpy.serialization import deserialize_message, serialize_message
            msg = deserialize_message(serialize_message(msg), type(msg))
        self.msgs.append(msg)
