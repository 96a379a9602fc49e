"""Training side of dit4dit_ros."""

__version__ = '0.1.0'
