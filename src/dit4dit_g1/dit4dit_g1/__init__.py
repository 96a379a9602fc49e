"""
The Unitree G1 driver of dit4dit_ros.

The one G1 description, LowCmd/HandCmd packing with the CRC, the bridge state machine
(ROS-free) and the ``g1_bridge`` node.
"""
