"""rclpy nodes of dit4dit_sim: sim_bridge and the scripted experts."""
