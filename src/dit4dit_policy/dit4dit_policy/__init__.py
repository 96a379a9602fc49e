"""DiT4DiT policy."""

__version__ = '0.1.0'
