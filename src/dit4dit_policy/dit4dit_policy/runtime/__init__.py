"""
ROS-free runtime logic: robot profiles, chunk execution, safety limits.

Used by the nodes; importable and testable without rclpy.
"""

from .chunk_executor import Chunk, ChunkExecutor, ExecutorConfig, STRATEGIES
from .safety import JointLimits, SafetyFilter

__all__ = ['Chunk', 'ChunkExecutor', 'ExecutorConfig', 'JointLimits', 'SafetyFilter', 'STRATEGIES']
