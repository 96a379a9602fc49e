"""
Check a LeRobot v3 dataset: ``python -m dit4dit_train.validate DATASET`` (``ros2 run`` too).

Problems (exit 1) are what would make a reader fail or return wrong frames: metadata that does
not add up, data rows or video frames missing for an episode. Notes (exit 0) are what the suite or
LeRobot's tools would do less with: statistics without quantiles or per-episode columns, cameras
stored as images in parquet (LeRobot reads them; this suite's loader refuses them).
"""

import argparse
import json
from pathlib import Path
import sys

import pyarrow.parquet as pq

from .lerobot_format import read_info, validate_dataset
from .lerobot_stats import QUANTILE_KEYS


def notes(root) -> list:
    """Return what a valid dataset lacks for this suite or for LeRobot's editing tools."""
    root = Path(root)
    info, out = read_info(root), []
    images = [k for k, f in info['features'].items() if f.get('dtype') == 'image']
    if images:
        out.append(f'camera(s) {", ".join(images)} are images in parquet: LeRobot reads them, '
                   "dit4dit_train's loader does not (lerobot-edit-dataset --operation.type "
                   'convert_image_to_video makes videos of them)')
    stats_path = root / 'meta' / 'stats.json'
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    if not stats:
        out.append('meta/stats.json is empty: normalisation needs it (re-convert the bags, or '
                   'recompute it from the per-episode stats columns)')
    lacking = sorted(k for k, entry in stats.items() if not set(QUANTILE_KEYS) <= set(entry))
    if lacking:
        out.append(f'no quantiles ({", ".join(QUANTILE_KEYS)}) for {", ".join(lacking[:4])}'
                   f'{" ..." if len(lacking) > 4 else ""}: QUANTILES normalisation needs them')
    files = sorted((root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
    if files and not any(n.startswith('stats/') for n in pq.read_schema(files[0]).names):
        out.append('meta/episodes has no per-episode stats/* columns: LeRobot appends and '
                   'edits (delete, split) need them')
    return out


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('dataset', help='the dataset directory (holds meta/info.json)')
    args = parser.parse_args(argv)
    problems = validate_dataset(args.dataset)
    for problem in problems:
        print(f'validate: problem: {problem}', file=sys.stderr)
    if problems:
        print(f'[validate] {args.dataset}: {len(problems)} problem(s)')
        return 1
    found = notes(args.dataset)
    for note in found:
        print(f'validate: note: {note}')
    info = read_info(args.dataset)
    print(f"[validate] {args.dataset}: valid LeRobot {info['codebase_version']}, "
          f"{info['total_episodes']} episodes, {info['total_frames']} frames at {info['fps']} "
          f'fps, {len(found)} note(s)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
