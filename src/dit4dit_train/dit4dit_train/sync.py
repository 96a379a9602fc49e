"""
Time alignment of recorded streams to one reference clock, never looking into the future.

One camera is the reference clock. Frames are chosen on a regular grid at the target fps (the
latest reference frame at or before each tick); every other feature of a frame is the latest
message stamped at or before that frame's own stamp, and only if it is at most ``max_age_s`` old.
A frame for which some feature has no such message is dropped, and the reason is counted.

Before any of that, ``check_clocks`` compares each stream's clock with the reference's: the
median of (stamp - bag receive time) tells which clock a topic stamps with, up to its transport
latency. A topic on another clock (a camera stamping with its own uptime), or skewed beyond its
``max_skew_s``, is refused, naming the topic, the offset and the fix; nothing is allocated for it.
"""

from dataclasses import dataclass, field
import typing

import numpy as np


@dataclass
class Stream:
    """Stamps (ns, ascending) and the index of each message's value in the caller's storage."""

    name: str
    stamps: np.ndarray
    max_age_s: float
    receive: typing.Optional[np.ndarray] = None   # bag receive time per message, same order
    topic: str = ''
    max_skew_s: float = float('inf')

    def __post_init__(self):
        """Sort by stamp (bags are in receive order; header stamps may interleave)."""
        self.stamps = np.asarray(self.stamps, dtype=np.int64)
        if self.receive is not None:
            self.receive = np.asarray(self.receive, dtype=np.int64)
            if self.receive.shape != self.stamps.shape:
                raise ValueError(f'{self.name}: {len(self.receive)} receive times for '
                                 f'{len(self.stamps)} stamps')
        self.clock_offset_s = None if self.receive is None or not len(self.stamps) else float(
            np.median(self.stamps - self.receive)) * 1e-9
        self.order = np.argsort(self.stamps, kind='stable')
        self.stamps = self.stamps[self.order]

    @property
    def label(self) -> str:
        """Return the name and topic, for messages."""
        return f'{self.name} ({self.topic})' if self.topic else self.name

    def asof(self, t_ns: int):
        """Return (message index, stamp) of the latest message stamped at or before t, or None."""
        k = int(np.searchsorted(self.stamps, t_ns, side='right')) - 1
        if k < 0:
            return None
        return int(self.order[k]), int(self.stamps[k])


@dataclass
class AlignedFrame:
    """One dataset frame: the reference message and the message chosen for each feature."""

    ref_index: int
    ref_stamp: int
    sources: typing.Dict[str, int]
    source_stamps: typing.Dict[str, int]
    tick: int = 0          # the grid tick it fills: its time is tick / fps from the first tick


