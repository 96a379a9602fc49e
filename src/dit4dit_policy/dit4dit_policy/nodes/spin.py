"""The ``main()`` every node shares: init, build, spin, and a clean exit on SIGINT/SIGTERM."""

import rclpy
from rclpy.executors import ExternalShutdownException


def run_node(factory, args=None):
    """Build the node with ``factory()`` and spin it until shutdown; return the exit code."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass   # Jazzy raises ExternalShutdownException on SIGINT; both are a normal stop
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
