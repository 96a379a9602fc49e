"""rclpy nodes of dit4dit_bringup (the only modules of the package that import ROS)."""
