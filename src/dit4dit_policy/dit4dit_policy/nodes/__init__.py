"""rclpy nodes: thin wrappers that convert messages to core types and call the core."""
