"""rclpy node of dit4dit_g1: g1_bridge."""
