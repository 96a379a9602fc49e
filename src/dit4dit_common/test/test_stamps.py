"""Stamp conversions are exact in integer nanoseconds and round-trip through the messages."""

from builtin_interfaces.msg import Duration, Time
from dit4dit_common import stamps
import pytest


def test_nanoseconds_are_exact_at_epoch_scale():
    ns = 1_796_361_196_477_665_906
    msg = stamps.time_msg(ns)
    assert isinstance(msg, Time) and stamps.to_ns(msg) == ns
    assert stamps.to_seconds(msg) == pytest.approx(ns * 1e-9)
    # float seconds lose this: the reason stamps are subtracted in integer nanoseconds
    assert int(stamps.to_seconds(msg) * 1e9) != ns


def test_durations():
    d = stamps.duration_msg(0.0666667)
    assert isinstance(d, Duration) and (d.sec, d.nanosec) == (0, 66_666_700)
    assert stamps.to_seconds(stamps.duration_msg(2.5)) == 2.5
    assert stamps.to_ns(Duration(sec=1, nanosec=5)) == 1_000_000_005
