"""
Convert rosbag2 recordings to a LeRobot v3 dataset: ``python -m dit4dit_train.convert``.

    python -m dit4dit_train.convert BAG_DIR [BAG_DIR ...] --map g1_dex3 --output DATASET [--append]

Every bag is read and aligned before anything is written (a corrupt, truncated or topic-less bag
stops the run with its reason and leaves an existing dataset untouched). Episodes are cut at the
suite's episode events (START .. SUCCESS/FAILURE/ABORT); a bag without events is one episode.
Frames follow the reference camera resampled to the map's fps; every other feature is the latest
message at or before the frame, within its max age (see sync.py). A JSON sync report per episode
(kept and dropped frames with reasons, the largest age used per feature) is written next to the
dataset's metadata, and a one-line summary ends the run.
"""

import argparse
from dataclasses import dataclass, field
import json
from pathlib import Path
import sys
import time
import typing

import numpy as np

from .bag_source import BagError, BagIndex, index_bag, read_images
from .bag_types import make_typestore
from .feature_map import FeatureMap, load_feature_map
from .sync import align, check_clocks, ClockError, Stream, SyncReport

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
                       'start_ns': int(start), 'end_ns': int(end), **report.to_dict()}
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


def convert(bags, fmap: FeatureMap, output, append=False, progress=True) -> dict:
    """Convert ``bags`` into the dataset at ``output``; return a summary dict."""
    from tqdm import tqdm

    from .lerobot_format import LeRobotWriter

    t0 = time.monotonic()
    typestore = make_typestore()
    plans, skipped, recorded_ns = [], 0, 0
    for bag in tqdm(bags, desc='index', unit='bag', disable=not progress):
        index = index_bag(bag, fmap, typestore)
        recorded_ns += index.end - index.start
        bag_plans = plan_bag(index, fmap)
        skipped += len(list(_segments(index, fmap))) - len(bag_plans)
        plans += bag_plans
    empty = [p for p in plans if not p.frames]
    plans = [p for p in plans if p.frames]
    if not plans:
        raise ConversionError('no episode with synchronised frames in the given bags '
                              f'({len(empty)} empty, {skipped} skipped as aborted/failed)')
    missing = [p for p in plans if not p.instruction.strip()]
    if missing:
        raise ConversionError(f'{missing[0].bag}: an episode has no instruction (no episode '
                              'event or task message; set episodes.default_instruction)')

    total = sum(len(p.frames) for p in plans)
    bar = tqdm(total=total * len(fmap.cameras), desc='frames', unit='img', disable=not progress)
    reports, writer = [], None
    try:
        for plan in plans:
            wanted = {fmap.reference: {f.ref_index for f in plan.frames}}
            for name in fmap.cameras:
                if name != fmap.reference:
                    wanted[name] = {f.sources[name] for f in plan.frames}
            images = read_images(plan.bag, fmap, wanted, typestore, on_frame=bar.update)
            frames = {}
            for name in fmap.cameras:
                key = 'ref' if name == fmap.reference else name
                picks = [f.ref_index if key == 'ref' else f.sources[name] for f in plan.frames]
                frames[f'observation.images.{name}'] = np.stack([images[name][i] for i in picks])
            frames['observation.state'] = plan.state
            frames['action'] = plan.action
            if writer is None:
                shapes = {name: frames[f'observation.images.{name}'].shape[1:]
                          for name in fmap.cameras}
                writer = LeRobotWriter(output, fps=int(round(fmap.fps)),
                                       features=dataset_features(fmap, shapes),
                                       robot_type=fmap.robot_type, append=append)
                writer.__enter__()
            episode = writer.add_episode(frames, task=plan.instruction)
            reports.append({'episode_index': episode, **plan.report})
        summary = writer.finalize()
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        bar.close()
    report_dir = Path(output) / 'meta' / 'dit4dit_sync'
    report_dir.mkdir(parents=True, exist_ok=True)
    for rep in reports:
        (report_dir / f'episode_{rep["episode_index"]:06d}.json').write_text(
            json.dumps(rep, indent=2) + '\n')
    dropped = sum(r['frames_dropped'] for r in reports)
    elapsed = time.monotonic() - t0
    return {'episodes': len(reports), 'frames': total, 'frames_dropped': dropped,
            'episodes_skipped': skipped + len(empty), 'bags': len(bags),
            'recorded_s': recorded_ns * 1e-9, 'elapsed_s': elapsed,
            'realtime_factor': (recorded_ns * 1e-9) / elapsed if elapsed > 0 else float('inf'),
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
    print(f"[convert] {s['episodes']} episodes, {s['frames']} frames "
          f"({s['frames_dropped']} dropped, {s['episodes_skipped']} episodes skipped) from "
          f"{s['bags']} bags, {s['recorded_s']:.1f} s recorded in {s['elapsed_s']:.1f} s "
          f"({s['realtime_factor']:.1f}x real time) -> {s['output']}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
