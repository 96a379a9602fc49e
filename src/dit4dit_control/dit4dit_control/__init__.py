"""
Torch-free, safety-critical control of dit4dit_ros.

The chunk executor, the safety filter, the executor state machine (ROS-free) and the
``action_executor`` and ``command_ghost`` nodes.
"""
