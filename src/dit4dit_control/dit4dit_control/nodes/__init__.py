"""rclpy nodes of dit4dit_control: action_executor and command_ghost."""
