"""
Convert rosbag2 recordings to a LeRobot v3 dataset: ``python -m dit4dit_train.convert``.

    python -m dit4dit_train.convert BAG_DIR [BAG_DIR ...] --map g1_dex3 --output DATASET [--append]

Every bag is indexed and aligned before anything is written (a corrupt, truncated or topic-less
bag, or a topic on another clock, stops the run with its reason and leaves an existing dataset
untouched). Episodes are cut at the suite's episode events (START .. SUCCESS/FAILURE/ABORT); a bag
without events is one episode. Rows follow the reference camera resampled to the map's fps; every
other feature is the latest message at or before the frame, within its max age (see sync.py); the
``timestamp`` column keeps real time across dropped ticks. Then each bag is read once more and its
frames are decoded, assembled into rows and encoded as they come (``RowAssembler``), so memory
does not grow with an episode's length. A JSON sync report per episode (kept and dropped frames
with reasons, the largest age used per feature, frame gaps, warnings) is written next to the
dataset's metadata, and a one-line summary ends the run. The map's format: docs/feature-maps.md.
"""

import argparse
from dataclasses import dataclass, field
import json
from pathlib import Path
import sys
import time
import typing

import numpy as np

from .bag_source import BagError, BagIndex, FrameError, index_bag, iter_images
from .bag_types import make_typestore
from .feature_map import FeatureMap, load_feature_map
from .sync import align, check_clocks, ClockError, gap_stats, Stream, SyncReport

EVENT_START, EVENT_SUCCESS, EVENT_FAILURE, EVENT_ABORT = 0, 1, 2, 3
OUTCOME = {EVENT_SUCCESS: 'success', EVENT_FAILURE: 'failure', EVENT_ABORT: 'abort'}


class ConversionError(RuntimeError):
    """The recordings cannot be turned into a dataset (see the message)."""


@dataclass
class EpisodePlan:
    """One episode to write: its aligned frames and where they come from."""

    bag: Path
    instruction: str
    outcome: str
    start: int
    end: int
    frames: list
    state: np.ndarray
    action: np.ndarray
    report: dict = field(default_factory=dict)


def _segments(index: BagIndex, fmap: FeatureMap):
    """Yield (start, end, instruction, outcome) per episode of one bag."""
    events = index.events
    if not events:
        yield index.start, index.end, '', 'unsegmented'
        return
    open_event = None
    for ev in events:
        if ev.kind == EVENT_START:
            if open_event is not None:   # a START without an end: cut it here, as an abort
                yield open_event.stamp, ev.stamp, open_event.instruction, 'abort'
            open_event = ev
        elif open_event is not None:
            yield open_event.stamp, ev.stamp, open_event.instruction or ev.instruction, \
                OUTCOME.get(ev.kind, 'abort')
            open_event = None
    if open_event is not None:
        yield open_event.stamp, index.end, open_event.instruction, 'abort'


def _instruction(index: BagIndex, start: int, from_event: str, fmap: FeatureMap) -> str:
    if from_event.strip():
        return from_event
    before = [text for t, text in index.tasks if t <= start]
    if before:
        return before[-1]
    during = [text for t, text in index.tasks if t > start]
    if during:
        return during[0]
    return fmap.episodes.default_instruction


