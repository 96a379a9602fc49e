"""Thin rclpy nodes of dit4dit_train (the only part of the package that imports rclpy)."""
