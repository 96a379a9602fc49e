"""Alignment never takes a feature from after its frame, and honours max ages (property tests)."""

from dit4dit_train.sync import align, check_clocks, ClockError, grid_ticks, Stream
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

MS = 1_000_000


def _stream(draw_stamps, name, max_age_s):
    return Stream(name, np.array(draw_stamps, dtype=np.int64), max_age_s)


stamps = st.lists(st.integers(min_value=0, max_value=3000 * MS), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(cam=stamps, joints=stamps, cmd=stamps, fps=st.sampled_from([5.0, 10.0, 15.0, 30.0]),
       age=st.floats(min_value=0.005, max_value=0.5))
def test_no_feature_from_the_future_and_within_max_age(cam, joints, cmd, fps, age):
    ref = _stream(cam, 'camera', 0.2)
    feats = [_stream(joints, 'state', age), _stream(cmd, 'action', age)]
    frames, report = align(ref, feats, 0, 3000 * MS, fps)
    seen = set()
    for f in frames:
        assert f.ref_index not in seen            # each camera frame is used at most once
        seen.add(f.ref_index)
        assert f.ref_stamp == cam[f.ref_index]
        for feat, src in (('state', joints), ('action', cmd)):
            stamp = src[f.sources[feat]]
            assert stamp == f.source_stamps[feat]
            assert stamp <= f.ref_stamp                               # never from the future
            assert (f.ref_stamp - stamp) <= age * 1e9 + 1               # within max age
            later = [s for s in src if stamp < s <= f.ref_stamp]
            assert not later                                          # and the latest one
    assert report.frames_kept == len(frames)
    assert len(frames) + sum(report.dropped.values()) == len(grid_ticks(0, 3000 * MS, fps))
    stamps_out = [f.ref_stamp for f in frames]
    assert stamps_out == sorted(stamps_out)


def test_resampling_a_30hz_camera_to_10hz_takes_every_third_frame():
    cam = np.arange(0, 1000 * MS, 33_333_333)
    state = cam - 2 * MS
    frames, report = align(Stream('camera', cam, 0.05), [Stream('state', state, 0.01)],
                           0, 990 * MS, 10.0)
    assert [f.ref_index for f in frames] == list(range(0, 30, 3))
    assert all(f.sources['state'] == f.ref_index for f in frames)
    assert report.max_age_s['state'] == 0.002 and not report.dropped


def test_stale_and_missing_features_drop_frames_with_reasons():
    cam = np.arange(0, 1000 * MS, 100 * MS)
    state = np.array([250 * MS])                           # one message, then silence
    frames, report = align(Stream('camera', cam, 0.05), [Stream('state', state, 0.12)],
                           0, 900 * MS, 10.0)
    assert [f.ref_stamp for f in frames] == [300 * MS]     # the only frame with a fresh state
    assert report.dropped['state: no message yet'] == 3
    assert report.dropped['state: older than 0.12 s'] == 6


def test_out_of_order_stamps_are_sorted():
    cam = np.array([200, 0, 100]) * MS
    state = np.array([150, 50, 190]) * MS
    frames, _ = align(Stream('camera', cam, 0.05), [Stream('state', state, 1.0)], 0, 200 * MS,
                      10.0)
    assert [(f.ref_index, f.sources['state']) for f in frames] == [(2, 1), (0, 2)]


def test_one_shared_clock_passes_whatever_its_offset_and_a_stray_one_is_named():
    """Sim time, or a robot clock 2 s off: every topic shares the offset, nothing to do."""
    receive = np.arange(0, 10**10, 10**8)
    cam = Stream('head', receive + 2 * 10**9 - 5 * 10**6, 0.1, receive, '/cam', 0.5)
    state = Stream('state', receive + 2 * 10**9 - 10**6, 0.1, receive, '/joint_states', 0.5)
    check_clocks(cam, [state])
    odd = Stream('wrist', receive + 600 * 10**9, 0.1, receive, '/wrist', 0.5)
    with pytest.raises(ClockError, match=r'wrist \(/wrist\) is stamped 598 s ahead of the '
                                         r'reference camera head \(/cam\)'):
        check_clocks(cam, [state, odd])
    check_clocks(cam, [Stream('events', [1, 2], 0.1)])        # no receive times: not checked


def test_grid_ticks_refuses_a_span_that_is_a_clock_problem():
    with pytest.raises(ClockError, match='not on one clock'):
        grid_ticks(5_321 * 10**9, 1_796_000_000 * 10**9, 30.0)     # 197 GiB of ticks otherwise
