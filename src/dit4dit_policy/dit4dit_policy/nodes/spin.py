"""What every node shares: parameter declaration, and ``main()`` (init, build, spin, exit)."""

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException


def declare_parameters(node, table) -> dict:
    """Declare ``(name, default, description)`` rows on ``node``; return {name: value}."""
    for name, default, text in table:
        node.declare_parameter(name, default, ParameterDescriptor(description=text))
    return {name: node.get_parameter(name).value for name, _, _ in table}


def run_node(factory, args=None):
    """Build the node with ``factory()`` and spin it until shutdown; return the exit code."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass   # Jazzy raises ExternalShutdownException on SIGINT; both are a normal stop
    except Exception:
        # a signal can shut the context down while spin builds its wait set (RCLError): still a
        # requested stop; anything raised while the context is valid is a real error
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
