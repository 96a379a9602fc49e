"""
``python -m dit4dit_train.collect_demos``: scripted demonstrations in simulation, as a rosbag.

The runner lives with the nodes (``dit4dit_train.nodes.collect``, it needs rclpy); this name is
the documented entry point.
"""

import sys


def main(argv=None):
    """Run ``dit4dit_train.nodes.collect.main``."""
    from .nodes.collect import main as run
    return run(argv)


if __name__ == '__main__':
    sys.exit(main())