@dataclass
class SyncReport:
    """What alignment kept and dropped, and the worst age used per feature."""

    frames_kept: int = 0
    dropped: typing.Dict[str, int] = field(default_factory=dict)
    max_age_s: typing.Dict[str, float] = field(default_factory=dict)
    gaps: typing.Dict[str, float] = field(default_factory=dict)
    warnings: typing.List[str] = field(default_factory=list)

    def drop(self, reason: str, count: int = 1):
        """Count ``count`` dropped frames."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def to_dict(self) -> dict:
        """Return plain data for the JSON report."""
        return {'frames_kept': self.frames_kept, 'frames_dropped': sum(self.dropped.values()),
                'dropped_by_reason': dict(sorted(self.dropped.items())),
                'max_age_s': {k: round(v, 6) for k, v in sorted(self.max_age_s.items())},
                'frame_gaps': self.gaps, 'warnings': list(self.warnings)}


def gap_stats(ticks, fps: float) -> dict:
    """
    Return how the kept frames are spaced: the timeline a dataset's ``timestamp`` column shows.

    ``ticks`` are the grid ticks of the kept frames (ascending). A gap is a step of more than one
    tick (a dropped frame in between); the dataset keeps real time across it.
    """
    ticks = np.asarray(ticks, np.int64)
    steps = np.diff(ticks)
    wide = steps[steps > 1]
    return {'span_s': round(float(ticks[-1] - ticks[0]) / fps, 4) if len(ticks) else 0.0,
            'gaps': int(len(wide)), 'ticks_missing': int((wide - 1).sum()),
            'largest_gap_s': round(float(steps.max()) / fps, 4) if len(steps) else 0.0}


def camera_rate_warning(stream: 'Stream', start_ns: int, end_ns: int, fps: float):
    """Return a warning when ``fps`` exceeds what the camera delivered in [start, end], or ''."""
    inside = stream.stamps[(stream.stamps >= start_ns) & (stream.stamps <= end_ns)]
    if len(inside) < 3:
        return ''
    rate = (len(inside) - 1) / ((inside[-1] - inside[0]) * 1e-9) if inside[-1] > inside[0] \
        else float('inf')
    if fps <= rate * 1.05:
        return ''
    return (f'fps {fps:g} exceeds what the reference camera {stream.label} delivered '
            f'({rate:.1f} frames/s): every tick without a new frame is dropped, so rows are '
            f'uneven in time (their timestamps stay real); choose fps <= {rate:.0f}')


class ClockError(ValueError):
    """Streams that are not on one clock: aligning them would pair the wrong messages."""


def check_clocks(reference: Stream, features: typing.Sequence[Stream]):
    """
    Raise ClockError if a feature's clock offset differs from the reference's by > max_skew_s.

    A stream's offset is the median of its (stamp - receive time); streams without receive times
    are not checked.
    """
    if reference.clock_offset_s is None:
        return
    wrong = []
    for feature in features:
        if feature.clock_offset_s is None:
            continue
        skew = feature.clock_offset_s - reference.clock_offset_s
        if abs(skew) > feature.max_skew_s:
            wrong.append(f'{feature.label} is stamped {_duration(skew)} '
                         f'{"ahead of" if skew > 0 else "behind"} the reference camera '
                         f'{reference.label} (max_skew_s {feature.max_skew_s:g})')
    if wrong:
        raise ClockError(
            '; '.join(wrong) + '. Median stamp minus bag receive time: ' + ', '.join(
                f'{s.label} {s.clock_offset_s:+.3f} s' for s in [reference, *features]
                if s.clock_offset_s is not None) + '. A topic stamped with its own clock: set '
            '`use_receive_time: true` for it in the feature map (its receive time becomes its '
            'stamp); a known, constant skew within bounds: raise its `max_skew_s`.')


def _duration(seconds: float) -> str:
    return f'{abs(seconds):.3f} s' if abs(seconds) < 100 else f'{abs(seconds):.0f} s'


MAX_TICKS = 10_000_000      # 3.8 days at 30 fps: more is a clock problem, not an episode


def grid_ticks(start_ns: int, end_ns: int, fps: float) -> np.ndarray:
    """Return the tick times start, start + 1/fps, ... up to and including end."""
    if fps <= 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    period = 1e9 / fps
    n = int(np.floor((end_ns - start_ns) / period + 1e-9)) + 1
    if n > MAX_TICKS:
        raise ClockError(f'an episode of {(end_ns - start_ns) * 1e-9:.0f} s at {fps:g} fps '
                         f'({n} frames): its stamps are not on one clock')
    return start_ns + np.round(np.arange(max(n, 0)) * period).astype(np.int64)


def align(reference: Stream, features: typing.Sequence[Stream], start_ns: int, end_ns: int,
          fps: float, report: typing.Optional[SyncReport] = None):
    """
    Return the aligned frames of [start_ns, end_ns] at ``fps`` and the report.

    Each tick takes the latest reference message at or before it (within the reference's
    max_age_s, and not the one the previous frame used); each feature then takes its latest
    message at or before that reference stamp, within its max_age_s.
    """
    report = report or SyncReport()
    frames, last_ref = [], None
    for number, tick in enumerate(grid_ticks(start_ns, end_ns, fps)):
        hit = reference.asof(int(tick))
        if hit is None or (tick - hit[1]) * 1e-9 > reference.max_age_s:
            report.drop(f'{reference.name}: no frame within {reference.max_age_s} s')
            continue
        ref_index, ref_stamp = hit
        if ref_index == last_ref:
            report.drop(f'{reference.name}: no new frame since the last tick')
            continue
        sources, stamps, reason = {}, {}, None
        for feature in features:
            found = feature.asof(ref_stamp)
            if found is None:
                reason = f'{feature.name}: no message yet'
            elif (ref_stamp - found[1]) * 1e-9 > feature.max_age_s:
                reason = f'{feature.name}: older than {feature.max_age_s} s'
            if reason:
                break
            sources[feature.name], stamps[feature.name] = found
        if reason:
            report.drop(reason)
            continue
        for name, stamp in stamps.items():
            report.max_age_s[name] = max(report.max_age_s.get(name, 0.0),
                                         (ref_stamp - stamp) * 1e-9)
        last_ref = ref_index
        frames.append(AlignedFrame(ref_index, ref_stamp, sources, stamps, number))
    report.frames_kept += len(frames)
    warning = camera_rate_warning(reference, start_ns, end_ns, fps)
    if warning:
        report.warnings.append(warning)
    return frames, report