def plan_bag(index: BagIndex, fmap: FeatureMap) -> typing.List[EpisodePlan]:
    """Align one indexed bag and return its episodes (dropped ones are reported, not planned)."""
    def camera(name):
        cam = fmap.cameras[name]
        return Stream(name, index.camera_stamps[name], cam.max_age_s,
                      index.camera_receive[name], cam.topic, cam.max_skew_s)

    ref = camera(fmap.reference)
    features = [camera(name) for name in fmap.cameras if name != fmap.reference]
    features.append(Stream('state', index.state.stamps, fmap.state.max_age_s,
                           index.state.receive, fmap.state.topic, fmap.state.max_skew_s))
    if fmap.action.source == 'command':
        features.append(Stream('action', index.action.stamps, fmap.action.max_age_s,
                               index.action.receive, fmap.action.topic, fmap.action.max_skew_s))
    try:      # before anything is sized by the bag's time span
        check_clocks(ref, features)
    except ClockError as exc:
        raise BagError(f'{index.path}: {exc}') from exc
    plans = []
    for start, end, from_event, outcome in _segments(index, fmap):
        if outcome == 'abort' and not fmap.episodes.keep_aborted:
            continue
        if outcome == 'failure' and not fmap.episodes.keep_failed:
            continue
        report = SyncReport()
        frames, report = align(ref, features, start, end, fmap.fps, report)
        state = np.array([index.state.values[f.sources['state']] for f in frames]).reshape(
            len(frames), len(fmap.state.joints))
        if fmap.action.source == 'command':
            action = np.array([index.action.values[f.sources['action']] for f in frames])
        else:   # the next observed state is the action; the last frame has none and is dropped
            action = state[1:]
            frames, state = frames[:-1], state[:-1]
            if frames:
                report.drop('action: last frame has no next state')
        action = action.reshape(len(frames), len(fmap.action_joints))
        finite = np.all(np.isfinite(state), axis=1) & np.all(np.isfinite(action), axis=1)
        for _ in range(int((~finite).sum())):
            report.drop('state or action: NaN or inf')
        frames = [f for f, ok in zip(frames, finite) if ok]
        state, action = state[finite], action[finite]
        report.frames_kept = len(frames)
        instruction = _instruction(index, start, from_event, fmap)
        plan = EpisodePlan(index.path, instruction, outcome, start, end, frames,
                           state.astype(np.float32), action.astype(np.float32))
        plan.report = {'bag': str(index.path), 'outcome': outcome, 'instruction': instruction,
                       'start_ns': int(start), 'end_ns': int(end), 'fps': fmap.fps,
                       **report.to_dict()}
        plans.append(plan)
    return plans


def dataset_features(fmap: FeatureMap, image_shapes: typing.Dict[str, tuple]) -> dict:
    """Return the LeRobot feature dict for the map (cameras with their stored image shape)."""
    features = {f'observation.images.{name}': {'dtype': 'video', 'shape': list(shape),
                                               'names': ['height', 'width', 'channels']}
                for name, shape in image_shapes.items()}
    features['observation.state'] = {'dtype': 'float32', 'shape': [len(fmap.state.joints)],
                                     'names': list(fmap.state.joints)}
    features['action'] = {'dtype': 'float32', 'shape': [len(fmap.action_joints)],
                          'names': list(fmap.action_joints)}
    return features


class RowAssembler:
    """
    Turn camera frames arriving in bag order into dataset rows in row order.

    A row needs one frame per camera (a camera's frame may serve several rows). Frames wait
    here until the earliest unfinished row has all of its frames, then leave as soon as no later
    row needs them: what is held is bounded by how far apart the cameras' frames lie in the bag
    (their skew plus max_age_s), never by the episode's length.
    """

    def __init__(self, rows: typing.List[typing.Dict[str, int]]):
        """``rows``: per row, camera name -> the camera's message ordinal."""
        self.rows, self.next = rows, 0
        self.uses = {}
        for row in rows:
            for name, ordinal in row.items():
                uses = self.uses.setdefault(name, {})
                uses[ordinal] = uses.get(ordinal, 0) + 1
        self.held = {name: {} for name in self.uses}
        self.peak = 0

    def wanted(self) -> typing.Dict[str, typing.Set[int]]:
        """Return the ordinals each camera must deliver."""
        return {name: set(uses) for name, uses in self.uses.items()}

    def put(self, name: str, ordinal: int, frame):
        """Hold one frame (an image or a FrameError); yield every row it completes, in order."""
        self.held[name][ordinal] = frame
        self.peak = max(self.peak, sum(len(h) for h in self.held.values()))
        while self.next < len(self.rows) and all(
                ordinal in self.held[name] for name, ordinal in self.rows[self.next].items()):
            row = self.rows[self.next]
            frames = {name: self.held[name][ordinal] for name, ordinal in row.items()}
            for name, ordinal in row.items():
                self.uses[name][ordinal] -= 1
                if not self.uses[name][ordinal]:
                    del self.held[name][ordinal]
            self.next += 1
            yield self.next - 1, frames

    def missing(self) -> typing.Iterator[int]:
        """Yield the rows never completed (their frames were not in the bag's pass 2)."""
        yield from range(self.next, len(self.rows))


