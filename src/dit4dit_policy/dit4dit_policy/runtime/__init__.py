"""
ROS-free runtime logic of the policy side: real-time chunking (inpainting on the executing prefix).

Used by the policy node; importable and testable without rclpy. The executor, its chunk scheduling
and safety filter live in the torch-free ``dit4dit_control`` package.
"""

from .inpainting import InpaintingConfig, PrefixPlanner

__all__ = ['InpaintingConfig', 'PrefixPlanner']
