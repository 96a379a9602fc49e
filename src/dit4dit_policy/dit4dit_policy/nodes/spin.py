"""What every node shares: parameter declaration, and ``main()`` (init, build, spin, exit)."""

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException


def declare_parameters(node, table) -> dict:
    """Declare ``(name, default, description)`` rows on ``node``; return {name: value}."""
    for name, default, text in table:
        node.declare_parameter(name, default, ParameterDescriptor(description=text))
    return {name: node.get_parameter(name).value for name, _, _ in table}


def run_node(factory, args=None, until=None):
    """
    Build the node with ``factory()`` and spin it until shutdown; return the exit code.

    ``until(node)``, checked between callbacks, ends the spin early when it returns True.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        if until is None:
            rclpy.spin(node)
        else:
            while rclpy.ok() and not until(node):
                rclpy.spin_once(node, timeout_sec=0.1)
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