class _EpisodeWrite:
    """The writing of one planned episode: the rows kept, and its stream once one is."""

    def __init__(self, plan: EpisodePlan):
        self.plan, self.stream, self.kept, self.first_tick = plan, None, [], None
        self.bad = {}

    def add(self, session, position: int, frames: dict):
        """Encode row ``position``'s frames, or drop it for an undecodable one (by policy)."""
        bad = [(name, f) for name, f in frames.items() if isinstance(f, FrameError)]
        if bad:
            name, error = bad[0]
            if session.fmap.cameras[name].on_bad_frame == 'abort':
                raise ConversionError(f'{self.plan.bag}: {error.reason} (on_bad_frame: abort; '
                                      "'skip' drops the rows of such frames and counts them)")
            self.bad[name] = self.bad.get(name, 0) + 1
            if len(self.bad) == 1 and self.bad[name] == 1:
                session.notes.append(f'{self.plan.bag}: undecodable frame(s) skipped, first: '
                                     f'{error.reason}')
            return
        frame = self.plan.frames[position]
        if self.stream is None:
            self.stream = session.writer_for(frames).begin_episode(self.plan.instruction)
            self.first_tick = frame.tick
        self.stream.add_frame({f'observation.images.{n}': image for n, image in frames.items()},
                              (frame.tick - self.first_tick) / session.fps)
        self.kept.append(position)

    def finish(self, report_extra: typing.Optional[dict] = None):
        """Write the episode's columns; return its report (None when no row survived)."""
        plan, report = self.plan, dict(self.plan.report)
        for name, count in sorted(self.bad.items()):
            key = f'{name}: undecodable frame'
            report['dropped_by_reason'] = {**report['dropped_by_reason'], key: count}
        report['frames_dropped'] += sum(self.bad.values())
        report['frames_kept'] = len(self.kept)
        if self.stream is None:
            return None
        kept = np.array(self.kept, int)
        episode = self.stream.finish({'observation.state': plan.state[kept],
                                      'action': plan.action[kept]})
        report['frame_gaps'] = gap_stats([plan.frames[k].tick for k in self.kept],
                                         report['fps'])
        return {'episode_index': episode, **report, **(report_extra or {})}


class _Session:
    """One conversion's writer (made at the first row, when image sizes are known) and notes."""

    def __init__(self, fmap: FeatureMap, output, append: bool):
        self.fmap, self.output, self.append = fmap, output, append
        self.fps = int(round(fmap.fps))
        self.writer, self.notes = None, []

    def writer_for(self, frames: dict):
        """Return the writer, opening it with these frames' shapes the first time."""
        from .lerobot_format import LeRobotWriter

        if self.writer is None:
            shapes = {name: frames[name].shape for name in self.fmap.cameras}
            self.writer = LeRobotWriter(self.output, fps=self.fps,
                                        features=dataset_features(self.fmap, shapes),
                                        robot_type=self.fmap.robot_type, append=self.append)
        return self.writer


def _write_bag(session: _Session, bag: Path, plans, typestore, bar) -> list:
    """Stream one bag's planned episodes into the writer; return their reports."""
    fmap = session.fmap
    rows, owner = [], []
    for p, plan in enumerate(plans):
        for position, frame in enumerate(plan.frames):
            rows.append({name: (frame.ref_index if name == fmap.reference
                                else frame.sources[name]) for name in fmap.cameras})
            owner.append((p, position))
    assembler = RowAssembler(rows)
    writes = [_EpisodeWrite(plan) for plan in plans]
    ends = {}           # the last row of each plan
    for r, (p, _) in enumerate(owner):
        ends[p] = r
    reports = []

    def emit(r, frames):
        p, position = owner[r]
        writes[p].add(session, position, frames)
        if ends[p] == r:
            report = writes[p].finish({'held_frames_peak': assembler.peak})
            if report is not None:
                reports.append(report)

    for name, ordinal, image in iter_images(bag, fmap, assembler.wanted(), typestore):
        bar.update()
        for r, frames in assembler.put(name, ordinal, image):
            emit(r, frames)
    lost = list(assembler.missing())
    for r in lost:      # frames pass 1 saw and pass 2 did not: the bag changed in between
        emit(r, {name: FrameError('not found in the second pass') for name in rows[r]})
    return reports


