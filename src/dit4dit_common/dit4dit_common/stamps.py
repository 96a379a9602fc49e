"""
Time stamps: ``builtin_interfaces`` Time/Duration to and from integer nanoseconds or seconds.

One place for the conversions every node needs. Works on any object with ``sec`` and ``nanosec``
(the messages, or rosbags' deserialised ones). Integer nanoseconds are exact: float epoch seconds
have ~0.2 us resolution at 1.8e9 s, too coarse to subtract two stamps of a 30 Hz chunk exactly.
"""

NS_PER_S = 1_000_000_000


def to_ns(stamp) -> int:
    """Return a Time (or Duration) as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def to_seconds(stamp) -> float:
    """Return a Time (or Duration) as float seconds."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def time_msg(ns: int):
    """Return ``builtin_interfaces/Time`` for integer nanoseconds (>= 0)."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def duration_msg(seconds: float):
    """Return ``builtin_interfaces/Duration`` for ``seconds`` (>= 0), rounded to 1 ns."""
    from builtin_interfaces.msg import Duration

    sec, nanosec = divmod(int(round(seconds * NS_PER_S)), NS_PER_S)
    return Duration(sec=sec, nanosec=nanosec)
