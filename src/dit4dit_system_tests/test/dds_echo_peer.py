"""
A second process for interface tests: echoes messages and answers services over DDS.

    python3 dds_echo_peer.py SPEC_JSON

SPEC_JSON is a list of ["msg", "pkg/msg/Type", in_topic, out_topic] (every message received on
in_topic is published unchanged on out_topic) and ["srv", "pkg/srv/Type", name] (the response is
filled with random values seeded by the request's content, so the caller can predict it). Prints
'ready' once its entities exist; exits cleanly on SIGINT or SIGTERM (rclpy's own handlers).
"""

import json
import random
import sys

from interface_utils import fill, message_class, to_plain
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy


def expected_response(srv_cls, request):
    """Return the response the peer sends for ``request``."""
    seed = json.dumps(to_plain(request), sort_keys=True)
    return fill(srv_cls.Response(), random.Random(seed))


def main():
    spec = json.loads(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node('dds_echo_peer')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    keep = []
    for entry in spec:
        if entry[0] == 'msg':
            _, type_name, topic_in, topic_out = entry
            cls = message_class(type_name)
            pub = node.create_publisher(cls, topic_out, qos)
            keep.append(node.create_subscription(cls, topic_in, pub.publish, qos))
        else:
            _, type_name, name = entry
            cls = message_class(type_name)

            def answer(request, response, cls=cls):
                return expected_response(cls, request)
            keep.append(node.create_service(cls, name, answer))
    print('ready', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGTERM can shut the context down while spin builds its wait set (RCLError): that is
        # still a requested stop; anything raised while the context is valid is a real error.
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