def convert(bags, fmap: FeatureMap, output, append=False, progress=True) -> dict:
    """Convert ``bags`` into the dataset at ``output``; return a summary dict."""
    from tqdm import tqdm

    t0 = time.monotonic()
    typestore = make_typestore()
    planned, skipped, recorded_ns = [], 0, 0
    for bag in tqdm(bags, desc='index', unit='bag', disable=not progress):
        index = index_bag(bag, fmap, typestore)
        recorded_ns += index.end - index.start
        bag_plans = plan_bag(index, fmap)
        skipped += len(list(_segments(index, fmap))) - len(bag_plans)
        planned.append((Path(bag), [p for p in bag_plans if p.frames]))
        skipped += sum(1 for p in bag_plans if not p.frames)
    plans = [p for _, bag_plans in planned for p in bag_plans]
    if not plans:
        raise ConversionError('no episode with synchronised frames in the given bags '
                              f'({skipped} empty or skipped as aborted/failed)')
    missing = [p for p in plans if not p.instruction.strip()]
    if missing:
        raise ConversionError(f'{missing[0].bag}: an episode has no instruction (no episode '
                              'event or task message; set episodes.default_instruction)')

    images = sum(len(p.frames) for p in plans) * len(fmap.cameras)
    bar = tqdm(total=images, desc='frames', unit='img', disable=not progress)
    session, reports = _Session(fmap, output, append), []
    try:
        for bag, bag_plans in planned:
            if bag_plans:
                reports += _write_bag(session, bag, bag_plans, typestore, bar)
        if session.writer is None:
            raise ConversionError('every planned frame was undecodable: nothing to write')
        summary = session.writer.finalize()
    except BaseException as exc:
        if session.writer is not None:
            session.writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        bar.close()
    report_dir = Path(output) / 'meta' / 'dit4dit_sync'
    report_dir.mkdir(parents=True, exist_ok=True)
    for rep in reports:
        (report_dir / f'episode_{rep["episode_index"]:06d}.json').write_text(
            json.dumps(rep, indent=2) + '\n')
    elapsed = time.monotonic() - t0
    warnings = sorted({w for r in reports for w in r.get('warnings', [])})
    return {'episodes': len(reports), 'frames': sum(r['frames_kept'] for r in reports),
            'frames_dropped': sum(r['frames_dropped'] for r in reports),
            'episodes_skipped': skipped + len(plans) - len(reports), 'bags': len(bags),
            'recorded_s': recorded_ns * 1e-9, 'elapsed_s': elapsed,
            'realtime_factor': (recorded_ns * 1e-9) / elapsed if elapsed > 0 else float('inf'),
            'gaps': sum(r['frame_gaps']['gaps'] for r in reports),
            'warnings': warnings + session.notes + summary.get('notes', []),
            'output': str(output), 'writer': summary}


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_train convert``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('bags', nargs='+', help='rosbag2 directories (mcap or sqlite3)')
    parser.add_argument('--map', required=True,
                        help='packaged feature map name (g1_dex3, g1_tabletop) or a YAML path')
    parser.add_argument('--output', required=True, help='dataset directory')
    parser.add_argument('--append', action='store_true', help='add episodes to an existing one')
    parser.add_argument('--fps', type=float, default=0, help='override the map fps')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    try:
        fmap = load_feature_map(args.map)
        if args.fps:
            fmap.fps = args.fps
        s = convert([Path(b) for b in args.bags], fmap, Path(args.output), append=args.append,
                    progress=not args.no_progress)
    except (BagError, ConversionError, ValueError, FileExistsError) as exc:
        print(f'convert: error: {exc}', file=sys.stderr)
        return 1
    for warning in s['warnings']:
        print(f'convert: warning: {warning}', file=sys.stderr)
    print(f"[convert] {s['episodes']} episodes, {s['frames']} frames "
          f"({s['frames_dropped']} dropped, {s['gaps']} gaps kept in time, "
          f"{s['episodes_skipped']} episodes skipped) from "
          f"{s['bags']} bags, {s['recorded_s']:.1f} s recorded in {s['elapsed_s']:.1f} s "
          f"({s['realtime_factor']:.1f}x real time) -> {s['output']}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
