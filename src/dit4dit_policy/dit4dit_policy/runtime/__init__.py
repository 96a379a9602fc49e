"""
ROS-free runtime logic: robot profiles, chunk execution, safety limits.

Used by the nodes; importable and testable without rclpy.
"""
